#include "inference/cuda/step_buffers.h"

#include <algorithm>
#include <cmath>

#include "inference/cuda/attention_split_k.cuh"
#include "inference/cuda/int4_mma.cuh"
#include "inference/cuda/moe.cuh"
#include "inference/gpu_memory_plan.h"

namespace sluice::inference::cuda {

static_assert(kSkinnyExpertMaxTokens == kGpuStreamedExpertMaxTokens &&
                  kDownSplitRows == kGpuDownSplitRows,
              "the memory plan sizes the split down product of moe.cuh");
static_assert(kInt4MmaMaxTokens == kGpuInt4MmaMaxTokens,
              "the memory plan sizes the int4 tensor-core path's staging");
static_assert(kSplitKMaxTokens == kGpuSplitKMaxTokens &&
                  kAttentionPartition == kGpuAttentionPartition,
              "the memory plan sizes split-K attention's workspace");

Status StepBuffers::allocate(const ModelConfig& c, int64_t tokens) {
    max_tokens = tokens;
    const int64_t d = c.d_model;
    const int64_t k = c.n_expert_used;
    const int64_t f = 4;
    SLUICE_RETURN_IF_ERROR(x.allocate(tokens * d * f));
    SLUICE_RETURN_IF_ERROR(h.allocate(tokens * d * f));
    SLUICE_RETURN_IF_ERROR(attn.allocate(tokens * d * f));
    SLUICE_RETURN_IF_ERROR(qkv.allocate(tokens * c.n_qkv() * f));
    SLUICE_RETURN_IF_ERROR(router_logits.allocate(tokens * c.n_expert * f));
    SLUICE_RETURN_IF_ERROR(route_weights.allocate(tokens * k * f));
    SLUICE_RETURN_IF_ERROR(route_experts.allocate(tokens * k * 4));
    SLUICE_RETURN_IF_ERROR(x_sorted.allocate(tokens * k * d * f));
    SLUICE_RETURN_IF_ERROR(act.allocate(tokens * k * c.n_ff * f));
    SLUICE_RETURN_IF_ERROR(expert_out.allocate(tokens * k * d * f));
    SLUICE_RETURN_IF_ERROR(logits.allocate(tokens * c.n_vocab * f));
    SLUICE_RETURN_IF_ERROR(offsets.allocate((c.n_expert + 1) * 4));
    SLUICE_RETURN_IF_ERROR(pair_slot.allocate(tokens * k * 4));
    SLUICE_RETURN_IF_ERROR(slot_token.allocate(tokens * k * 4));
    SLUICE_RETURN_IF_ERROR(x_hi.allocate(tokens * k * d * 2));
    SLUICE_RETURN_IF_ERROR(x_lo.allocate(tokens * k * d * 2));
    SLUICE_RETURN_IF_ERROR(up.allocate(tokens * k * c.n_ff * f));
    SLUICE_RETURN_IF_ERROR(act_hi.allocate(tokens * k * c.n_ff * 2));
    SLUICE_RETURN_IF_ERROR(act_lo.allocate(tokens * k * c.n_ff * 2));
    SLUICE_RETURN_IF_ERROR(host_offsets.allocate(c.n_expert + 1));
    down_partial_slots = std::min(tokens, kSkinnyExpertMaxTokens) * k;
    SLUICE_RETURN_IF_ERROR(
        down_partial.allocate(down_split_floats(down_partial_slots, d, c.n_ff) * f));
    int4_staging_words = int4_mma_staging_words(std::min(tokens, kInt4MmaMaxTokens) * k, d, c.n_ff);
    SLUICE_RETURN_IF_ERROR(int4_staging.allocate(int4_staging_words * 4));
    attn_max_partitions = attention_partitions(c.max_seq_len);
    SLUICE_RETURN_IF_ERROR(attn_partials.allocate(gpu_split_k_floats(c, tokens) * f));
    // The reference's inv_freq: 1 / theta^(2i / head_dim) in fp32 (cpu::rope_table).
    const int64_t hd = c.head_dim();
    std::vector<float> freq(static_cast<size_t>(hd / 2));
    for (int64_t i = 0; i < hd / 2; ++i) {
        const auto exponent = static_cast<float>(2 * i) / static_cast<float>(hd);
        freq[static_cast<size_t>(i)] =
            1.0f / static_cast<float>(std::pow(static_cast<float>(c.rope_theta), exponent));
    }
    SLUICE_RETURN_IF_ERROR(inv_freq.allocate(static_cast<int64_t>(freq.size()) * 4));
    SLUICE_CUDA_CHECK(
        cudaMemcpy(inv_freq.get(), freq.data(), freq.size() * 4, cudaMemcpyHostToDevice));
    return Status::ok_status();
}

void StepIndex::build(const ForwardBatch& batch, int32_t block_size, ForwardOutput* out) {
    n_tokens = 0;
    for (const SequenceStep& seq : batch.sequences) {
        n_tokens += static_cast<int64_t>(seq.tokens.size());
    }
    n_seq = static_cast<int64_t>(batch.sequences.size());
    packed.assign(static_cast<size_t>(5 * n_tokens + n_seq), 0);
    out->first_row.clear();
    out->n_rows.clear();
    out->hidden_first_row.clear();
    out->hidden_n_rows.clear();
    n_logit_rows = 0;
    n_hidden_rows = 0;
    max_context = 0;
    int64_t t = 0;
    for (int64_t s = 0; s < n_seq; ++s) {
        const SequenceStep& seq = batch.sequences[static_cast<size_t>(s)];
        const auto n_new = static_cast<int64_t>(seq.tokens.size());
        const int64_t n_positions = seq.n_past + n_new;
        max_context = std::max(max_context, n_positions);
        packed[static_cast<size_t>(table_offset() + s)] =
            static_cast<int32_t>(static_cast<int64_t>(packed.size()) - block_tables());
        const int64_t blocks = (n_positions + block_size - 1) / block_size;
        packed.insert(packed.end(), seq.block_table.begin(), seq.block_table.begin() + blocks);

        out->first_row.push_back(n_logit_rows);
        out->hidden_first_row.push_back(n_hidden_rows);
        const int64_t first = seq.logits == LogitsRows::kAll ? 0 : n_new - 1;
        const int64_t count = seq.logits == LogitsRows::kNone ? 0 : n_new - first;
        out->n_rows.push_back(count);
        out->hidden_n_rows.push_back(seq.hidden ? n_new : 0);
        for (int64_t i = 0; i < n_new; ++i, ++t) {
            packed[static_cast<size_t>(tokens() + t)] = seq.tokens[static_cast<size_t>(i)];
            packed[static_cast<size_t>(positions() + t)] = static_cast<int32_t>(seq.n_past + i);
            packed[static_cast<size_t>(token_seq() + t)] = static_cast<int32_t>(s);
            if (i >= first && count > 0) {
                packed[static_cast<size_t>(logit_rows() + n_logit_rows++)] =
                    static_cast<int32_t>(t);
            }
            if (seq.hidden) {
                packed[static_cast<size_t>(hidden_rows() + n_hidden_rows++)] =
                    static_cast<int32_t>(t);
            }
        }
    }
}

int64_t step_index_capacity(int64_t max_tokens, int64_t max_seq_len, int32_t block_size) {
    const int64_t blocks_per_seq = (max_seq_len + block_size - 1) / block_size;
    return 6 * max_tokens + max_tokens * blocks_per_seq;
}

}  // namespace sluice::inference::cuda
