#pragma once
// The statistics of evaluation runs:
//
//   bootstrap_interval   percentile bootstrap of a pass rate: `resamples` resamples of the n
//                        outcomes drawn with replacement by std::mt19937_64 seeded with `seed`
//                        (index = draw % n, so that a seed gives the same interval on every
//                        platform, which std::uniform_int_distribution does not promise); the
//                        interval is [sorted[floor(a/2 * B)], sorted[ceil((1 - a/2) * B) - 1]] of
//                        the B resampled means, a = 1 - level.
//   mcnemar_exact        two-sided exact McNemar test of paired binary outcomes: with b and c the
//                        discordant pairs, p = min(1, 2 * P[X <= min(b, c)]), X ~ Binomial(b + c,
//                        1/2); p = 1 when there is no discordant pair.
//   paired_bootstrap     the same resampling over per-row differences of a metric between two
//                        runs, for metrics that are not pass/fail (token F1, recall).
//   cohens_kappa         agreement of two raters beyond chance: (p_o - p_e) / (1 - p_e); when
//                        both raters always give the same single label (p_e = 1), kappa is 1 if
//                        they agree and 0 otherwise.
//
// Thread safety: pure functions.

#include <cstdint>
#include <vector>

namespace sluice::agents::evaluation {

struct Interval {
    double low = 0;
    double high = 0;
};

// Precondition: outcomes are 0 or 1. An empty input gives {0, 0}.
Interval bootstrap_interval(const std::vector<int>& outcomes, int resamples, std::uint64_t seed,
                            double level = 0.95);

// Paired bootstrap of a mean difference (second minus first, per row): resamples of the n
// differences drawn as bootstrap_interval draws them; the interval is their percentile interval
// and the two-sided p-value 2 * min(share of resampled means <= 0, share >= 0), capped at 1.
struct PairedDifference {
    double mean = 0;
    Interval ci;
    double p_value = 1;
};
PairedDifference paired_bootstrap(const std::vector<double>& differences, int resamples,
                                  std::uint64_t seed, double level = 0.95);

// b: pairs where the first passed and the second failed; c: the other way round.
double mcnemar_exact(int b, int c);

struct Agreement {
    int n = 0;
    double agreement = 0;  // share of items with the same label
    double kappa = 0;
};
// Pairs of binary labels (true = yes). Precondition: same length.
Agreement cohens_kappa(const std::vector<bool>& first, const std::vector<bool>& second);

}  // namespace sluice::agents::evaluation
