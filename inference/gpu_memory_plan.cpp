#include "inference/gpu_memory_plan.h"

#include <algorithm>
#include <cstdio>

namespace sluice::inference {

std::string format_bytes(int64_t bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    auto value = static_cast<double>(bytes);
    int unit = 0;
    while (value >= 1024.0 && unit < 4) {
        value /= 1024.0;
        ++unit;
    }
    char text[48];
    if (unit == 0) {
        std::snprintf(text, sizeof(text), "%lld B", static_cast<long long>(bytes));
    } else {
        std::snprintf(text, sizeof(text), "%.1f %s", value, units[unit]);
    }
    return text;
}

std::string GpuMemoryPlan::describe() const {
    return "weights " + format_bytes(weight_bytes) + ", activations " +
           format_bytes(activation_bytes) + ", workspace " + format_bytes(workspace_bytes) +
           ", sampling " + format_bytes(sampling_bytes) + ", kv cache " +
           format_bytes(kv_cache_bytes);
}

int64_t gpu_activation_bytes(const ModelConfig& config, int64_t max_batch_tokens) {
    const int64_t d = config.d_model;
    const int64_t k = config.n_expert_used;
    // Floats per token, one term per buffer (see the file comment of cuda/cuda_backend.cu).
    const int64_t floats_per_token = 3 * d                  // x, h, attn
                                     + config.n_qkv()       // qkv
                                     + 2 * config.n_expert  // router logits, spare
                                     + 2 * k                // routing weights, chosen experts
                                     + 2 * k * d            // permuted input, expert output
                                     + k * config.n_ff      // gate x up
                                     + config.n_vocab       // one logits row
                                     // tensor-core path: inputs as bf16 hi/lo, the up product,
                                     // the activation as bf16 hi/lo
                                     + k * d + 2 * k * config.n_ff;
    const int64_t ints_per_token = 8 + 3 * k;  // ids, positions, sequence, rows, permutation
    const int64_t down_parts = (config.n_ff + kGpuDownSplitRows - 1) / kGpuDownSplitRows;
    const int64_t streamed_slots = std::min(max_batch_tokens, kGpuStreamedExpertMaxTokens) * k;
    const int64_t down_split_floats = streamed_slots * d * down_parts;
    // int4 experts on the tensor cores: packed activations, a word per value.
    const int64_t int4_staging_words =
        std::min(max_batch_tokens, kGpuInt4MmaMaxTokens) * k * std::max(d, config.n_ff);
    return max_batch_tokens * (floats_per_token * 4 + ints_per_token * 4) + down_split_floats * 4 +
           int4_staging_words * 4 + gpu_split_k_floats(config, max_batch_tokens) * 4;
}

int64_t gpu_split_k_floats(const ModelConfig& config, int64_t max_batch_tokens) {
    const int64_t partitions =
        (config.max_seq_len + kGpuAttentionPartition - 1) / kGpuAttentionPartition;
    return std::min(max_batch_tokens, kGpuSplitKMaxTokens) * config.n_head * partitions *
           (config.head_dim() + 2);
}

int64_t gpu_kv_cache_bytes(const ModelConfig& config, const KvCacheSpec& spec) {
    return 2 * config.n_layer * static_cast<int64_t>(spec.n_blocks) * spec.block_size *
           config.n_embd_kv() * 4;
}

GpuMemoryPlan plan_gpu_memory(const ModelConfig& config, int64_t weight_bytes,
                              int64_t max_batch_tokens, const KvCacheSpec& spec,
                              int64_t sampling_bytes) {
    GpuMemoryPlan plan;
    plan.weight_bytes = weight_bytes;
    plan.activation_bytes = gpu_activation_bytes(config, max_batch_tokens);
    plan.workspace_bytes = kGpuWidenPanelBytes + kGpuCublasWorkspaceBytes;
    plan.sampling_bytes = sampling_bytes;
    plan.kv_cache_bytes = gpu_kv_cache_bytes(config, spec);
    return plan;
}

Status check_gpu_memory_plan(const GpuMemoryPlan& plan, int64_t available_bytes,
                             const std::string& device) {
    if (plan.total() <= available_bytes) {
        return Status::ok_status();
    }
    return Status(StatusCode::kResourceExhausted, device + ": needs " + format_bytes(plan.total()) +
                                                      " (" + plan.describe() + "), " +
                                                      format_bytes(available_bytes) + " available");
}

}  // namespace sluice::inference
