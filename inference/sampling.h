#pragma once
// Choosing the next token from a row of logits.
//
// Order of operations (vLLM's and OpenAI's conventions):
//   0. logit bias: each listed token's logit gets its bias added (OpenAI's `logit_bias`; -100
//      in effect bans a token, +100 in effect forces it);
//   1. penalties: repetition (CTRL-style, over prompt and generated tokens: a positive logit is
//      divided by the penalty, a negative one multiplied), then presence and frequency (over
//      generated tokens only: logit -= presence * [count > 0] + frequency * count);
//   2. temperature 0 (or top_k 1) is greedy: the largest logit, ties to the lower id;
//   3. otherwise logits / temperature → softmax → top-k → top-p (smallest set whose mass reaches
//      p) → min-p (drop tokens below min_p × the top probability) → renormalise → draw.
// Draws come from a 64-bit Mersenne Twister seeded with `seed` and a fixed mapping to [0, 1),
// so a seed reproduces the same tokens on every platform.
//
// Log-probabilities reported with a token are those of the model: log-softmax of the raw
// logits, before bias, penalties and temperature.
//
// A token mask (TokenConstraint, e.g. a grammar) is applied after the penalties: masked tokens
// get logit -inf, so greedy, top-k, top-p and min-p all choose among allowed tokens only.
//
// Thread safety: a Sampler is owned by one sequence.

#include <cstdint>
#include <random>
#include <span>
#include <unordered_map>
#include <vector>

#include "common/status.h"

namespace sluice::inference {

// A bias added to one token's logit before sampling.
struct TokenBias {
    int32_t id = 0;
    float bias = 0;
};

struct SamplingParams {
    float temperature = 1.0f;  // 0: greedy
    int32_t top_k = 0;         // 0: off
    float top_p = 1.0f;        // 1: off
    float min_p = 0.0f;        // 0: off
    float presence_penalty = 0.0f;
    float frequency_penalty = 0.0f;
    float repetition_penalty = 1.0f;  // 1: off
    uint64_t seed = 0;
    int32_t top_logprobs = 0;  // alternatives reported per token, at most 20
    std::vector<TokenBias> logit_bias{};  // at most one entry per token id
};

// kInvalidArgument naming the parameter: temperature < 0, top_p outside (0, 1], min_p outside
// [0, 1], repetition_penalty <= 0, top_k < 0, top_logprobs outside [0, 20], non-finite values,
// or a logit bias with a token id outside [0, n_vocab) (n_vocab 0: any id >= 0), a token named
// twice, or a bias outside [-100, 100].
Status validate_sampling(const SamplingParams& params, int64_t n_vocab = 0);

struct TokenLogprob {
    int32_t id = 0;
    float logprob = 0;
};

struct SampledToken {
    int32_t id = 0;
    float logprob = 0;                // the chosen token's, under the model
    std::vector<TokenLogprob> top;    // the top_logprobs most likely, most likely first
};

// Token `id` scored under raw `logits` (log-softmax, as SampledToken::logprob), with the `top_n`
// most likely tokens (ties: lower id first). Preconditions: id in range, 0 <= top_n.
SampledToken score_token(std::span<const float> logits, int32_t id, int32_t top_n);

// Restricts which tokens may come next (a grammar matcher). Borrowed by a GenerationRequest.
// Thread safety: owned by one sequence.
class TokenConstraint {
public:
    virtual ~TokenConstraint() = default;
    // Writes the allowed next tokens as a bitset over the vocabulary: token id is allowed when
    // bit (id % 64) of word (id / 64) is set. `bitset` has ceil(n_vocab / 64) words.
    virtual void fill_next_token_mask(std::span<uint64_t> bitset) = 0;
    // Follows the chosen token; an error means the token was not allowed.
    virtual Status accept_token(int32_t id) = 0;
};

class Sampler {
public:
    // Precondition: validate_sampling(params) is ok.
    explicit Sampler(const SamplingParams& params);

    // Picks the next token. `prompt` and `generated` are the sequence so far (for penalties).
    // logits: [n_vocab]
    // `allowed` (optional): a token bitset as TokenConstraint writes it; precondition: when given,
    // at least one token is allowed.
    SampledToken sample(std::span<const float> logits, std::span<const int32_t> prompt,
                        std::span<const int32_t> generated,
                        std::span<const uint64_t> allowed = {});

    // sample() separated into its draw and its choice, so that the choice can be made elsewhere
    // (a backend sampling on the device, backend.h) from the same seeded stream:
    //   sample(...) == sample_with_uniform(..., greedy() ? 0 : next_uniform())
    // Greedy sampling draws nothing, so the stream only advances for non-greedy choices.
    bool greedy() const { return params_.temperature == 0.0f || params_.top_k == 1; }
    // The next 53-bit uniform in [0, 1) from this sampler's stream.
    double next_uniform();
    // The token sample() picks when its draw is `u` (ignored when greedy()).
    // Precondition: 0 <= u < 1.
    SampledToken sample_with_uniform(std::span<const float> logits,
                                     std::span<const int32_t> prompt,
                                     std::span<const int32_t> generated,
                                     std::span<const uint64_t> allowed, double u);

    const SamplingParams& params() const { return params_; }

private:
    void apply_bias();
    void apply_mask(std::span<const uint64_t> allowed);
    void apply_penalties(std::span<const int32_t> prompt, std::span<const int32_t> generated);
    int32_t draw(double u) const;
    // draw() over every id in order, `mass` the sum of work_ (plain sampling and min-p).
    int32_t draw_in_id_order(double u, double mass) const;
    // The chosen token with its logprob and the top logprobs, from the raw logits.
    SampledToken finish_token(std::span<const float> logits, int32_t chosen) const;

    SamplingParams params_;
    std::mt19937_64 rng_;
    std::vector<float> work_;  // [n_vocab] processed logits, then probabilities
    std::vector<int32_t> order_;
};

}  // namespace sluice::inference
