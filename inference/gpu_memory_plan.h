#pragma once
// The device memory a CUDA backend needs, computed before anything is allocated, so that a
// configuration that cannot fit is refused with a message instead of failing half-way.
//
//   weights      every tensor in the format the backend keeps it (f32, bf16, or fp8 with its
//                scales)
//   activations  the per-step buffers for `max_batch_tokens` tokens: residual stream, norm
//                output, fused QKV, attention output, router logits and weights, the tokens
//                permuted by expert with their gate/up and down outputs, up to
//                max_batch_tokens rows of logits, the partial sums of the split down
//                product of decode steps (cuda/moe.cuh), the bf16 hi/lo copies and up
//                product of the tensor-core path (cuda/tensor_core.cuh), and the partial
//                results of split-K attention for up to kGpuSplitKMaxTokens tokens over
//                max_seq_len positions (cuda/attention_split_k.cuh)
//   workspace    the fp32 panel into which bf16 weights are widened for cuBLAS, and cuBLAS's
//                own workspace
//   sampling     device sampling's requests, results, probabilities, sort keys and sort scratch
//                for the most rows one step may sample (about 16 B per row and vocabulary entry;
//                computed by the CUDA backend, which asks the sort library for its scratch)
//   kv cache     2 (K and V) x n_layer x n_blocks x block_size x n_embd_kv fp32
//
// Thread safety: pure functions.

#include <cstdint>
#include <string>

#include "common/status.h"
#include "inference/backend.h"
#include "inference/model_config.h"

namespace sluice::inference {

struct GpuMemoryPlan {
    int64_t weight_bytes = 0;
    int64_t activation_bytes = 0;
    int64_t workspace_bytes = 0;
    int64_t sampling_bytes = 0;
    int64_t kv_cache_bytes = 0;

    int64_t total() const {
        return weight_bytes + activation_bytes + workspace_bytes + sampling_bytes +
               kv_cache_bytes;
    }
    // "weights 1.2 GiB, activations 30.0 MiB, workspace 96.0 MiB, sampling 98.0 MiB,
    //  kv cache 256.0 MiB"
    std::string describe() const;
};

// The fp32 widening panel for bf16 weights: the largest that is still a small share of memory.
inline constexpr int64_t kGpuWidenPanelBytes = 64LL << 20;
inline constexpr int64_t kGpuCublasWorkspaceBytes = 32LL << 20;

// The weight-streaming expert path (cuda/moe.cuh, whose constants must equal these): steps of
// at most this many tokens, w2 summed in parts of this many rows.
inline constexpr int64_t kGpuStreamedExpertMaxTokens = 32;
inline constexpr int64_t kGpuDownSplitRows = 512;
// int4 experts on the tensor cores (cuda/int4_mma.cuh, kInt4MmaMaxTokens): steps of at most this
// many tokens, whose packed activations the step buffers hold.
inline constexpr int64_t kGpuInt4MmaMaxTokens = 128;

// Split-K attention (cuda/attention_split_k.cuh, whose constants must equal these): steps of
// at most this many tokens, contexts cut into partitions of this many positions.
inline constexpr int64_t kGpuSplitKMaxTokens = 32;
inline constexpr int64_t kGpuAttentionPartition = 512;

// Floats of split-K attention's workspace: per (token, query head, partition of max_seq_len)
// head_dim accumulator values, a max and a sum.
int64_t gpu_split_k_floats(const ModelConfig& config, int64_t max_batch_tokens);

// Bytes of the step buffers for `max_batch_tokens` tokens.
int64_t gpu_activation_bytes(const ModelConfig& config, int64_t max_batch_tokens);

// Bytes of an fp32 KV cache of `spec` (0 blocks: none yet).
int64_t gpu_kv_cache_bytes(const ModelConfig& config, const KvCacheSpec& spec);

GpuMemoryPlan plan_gpu_memory(const ModelConfig& config, int64_t weight_bytes,
                              int64_t max_batch_tokens, const KvCacheSpec& spec,
                              int64_t sampling_bytes = 0);

// kResourceExhausted when the plan needs more than `available_bytes`, naming every part:
//   cuda device 0: needs 81.3 GiB (weights ..., kv cache ...), 79.1 GiB available
Status check_gpu_memory_plan(const GpuMemoryPlan& plan, int64_t available_bytes,
                             const std::string& device);

// "1.5 GiB", "12.0 MiB", "512 B"
std::string format_bytes(int64_t bytes);

}  // namespace sluice::inference
