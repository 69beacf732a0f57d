#include "agents/evaluation/statistics.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace sluice::agents::evaluation {

Interval bootstrap_interval(const std::vector<int>& outcomes, int resamples, std::uint64_t seed,
                            double level) {
    if (outcomes.empty() || resamples <= 0) {
        return {};
    }
    std::mt19937_64 rng(seed);
    const auto n = static_cast<std::uint64_t>(outcomes.size());
    std::vector<double> means;
    means.reserve(static_cast<size_t>(resamples));
    for (int r = 0; r < resamples; ++r) {
        std::uint64_t passed = 0;
        for (std::uint64_t i = 0; i < n; ++i) {
            passed += static_cast<std::uint64_t>(outcomes[rng() % n]);
        }
        means.push_back(static_cast<double>(passed) / static_cast<double>(n));
    }
    std::sort(means.begin(), means.end());
    const double alpha = 1 - level;
    const double b = static_cast<double>(resamples);
    auto low = static_cast<size_t>(std::floor(alpha / 2 * b));
    auto high = static_cast<size_t>(std::ceil((1 - alpha / 2) * b));
    high = std::clamp<size_t>(high, 1, means.size()) - 1;
    low = std::min(low, means.size() - 1);
    return {means[low], means[high]};
}

PairedDifference paired_bootstrap(const std::vector<double>& differences, int resamples,
                                  std::uint64_t seed, double level) {
    PairedDifference out;
    if (differences.empty() || resamples <= 0) {
        return out;
    }
    const auto n = static_cast<std::uint64_t>(differences.size());
    double sum = 0;
    for (double d : differences) {
        sum += d;
    }
    out.mean = sum / static_cast<double>(n);
    std::mt19937_64 rng(seed);
    std::vector<double> means;
    means.reserve(static_cast<size_t>(resamples));
    int at_or_below = 0;
    int at_or_above = 0;
    for (int r = 0; r < resamples; ++r) {
        double resampled = 0;
        for (std::uint64_t i = 0; i < n; ++i) {
            resampled += differences[rng() % n];
        }
        resampled /= static_cast<double>(n);
        at_or_below += resampled <= 0 ? 1 : 0;
        at_or_above += resampled >= 0 ? 1 : 0;
        means.push_back(resampled);
    }
    std::sort(means.begin(), means.end());
    const double alpha = 1 - level;
    const double b = static_cast<double>(resamples);
    auto low = std::min(static_cast<size_t>(std::floor(alpha / 2 * b)), means.size() - 1);
    auto high =
        std::clamp<size_t>(static_cast<size_t>(std::ceil((1 - alpha / 2) * b)), 1, means.size()) -
        1;
    out.ci = {means[low], means[high]};
    out.p_value = std::min(1.0, 2.0 * std::min(at_or_below, at_or_above) / b);
    return out;
}

double mcnemar_exact(int b, int c) {
    const int n = b + c;
    if (n == 0) {
        return 1;
    }
    const int smaller = std::min(b, c);
    // Sum the binomial tail in log space: n can be in the thousands.
    double tail = 0;
    for (int i = 0; i <= smaller; ++i) {
        double log_term = std::lgamma(n + 1.0) - std::lgamma(i + 1.0) - std::lgamma(n - i + 1.0) -
                          n * std::log(2.0);
        tail += std::exp(log_term);
    }
    return std::min(1.0, 2 * tail);
}

Agreement cohens_kappa(const std::vector<bool>& first, const std::vector<bool>& second) {
    Agreement out;
    out.n = static_cast<int>(std::min(first.size(), second.size()));
    if (out.n == 0) {
        return out;
    }
    int same = 0;
    int first_yes = 0;
    int second_yes = 0;
    for (int i = 0; i < out.n; ++i) {
        same += first[i] == second[i] ? 1 : 0;
        first_yes += first[i] ? 1 : 0;
        second_yes += second[i] ? 1 : 0;
    }
    const double n = out.n;
    out.agreement = same / n;
    const double p_yes = (first_yes / n) * (second_yes / n);
    const double p_no = (1 - first_yes / n) * (1 - second_yes / n);
    const double expected = p_yes + p_no;
    if (expected >= 1) {
        out.kappa = out.agreement >= 1 ? 1 : 0;
        return out;
    }
    out.kappa = (out.agreement - expected) / (1 - expected);
    return out;
}

}  // namespace sluice::agents::evaluation
