#pragma once
// Token-level generation over a Backend: prefill, then decode steps that feed each sampled token
// back, for one sequence or several in lock-step (one forward step serves every sequence still
// running, as a continuous-batching scheduler would).
//
// With a TokenConstraint, tokens are sampled under its mask and fed to it; end-of-turn stop
// tokens are then possible only where the constraint allows them.
//
// A sequence stops at the first of: a stop token (not included in the output), a stop token
// sequence (the matched tokens are removed from the output), a text stop matcher saying so
// (text stop strings need the tokenizer's streaming decoder, which implements TextStopMatcher),
// max_tokens, the model's max_seq_len, or the token callback returning false (cancelled).
//
// Errors: kInvalidArgument for an empty prompt, bad sampling parameters, max_tokens < 1, or
// token ids outside the vocabulary; kResourceExhausted when the KV block pool is too small;
// the backend's statuses otherwise.
//
// Thread safety: runs on the caller's thread, which must own the backend and the pool.

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "common/result.h"
#include "inference/backend.h"
#include "inference/kv_block_pool.h"
#include "inference/sampling.h"

namespace sluice::inference {

// Watches generated tokens for stop strings in their decoded text.
class TextStopMatcher {
public:
    virtual ~TextStopMatcher() = default;
    // Called with each generated token in order; true ends generation after this token. The
    // matcher owns trimming of the matched text from what it shows the user.
    virtual bool on_token(int32_t id) = 0;
};

enum class FinishReason { kStopToken, kStopSequence, kStopText, kLength, kCancelled };

std::string_view finish_reason_name(FinishReason reason);  // "stop", "length", "cancelled"

struct GenerationRequest {
    std::vector<int32_t> prompt;
    SamplingParams sampling;
    int32_t max_tokens = 16;
    std::vector<int32_t> stop_tokens;
    std::vector<std::vector<int32_t>> stop_sequences;
    TextStopMatcher* text_stop = nullptr;  // borrowed; may be null
    // Borrowed; may be null. Each token is sampled among those it allows and then fed to it (a
    // GrammarMatcher for structured output). A sequence whose constraint allows nothing ends
    // with kStopToken.
    TokenConstraint* constraint = nullptr;
    // Called with every generated token as it is produced; returning false cancels.
    std::function<bool(const SampledToken&)> on_token;
};

struct Usage {
    int64_t prompt_tokens = 0;
    int64_t completion_tokens = 0;
    int64_t cached_tokens = 0;  // prompt tokens whose KV came from the prefix cache
};

struct Timings {
    double prefill_seconds = 0;  // the prompt steps, up to the first sampled token
    double decode_seconds = 0;   // the steps after
    int64_t prefill_tokens = 0;
    int64_t decode_tokens = 0;   // tokens produced by decode steps (all sequences)
    double prefill_tokens_per_second() const;
    double decode_tokens_per_second() const;
};

struct GenerationResult {
    std::vector<int32_t> ids;
    std::vector<SampledToken> tokens;  // parallel to ids, with log-probabilities
    FinishReason finish = FinishReason::kLength;
    Usage usage;
};

struct BatchGenerationResult {
    std::vector<GenerationResult> results;  // one per request, same order
    Timings timings;                        // wall time of the whole batch
};

Result<BatchGenerationResult> generate_batch(Backend& backend, KvBlockPool& pool,
                                             std::span<const GenerationRequest> requests);

// One request; `timings` (optional) receives its prefill and decode times.
Result<GenerationResult> generate(Backend& backend, KvBlockPool& pool,
                                  const GenerationRequest& request, Timings* timings = nullptr);

}  // namespace sluice::inference
