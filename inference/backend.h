#pragma once
// Backend: the device-specific half of the engine. A backend owns the model's weights and the
// storage of a paged KV cache, and runs one batched forward step over a set of sequences.
//
// Paged KV cache. The cache is `n_blocks` fixed-size blocks of `block_size` token positions each
// (all layers, K and V). A sequence's positions live in the blocks its block table lists:
// position p is slot p % block_size of block block_table[p / block_size]. Who owns which block
// is the caller's business (see kv_block_pool.h): a scheduler with continuous batching hands
// each sequence its table, and prefix caching shares leading full blocks between sequences
// (copy_kv_block supports copy-on-write of a shared partial block). The backend only reads and
// writes the slots a step names.
//
// A forward step. Each entry of a ForwardBatch is one sequence with `n_past` positions already
// in its blocks and new `tokens` at positions n_past .. n_past + tokens.size() - 1. The step
// writes the new positions' K and V into the blocks, attends causally over positions
// 0 .. p for each new token at position p, and returns logits for the rows the entry asks for.
// An entry may also ask for its new tokens' final hidden states (the residual stream after the
// final norm, the input of the LM head; Hugging Face's `last_hidden_state`), which embeddings
// pool. Entries are independent: batching several sequences gives each the rows it gets alone.
//
// Sampling on the device. A backend whose samples_on_device() is true may be asked to choose an
// entry's next token itself (ForwardBatch::device_sample, with LogitsRows::kLast): it applies
// the Sampler's choice (sampling.h) to the last row with the entry's temperature, top_k, top_p
// and min_p and the uniform `u` the caller drew from the sequence's own Sampler
// (Sampler::next_uniform, drawn only when the choice is not greedy), so the token is the one
// Sampler::sample_with_uniform would pick from the same row. There are no penalties, logit bias,
// token masks or top logprobs on this path: a caller needing them asks for the row instead. The
// entry then gets no logits row (n_rows 0, the row is not copied back) and its choice in
// ForwardOutput::sampled: the id and its logprob, log-softmax of the raw logits as in
// SampledToken::logprob. A backend that cannot sample on the device (the CPU backend) answers
// kInvalidArgument to a step asking for it.
//
// Errors: kInvalidArgument for a malformed batch (token id out of range, a block table too short
// for n_past + tokens, a block id out of range, the same block written by two entries of one
// step, a batch beyond the configured limits); kFailedPrecondition when the KV cache has not
// been configured. A failed step leaves the blocks it did not validate untouched.
//
// Thread safety: a backend is owned by one thread (the scheduler's). Implementations may use
// worker threads inside a call.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "inference/model_config.h"
#include "inference/sampling.h"

namespace sluice::inference {

struct KvCacheSpec {
    int32_t block_size = 16;  // token positions per block
    int32_t n_blocks = 0;
};

enum class LogitsRows {
    kNone,  // prefill of a prefix only; nothing is returned
    kLast,  // the last new token's row (sampling the next token)
    kAll,   // a row per new token (scoring, tests)
};

// The parameters of a choice made on the device (see the file comment).
struct DeviceSampling {
    float temperature = 1.0f;
    int32_t top_k = 0;
    float top_p = 1.0f;
    float min_p = 0.0f;
    double u = 0;  // Sampler::next_uniform(), or 0 when the choice is greedy
};

struct SequenceStep {
    std::span<const int32_t> tokens;       // [n_new] new token ids, n_new >= 1
    int32_t n_past = 0;                    // positions already in the cache
    std::span<const int32_t> block_table;  // block ids covering n_past + n_new positions
    LogitsRows logits = LogitsRows::kLast;
    bool hidden = false;  // also return a final hidden state row per new token
};

struct ForwardBatch {
    std::vector<SequenceStep> sequences;
    // Per entry, a choice to make on the device instead of returning its last row (the entry's
    // logits must be kLast; only for a backend whose samples_on_device()). Empty when no entry
    // asks, else one per entry.
    std::vector<std::optional<DeviceSampling>> device_sample{};

    const DeviceSampling* device_sample_of(size_t seq) const {
        return seq < device_sample.size() && device_sample[seq].has_value()
                   ? &*device_sample[seq]
                   : nullptr;
    }
};

struct ForwardOutput {
    int64_t n_vocab = 0;
    std::vector<float> logits;       // [n_rows, n_vocab], rows in batch order
    std::vector<int64_t> first_row;  // per sequence, its first row in `logits`
    std::vector<int64_t> n_rows;     // per sequence, how many rows it got
    // Per sequence, the token chosen on the device where the step asked (device_sample), else
    // id -1; empty when no entry asked.
    std::vector<TokenLogprob> sampled;

    // Final hidden states of the entries that asked for them (SequenceStep::hidden).
    int64_t n_embd = 0;
    std::vector<float> hidden;              // [n_hidden_rows, n_embd], rows in batch order
    std::vector<int64_t> hidden_first_row;  // per sequence, its first row in `hidden`
    std::vector<int64_t> hidden_n_rows;     // per sequence: its token count, or 0

    // Row `i` of sequence `seq`. Precondition: i < n_rows[seq].
    std::span<const float> row(size_t seq, int64_t i = 0) const {
        return {logits.data() + (first_row[seq] + i) * n_vocab, static_cast<size_t>(n_vocab)};
    }
    // Hidden state of new token `i` of sequence `seq`. Precondition: i < hidden_n_rows[seq].
    std::span<const float> hidden_row(size_t seq, int64_t i) const {
        return {hidden.data() + (hidden_first_row[seq] + i) * n_embd,
                static_cast<size_t>(n_embd)};
    }
};

// How the backend stores the matrices it multiplies with; math is always fp32.
enum class WeightFormat {
    kAsStored,  // f32 stays f32, bf16 stays bf16; f16 and fp8 are widened to f32
    kF32,
    kBF16,
    kInt8,  // weight-only int8 with one fp32 scale per output channel (embedding, norms and
            // router stay in their stored float format)
    kF8E4M3,  // CUDA only: weight-only fp8 E4M3 with one fp32 scale per output channel,
              // quantised at load (embedding and router in bf16, norms f32)
    kInt4,    // CUDA only: the experts as int4 with an fp16 scale per group of values
              // (inference/int4_weights.h), quantised at load; the rest as stored
};

struct BackendMemory {
    int64_t weight_bytes = 0;    // bytes of weights the backend reads (mapped or owned)
    int64_t kv_cache_bytes = 0;  // bytes of the configured KV cache
};

class Backend {
public:
    virtual ~Backend() = default;

    virtual std::string name() const = 0;
    virtual const ModelConfig& config() const = 0;
    virtual BackendMemory memory() const = 0;

    // Bytes of weights one decode token reads: the dense matrices, one embedding row and the
    // n_expert_used experts of every layer. Benchmarks divide by this.
    virtual int64_t active_weight_bytes() const = 0;

    // Allocates (or reallocates, dropping all contents) the KV cache. kInvalidArgument for a
    // non-positive size; kResourceExhausted when the memory cannot be had.
    virtual Status configure_kv_cache(const KvCacheSpec& spec) = 0;
    virtual KvCacheSpec kv_cache_spec() const = 0;

    // Whether forward() accepts SequenceStep::device_sample; see the file comment.
    virtual bool samples_on_device() const { return false; }
    // How many entries of one step may ask for device sampling (its workspace is allocated up
    // front); a step asking for more is kInvalidArgument. 0 where samples_on_device() is false.
    virtual int64_t device_sample_capacity() const { return 0; }

    // Runs one step; see the file comment.
    virtual Result<ForwardOutput> forward(const ForwardBatch& batch) = 0;

    // Copies all layers' K and V of block `src` into block `dst` (copy-on-write of a shared block).
    virtual Status copy_kv_block(int32_t src, int32_t dst) = 0;

    // Ok while the backend can run steps. A backend that cannot any more (a rank of a parallel
    // engine failed) returns why; every later call then fails with that status, and the engine
    // stops serving (engine.h).
    virtual Status health() const { return Status::ok_status(); }
};

}  // namespace sluice::inference
