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
// Thread safety: owned by one thread; uses its thread pool inside forward().

#include <cstdint>
#include <memory>
#include <vector>

#include "common/result.h"
#include "inference/backend.h"
#include "inference/cpu/attention.h"
#include "inference/cpu/matmul.h"
#include "inference/cpu/ops.h"
#include "inference/cpu/thread_pool.h"
#include "inference/cpu/weights.h"
#include "inference/safetensors.h"

namespace sluice::inference::cpu {

struct DbrxLayerWeights {
    std::vector<float> norm_1;  // [d_model]
    std::vector<float> norm_2;  // [d_model]
    WeightMatrix wqkv;          // [n_qkv, d_model]
    WeightMatrix out_proj;      // [d_model, d_model]
    WeightMatrix router;        // [n_expert, d_model]
    WeightMatrix w1;            // [n_expert * n_ff, d_model]   gate
    WeightMatrix v1;            // [n_expert * n_ff, d_model]   up
    WeightMatrix w2t;           // [n_expert * d_model, n_ff]   down, each expert transposed
};

struct DbrxWeights {
    WeightMatrix embedding;  // [n_vocab, d_model]
    std::vector<DbrxLayerWeights> layers;
    std::vector<float> norm_f;  // [d_model]
    WeightMatrix lm_head;       // [n_vocab, d_model]
};

// Prepares the weights from a checkpoint already checked by check_dbrx_checkpoint.
DbrxWeights load_dbrx_weights(const ModelConfig& config, const Checkpoint& checkpoint,
                              WeightFormat format);

class DbrxModel {
public:
    DbrxModel(ModelConfig config, DbrxWeights weights, int n_threads);

    const ModelConfig& config() const { return config_; }
    const DbrxWeights& weights() const { return weights_; }

    // Runs one validated step (see backend.h) over `cache`, filling `out`.
    void forward(const ForwardBatch& batch, KvCacheStorage* cache, ForwardOutput* out);

private:
    void attention(int64_t layer, const ForwardBatch& batch, KvCacheStorage* cache);
    void moe(const DbrxLayerWeights& layer);

    ModelConfig config_;
    DbrxWeights weights_;
    ThreadPool pool_;
    Matmul matmul_;

    // Per-step buffers, kept between steps to avoid reallocation.
    std::vector<int32_t> positions_;     // [n_tokens]
    std::vector<float> x_;               // [n_tokens, d_model] residual stream
    std::vector<float> h_;               // [n_tokens, d_model]
    std::vector<float> qkv_;             // [n_tokens, n_qkv]
    std::vector<float> attn_;            // [n_tokens, d_model]
    std::vector<float> router_logits_;   // [n_tokens, n_expert]
    std::vector<float> expert_in_;       // [n_tokens * k, d_model] tokens grouped by expert
    std::vector<float> gate_;            // [n_tokens * k, n_ff]
    std::vector<float> up_;              // [n_tokens * k, n_ff]
    std::vector<float> expert_out_;      // [n_tokens * k, d_model]
    std::vector<float> scores_;          // per thread, attention scores
    RopeTable rope_;
};

}  // namespace sluice::inference::cpu
