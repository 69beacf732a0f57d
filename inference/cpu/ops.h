#pragma once
// Element-wise and row-wise operations of the DBRX forward pass on the CPU, in fp32.
// Each matches the reference's definition (Hugging Face modeling_dbrx) as noted.
//
// Thread safety: pure functions over caller-owned buffers.

#include <cstdint>
#include <span>
#include <vector>

#include "inference/model_config.h"

namespace sluice::inference::cpu {

// nn.LayerNorm(d, bias=False): (x - mean) / sqrt(var + eps) * weight, biased variance.
// x, out: [n, d] (may alias); weight: [d]
void layer_norm(const float* x, const float* weight, int64_t n, int64_t d, float eps, float* out);

// NeoX rotary tables for the given positions: cos, sin [n_positions, head_dim / 2], with
// inv_freq[i] = 1 / theta^(2i / head_dim) as the reference computes it (in fp32).
struct RopeTable {
    int64_t half = 0;
    std::vector<float> cos;
    std::vector<float> sin;
};
void rope_table(std::span<const int32_t> positions, int64_t head_dim, double theta,
                RopeTable* table);

// Rotates one head vector in place by position row `row` of the table, NeoX style: the first
// and second halves form the pairs (x[i], x[i + half]).
// x: [head_dim]
void rope_apply(float* x, const RopeTable& table, int64_t row);

// In-place softmax over n values, fp32 with the max subtracted.
void softmax(float* x, int64_t n);

// gate[i] = act(gate[i]) * up[i]; gate, up: [n]
void glu(float* gate, const float* up, int64_t n, Activation activation);

// Router: probabilities = softmax(logits) in fp32, the top-k experts (ties to the lower index),
// their probabilities divided by their p-norm when `norm_p` is set.
// logits: [n_expert]; experts, weights: [k]
void route_top_k(const float* logits, int64_t n_expert, int64_t k, const ModelConfig& config,
                 int32_t* experts, float* weights);

}  // namespace sluice::inference::cpu
