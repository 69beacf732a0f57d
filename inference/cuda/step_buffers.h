#pragma once
// The device buffers of one forward step, sized once for `max_tokens` new tokens so that a step
// allocates nothing (their total is gpu_activation_bytes of gpu_memory_plan.h), and the packed
// per-step index arrays uploaded with one copy.
//
// Thread safety: owned by the backend's thread.

#include <cstdint>
#include <utility>
#include <vector>

#include "common/status.h"
#include "inference/backend.h"
#include "inference/cuda/cuda_check.h"
#include "inference/model_config.h"

namespace sluice::inference::cuda {

// Page-locked host memory for int32 values (a device copy into it can be waited for on its own
// stream), freed on destruction.
class PinnedInts {
public:
    PinnedInts() = default;
    PinnedInts(PinnedInts&& other) noexcept : ptr_(other.ptr_) { other.ptr_ = nullptr; }
    PinnedInts& operator=(PinnedInts&& other) noexcept {
        std::swap(ptr_, other.ptr_);
        return *this;
    }
    PinnedInts(const PinnedInts&) = delete;
    PinnedInts& operator=(const PinnedInts&) = delete;
    ~PinnedInts() {
        if (ptr_ != nullptr) {
            (void)cudaFreeHost(ptr_);
        }
    }
    Status allocate(int64_t count) {
        void* fresh = nullptr;
        SLUICE_CUDA_CHECK(cudaMallocHost(&fresh, static_cast<size_t>(count) * sizeof(int32_t)));
        PinnedInts owned;
        owned.ptr_ = static_cast<int32_t*>(fresh);
        std::swap(ptr_, owned.ptr_);
        return Status::ok_status();
    }
    int32_t* get() const { return ptr_; }

private:
    int32_t* ptr_ = nullptr;
};

struct StepBuffers {
    int64_t max_tokens = 0;
    DeviceBuffer x;              // [T, d] residual stream
    DeviceBuffer h;              // [T, d] norm output; later the hidden-state rows
    DeviceBuffer attn;           // [T, d] attention output; later the normed logits rows
    DeviceBuffer qkv;            // [T, n_qkv]
    DeviceBuffer router_logits;  // [T, n_expert]
    DeviceBuffer route_weights;  // [T, k]
    DeviceBuffer route_experts;  // [T, k] int32
    DeviceBuffer x_sorted;       // [T * k, d] tokens permuted by expert
    DeviceBuffer act;            // [T * k, n_ff] gate x up
    DeviceBuffer expert_out;     // [T * k, d]
    DeviceBuffer logits;         // [T, n_vocab]
    DeviceBuffer offsets;        // [n_expert + 1] int32
    DeviceBuffer pair_slot;      // [T * k] int32
    DeviceBuffer slot_token;     // [T * k] int32
    DeviceBuffer inv_freq;       // [head_dim / 2] RoPE inverse frequencies
    DeviceBuffer down_partial;   // the split down product's partial sums (moe.cuh DownSplit)
    int64_t down_partial_slots = 0;
    // int4 experts on the tensor cores (int4_mma.cuh): the packed activations of
    // min(T, kInt4MmaMaxTokens) * k slots.
    DeviceBuffer int4_staging;
    int64_t int4_staging_words = 0;
    // Split-K attention's partial results (attention_split_k.cuh) for min(T, kSplitKMaxTokens)
    // tokens and the partitions of the longest context the model allows (max_seq_len), so that
    // any step, and a captured graph launching that many partitions, fits.
    DeviceBuffer attn_partials;
    int32_t attn_max_partitions = 0;
    // The tensor-core path (tensor_core.cuh): inputs as bf16 hi/lo [T * k, d], the up product
    // [T * k, n_ff] fp32, the activation as bf16 hi/lo [T * k, n_ff], and the per-expert
    // offsets read back to the host.
    DeviceBuffer x_hi;
    DeviceBuffer x_lo;
    DeviceBuffer up;
    DeviceBuffer act_hi;
    DeviceBuffer act_lo;
    PinnedInts host_offsets;

    Status allocate(const ModelConfig& config, int64_t tokens);
};

// The step's index arrays, packed host-side in this order and uploaded at once:
// tokens, positions, token_seq, logit_rows, hidden_rows [n_tokens each, rows padded to it],
// table_offset [n_seq], block_tables [sum of blocks needed].
struct StepIndex {
    std::vector<int32_t> packed;
    int64_t n_tokens = 0;
    int64_t n_seq = 0;
    int64_t n_logit_rows = 0;
    int64_t n_hidden_rows = 0;
    int64_t max_context = 0;  // the longest entry's n_past + n_new

    // Offsets (in int32 elements) of each array inside `packed`.
    int64_t tokens() const { return 0; }
    int64_t positions() const { return n_tokens; }
    int64_t token_seq() const { return 2 * n_tokens; }
    int64_t logit_rows() const { return 3 * n_tokens; }
    int64_t hidden_rows() const { return 4 * n_tokens; }
    int64_t table_offset() const { return 5 * n_tokens; }
    int64_t block_tables() const { return 5 * n_tokens + n_seq; }

    // Fills the arrays for a validated batch, and the row bookkeeping of `out`.
    void build(const ForwardBatch& batch, int32_t block_size, ForwardOutput* out);
};

// Upper bound of StepIndex::packed's size for `max_tokens` tokens (one sequence per token at
// most), so that its device copy can be allocated once.
int64_t step_index_capacity(int64_t max_tokens, int64_t max_seq_len, int32_t block_size);

}  // namespace sluice::inference::cuda
