#pragma once
// DBRX's forward pass on the CPU (the model, one file; the backend around it is cpu_backend.cpp).
//
// Per block, following Hugging Face's DbrxBlock:
//   h = LayerNorm_1(x); qkv = clamp(h · Wqkvᵀ, ±clip_qkv); q, k = NeoX-RoPE(q, k);
//   x = x + out_proj(GQA-attention(q, K-cache, V-cache))
//   h = LayerNorm_2(x); p = softmax_fp32(h · routerᵀ); top-k, renormalised by the p-norm;
//   x = x + Σ_e w_e · ((act(h · w1_eᵀ) ⊙ (h · v1_eᵀ)) · w2_e)
// then logits = LayerNorm_f(x) · lm_headᵀ. The tokens routed to an expert are gathered and
// multiplied as one group per expert.
//
// One rank of a parallel plan runs the same pass over its shard (dbrx_shard.h) and joins the
// other ranks through its communicators (RankComms) at the points docs/parallel.md lists: after
// the out-projection (all-reduce over all ranks), after the experts (tensor plan: all-reduce;
// expert plan: all-to-all dispatch and combine, then all-gather of the token slices; the grid:
// both, the all-to-alls between expert groups and the all-reduce inside one) and after the
// lm_head (all-gather over all ranks). Every rank ends a step with the same residual stream and
// the full logits.
//
// Thread safety: owned by one thread; uses its thread pool inside forward().

#include <cstdint>
#include <memory>
#include <vector>

#include "common/result.h"
#include "inference/backend.h"
#include "inference/communicator.h"
#include "inference/cpu/attention.h"
#include "inference/cpu/matmul.h"
#include "inference/cpu/ops.h"
#include "inference/cpu/thread_pool.h"
#include "inference/cpu/weights.h"
#include "inference/dbrx_shard.h"
#include "inference/safetensors.h"

namespace sluice::inference::cpu {

// Shapes are the shard's (dbrx_shard.h): n_head, n_head_kv, n_ff, n_expert and n_vocab are the
// rank's counts (the model's for DbrxShard::whole); n_qkv = (n_head + 2 n_head_kv) head_dim.
struct DbrxLayerWeights {
    std::vector<float> norm_1;  // [d_model]
    std::vector<float> norm_2;  // [d_model]
    WeightMatrix wqkv;          // [n_qkv, d_model]   the rank's q heads, then k, then v heads
    WeightMatrix out_proj;      // [d_model, n_head * head_dim]   the columns of its heads
    WeightMatrix router;        // [n_expert of the model, d_model]
    WeightMatrix w1;            // [n_expert * n_ff, d_model]   gate
    WeightMatrix v1;            // [n_expert * n_ff, d_model]   up
    WeightMatrix w2t;           // [n_expert * d_model, n_ff]   down, each expert transposed
};

struct DbrxWeights {
    WeightMatrix embedding;  // [n_vocab of the model, d_model]
    std::vector<DbrxLayerWeights> layers;
    std::vector<float> norm_f;  // [d_model]
    WeightMatrix lm_head;       // [n_vocab, d_model]   rows vocab_begin ..
};

// Prepares the weights of `shard` from a checkpoint already checked by check_dbrx_checkpoint,
// reading only the shard's slices of the mapping.
DbrxWeights load_dbrx_weights(const ModelConfig& config, const Checkpoint& checkpoint,
                              WeightFormat format);
DbrxWeights load_dbrx_weights(const ModelConfig& config, const Checkpoint& checkpoint,
                              WeightFormat format, const DbrxShard& shard);

// The communicators one rank of a parallel plan meets the others through; borrowed, they
// outlive the model.
struct RankComms {
    Communicator* all = nullptr;  // every rank: attention's all-reduce, the lm_head's all-gather
    // The ranks that split the same experts' ffn columns (tensor plan: all; grid: the rank's
    // expert group); null when the rank holds its experts whole (expert plan).
    Communicator* tensor = nullptr;
    // One rank per expert group, those with this rank's ffn slice (expert plan: all; grid: the
    // ranks of this tensor index); null when no tokens are dispatched (tensor plan).
    Communicator* expert = nullptr;
};

class DbrxModel {
public:
    // The whole model on one rank.
    DbrxModel(ModelConfig config, DbrxWeights weights, int n_threads);
    // One rank of a parallel plan: `weights` hold `shard`; `comms` join the ranks.
    DbrxModel(ModelConfig config, DbrxWeights weights, int n_threads, DbrxShard shard,
              RankComms comms);

    const ModelConfig& config() const { return config_; }
    const DbrxWeights& weights() const { return weights_; }
    const DbrxShard& shard() const { return shard_; }
    // K and V floats per position in this rank's cache: its KV heads.
    int64_t n_embd_kv() const { return shard_.n_head_kv * config_.head_dim(); }

    // Runs one validated step (see backend.h) over `cache`, filling `out`. Fails only when a
    // collective fails (the group was aborted): the step is then lost on every rank.
    Status forward(const ForwardBatch& batch, KvCacheStorage* cache, ForwardOutput* out);

private:
    void attention(int64_t layer, const ForwardBatch& batch, KvCacheStorage* cache);
    Status moe(const DbrxLayerWeights& layer);
    Status moe_expert_parallel(const DbrxLayerWeights& layer);  // dbrx_expert_parallel.cpp
    // The experts of this rank over tokens already grouped by expert: expert_in_ rows
    // [group_start[e], group_start[e + 1]) go to local expert e; writes expert_out_.
    void run_experts(const DbrxLayerWeights& layer, const std::vector<int64_t>& group_start);
    // Sums `data` [count] over `comm`'s ranks; nothing without one.
    static Status all_reduce(Communicator* comm, std::vector<float>* data, int64_t count);
    Status lm_head(int64_t n_rows, ForwardOutput* out);

    ModelConfig config_;
    DbrxWeights weights_;
    DbrxShard shard_;
    RankComms comms_;  // all null on one rank
    ThreadPool pool_;
    Matmul matmul_;

    // Per-step buffers, kept between steps to avoid reallocation.
    std::vector<int32_t> positions_;     // [n_tokens]
    std::vector<float> x_;               // [n_tokens, d_model] residual stream
    std::vector<float> h_;               // [n_tokens, d_model]
    std::vector<float> qkv_;             // [n_tokens, n_qkv]
    std::vector<float> attn_;            // [n_tokens, n_head * head_dim] of this rank
    std::vector<float> router_logits_;   // [n_tokens, n_expert]
    std::vector<float> expert_in_;       // [n_tokens * k, d_model] tokens grouped by expert
    std::vector<float> gate_;            // [n_tokens * k, n_ff]
    std::vector<float> up_;              // [n_tokens * k, n_ff]
    std::vector<float> expert_out_;      // [n_tokens * k, d_model]
    std::vector<float> scores_;          // per thread, attention scores
    std::vector<float> gathered_;        // collective receive buffer
    RopeTable rope_;
};

}  // namespace sluice::inference::cpu
