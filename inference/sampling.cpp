#include "inference/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "inference/detail/sum_exp.h"

namespace sluice::inference {

namespace {

Status bad(const char* name, const std::string& what) {
    return invalid_argument(std::string("sampling parameter '") + name + "': " + what);
}

// log(sum(exp(x))) over a row, stable.
double log_sum_exp(std::span<const float> row) {
    const float max_value = *std::max_element(row.begin(), row.end());
    // Vectorised where the CPU allows: this pass was most of a greedy token's sampling time.
    return max_value + std::log(detail::sum_exp(row, max_value));
}

}  // namespace

Status validate_sampling(const SamplingParams& p, int64_t n_vocab) {
    if (!std::isfinite(p.temperature) || p.temperature < 0) {
        return bad("temperature", "must be >= 0, found " + std::to_string(p.temperature));
    }
    if (p.top_k < 0) {
        return bad("top_k", "must be >= 0, found " + std::to_string(p.top_k));
    }
    if (!(p.top_p > 0 && p.top_p <= 1)) {
        return bad("top_p", "must be in (0, 1], found " + std::to_string(p.top_p));
    }
    if (!(p.min_p >= 0 && p.min_p <= 1)) {
        return bad("min_p", "must be in [0, 1], found " + std::to_string(p.min_p));
    }
    if (!(p.repetition_penalty > 0) || !std::isfinite(p.repetition_penalty)) {
        return bad("repetition_penalty", "must be > 0, found " +
                                             std::to_string(p.repetition_penalty));
    }
    if (!std::isfinite(p.presence_penalty) || !std::isfinite(p.frequency_penalty)) {
        return bad("presence_penalty", "presence and frequency penalties must be finite");
    }
    if (p.top_logprobs < 0 || p.top_logprobs > 20) {
        return bad("top_logprobs", "must be in [0, 20], found " + std::to_string(p.top_logprobs));
    }
    std::vector<int32_t> biased;
    biased.reserve(p.logit_bias.size());
    for (const TokenBias& entry : p.logit_bias) {
        if (entry.id < 0 || (n_vocab > 0 && entry.id >= n_vocab)) {
            return bad("logit_bias", "token id " + std::to_string(entry.id) + " outside [0, " +
                                         (n_vocab > 0 ? std::to_string(n_vocab) : "inf") + ")");
        }
        if (!(entry.bias >= -100.0f && entry.bias <= 100.0f)) {
            return bad("logit_bias", "the bias of token " + std::to_string(entry.id) +
                                         " must be in [-100, 100], found " +
                                         std::to_string(entry.bias));
        }
        biased.push_back(entry.id);
    }
    std::sort(biased.begin(), biased.end());
    if (auto twice = std::adjacent_find(biased.begin(), biased.end()); twice != biased.end()) {
        return bad("logit_bias", "token " + std::to_string(*twice) + " is named twice");
    }
    return Status::ok_status();
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

void Sampler::apply_bias() {
    for (const TokenBias& entry : params_.logit_bias) {
        // Ids past the row are refused by validate_sampling given the vocabulary; never written.
        if (static_cast<size_t>(entry.id) < work_.size()) {
            work_[static_cast<size_t>(entry.id)] += entry.bias;
        }
    }
}

void Sampler::apply_penalties(std::span<const int32_t> prompt,
                              std::span<const int32_t> generated) {
    if (params_.repetition_penalty != 1.0f) {
        std::vector<int32_t> seen(prompt.begin(), prompt.end());
        seen.insert(seen.end(), generated.begin(), generated.end());
        std::sort(seen.begin(), seen.end());
        seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
        for (int32_t id : seen) {
            float& logit = work_[static_cast<size_t>(id)];
            logit = logit > 0 ? logit / params_.repetition_penalty
                              : logit * params_.repetition_penalty;
        }
    }
    if (params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f) {
        std::unordered_map<int32_t, int32_t> counts;
        for (int32_t id : generated) {
            ++counts[id];
        }
        for (const auto& [id, count] : counts) {
            work_[static_cast<size_t>(id)] -=
                params_.presence_penalty + params_.frequency_penalty * static_cast<float>(count);
        }
    }
}

double Sampler::next_uniform() {
    // 53 random bits → [0, 1): the same on every standard library, unlike the distributions.
    return static_cast<double>(rng_() >> 11) * (1.0 / 9007199254740992.0);
}

int32_t Sampler::draw_in_id_order(double u, double mass) const {
    double target = u * mass;
    int32_t last_possible = 0;
    for (size_t id = 0; id < work_.size(); ++id) {
        const float p = work_[id];
        target -= p;
        if (target < 0) {
            return static_cast<int32_t>(id);
        }
        if (p > 0) {
            last_possible = static_cast<int32_t>(id);
        }
    }
    return last_possible;  // as draw(): rounding left mass over
}

int32_t Sampler::draw(double u) const {
    double mass = 0;
    for (int32_t id : order_) {
        mass += work_[static_cast<size_t>(id)];
    }
    double target = u * mass;
    int32_t last_possible = order_.back();
    for (int32_t id : order_) {
        const float p = work_[static_cast<size_t>(id)];
        target -= p;
        if (target < 0) {
            return id;
        }
        if (p > 0) {
            last_possible = id;
        }
    }
    // Rounding left mass over: the last token that could be drawn (never a masked one).
    return last_possible;
}

void Sampler::apply_mask(std::span<const uint64_t> allowed) {
    const size_t n = work_.size();
    const float blocked = -std::numeric_limits<float>::infinity();
    for (size_t w = 0; w * 64 < n; ++w) {
        const uint64_t word = w < allowed.size() ? allowed[w] : 0;
        if (word == ~uint64_t{0}) {
            continue;
        }
        const size_t end = std::min(n, w * 64 + 64);
        for (size_t id = w * 64; id < end; ++id) {
            if (((word >> (id & 63)) & 1u) == 0) {
                work_[id] = blocked;
            }
        }
    }
}

SampledToken Sampler::sample(std::span<const float> logits, std::span<const int32_t> prompt,
                             std::span<const int32_t> generated,
                             std::span<const uint64_t> allowed) {
    const double u = greedy() ? 0.0 : next_uniform();
    return sample_with_uniform(logits, prompt, generated, allowed, u);
}

SampledToken Sampler::sample_with_uniform(std::span<const float> logits,
                                          std::span<const int32_t> prompt,
                                          std::span<const int32_t> generated,
                                          std::span<const uint64_t> allowed, double u) {
    const auto n_vocab = static_cast<int32_t>(logits.size());
    work_.assign(logits.begin(), logits.end());
    apply_bias();
    apply_penalties(prompt, generated);
    if (!allowed.empty()) {
        apply_mask(allowed);
    }

    int32_t chosen = 0;
    if (greedy()) {
        chosen = static_cast<int32_t>(std::max_element(work_.begin(), work_.end()) - work_.begin());
    } else {
        const float max_logit = *std::max_element(work_.begin(), work_.end());
        if (params_.top_k == 0 && params_.top_p >= 1.0f) {
            // No order needed: one pass makes the probabilities (min-p's dropped ones 0) and
            // their mass, and the draw walks ids in order. The same choice as the general path
            // below, without its index list and its two passes summing the mass.
            double mass = 0;
            const float floor = params_.min_p;  // the top probability is exp(0) = 1
            for (float& value : work_) {
                value = std::exp((value - max_logit) / params_.temperature);
                value = value < floor ? 0.0f : value;
                mass += value;
            }
            chosen = draw_in_id_order(u, mass);
            return finish_token(logits, chosen);
        }
        for (float& value : work_) {
            value = std::exp((value - max_logit) / params_.temperature);
        }
        // Candidates by decreasing probability; only as many sorted as top-k needs.
        order_.resize(static_cast<size_t>(n_vocab));
        std::iota(order_.begin(), order_.end(), 0);
        auto more_likely = [&](int32_t a, int32_t b) {
            const float pa = work_[static_cast<size_t>(a)];
            const float pb = work_[static_cast<size_t>(b)];
            return pa > pb || (pa == pb && a < b);
        };
        // Top-k and top-p sort what they keep.
        const int32_t keep = params_.top_k > 0 ? std::min(params_.top_k, n_vocab) : n_vocab;
        std::partial_sort(order_.begin(), order_.begin() + keep, order_.end(), more_likely);
        order_.resize(static_cast<size_t>(keep));
        double total = 0;
        for (int32_t id : order_) {
            total += work_[static_cast<size_t>(id)];
        }
        if (params_.top_p < 1.0f) {
            double cumulative = 0;
            size_t cut = 0;
            while (cut < order_.size() && cumulative < params_.top_p * total) {
                cumulative += work_[static_cast<size_t>(order_[cut])];
                ++cut;
            }
            order_.resize(std::max<size_t>(cut, 1));
        }
        if (params_.min_p > 0.0f) {
            // The most likely token has probability 1 before normalisation (exp(0)).
            const float floor = params_.min_p;
            std::erase_if(order_, [&](int32_t id) { return work_[static_cast<size_t>(id)] < floor; });
        }
        chosen = draw(u);
    }
    return finish_token(logits, chosen);
}

SampledToken Sampler::finish_token(std::span<const float> logits, int32_t chosen) const {
    return score_token(logits, chosen, params_.top_logprobs);
}

SampledToken score_token(std::span<const float> logits, int32_t id, int32_t top_n) {
    SampledToken token;
    token.id = id;
    const double lse = log_sum_exp(logits);
    token.logprob = static_cast<float>(logits[static_cast<size_t>(id)] - lse);
    const auto n = static_cast<size_t>(std::min<int64_t>(top_n, std::ssize(logits)));
    if (n == 0) {
        return token;
    }
    // One pass keeping the n best in order (n <= 20): scanning ids upwards and inserting after
    // equal values ranks ties by lower id, as a sort by (logit desc, id asc) would.
    std::vector<TokenLogprob> best;
    best.reserve(n + 1);
    for (size_t i = 0; i < logits.size(); ++i) {
        const float value = logits[i];
        if (best.size() == n && !(value > best.back().logprob)) {
            continue;
        }
        auto at = std::find_if(best.begin(), best.end(),
                               [&](const TokenLogprob& t) { return t.logprob < value; });
        best.insert(at, TokenLogprob{static_cast<int32_t>(i), value});
        if (best.size() > n) {
            best.pop_back();
        }
    }
    for (TokenLogprob& entry : best) {
        entry.logprob = static_cast<float>(entry.logprob - lse);
    }
    token.top = std::move(best);
    return token;
}

}  // namespace sluice::inference
