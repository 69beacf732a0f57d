#pragma once
// The mixture-of-experts half of a DBRX block on the GPU, as five kernels:
//
//   route_top_k        softmax of the router logits in fp32, the top-k experts (ties to the
//                      lower index), weights renormalised by their p-norm when configured
//                      (moe_normalize_expert_weights). CPU reference: route_top_k (cpu/ops.h).
//   permute_by_expert  groups the (token, choice) pairs by expert, in expert order and token
//                      order within an expert, as DbrxModel::moe does on the CPU; writes each
//                      expert's first slot, each pair's slot and each slot's token, and gathers
//                      the tokens' rows into that order.
//   expert_gate_up     one launch over all experts: for the slots of expert e,
//                      act = f(x · w1_eᵀ) ⊙ (x · v1_eᵀ), gate and up from the same x tile, the
//                      activation and product fused. CPU reference: Matmul + glu.
//   expert_down        one launch over all experts: y = act · w2_e, w2 applied without a
//                      transpose as the reference does (w2_e is [n_ff, d_model]).
//   unpermute_add      x[t] += Σ_j weight[t, j] · y[slot of (t, j)], added in expert order
//                      like the CPU.
//
// The grouped products take one of three paths. The backend sends steps of at least
// tensor_core_min_tokens tokens with bf16 or fp8 weights to the tensor cores (grouped_experts_tc,
// tensor_core.cuh). Otherwise expert_gate_up and expert_down stream each active expert's weights
// once for steps of at most kSkinnyExpertMaxTokens tokens, 16 bytes per load, with every slot of
// the expert served from the same loads (skinny.cuh); the down product then splits each expert's
// rows into kDownSplitRows-row parts summed in a fixed order, so results do not depend on timing.
// Larger steps (f32 weights) run tiled kernels that stage weights and tokens in shared memory.
//
// Expert weights are the checkpoint's fused tensors, [n_expert * n_ff, d_model] of `type`.

#include <cstdint>
#include <optional>

#include "inference/cuda/cuda_check.h"

namespace sluice::inference::cuda {

inline constexpr int64_t kMaxRouterExperts = 64;

// The GLU activation of the experts (ModelConfig::activation), without the config header, which
// nvcc need not parse.
enum class GluActivation { kSilu, kGelu };

// logits: [n_tokens, n_expert]; experts, weights: [n_tokens, k]
Status route_top_k(const float* logits, int64_t n_tokens, int64_t n_expert, int64_t k,
                   std::optional<double> norm_p, int32_t* experts, float* weights,
                   cudaStream_t stream);

// experts: [n_tokens * k]; offsets: [n_expert + 1]; pair_slot, slot_token: [n_tokens * k];
// x: [n_tokens, d]; x_sorted: [n_tokens * k, d]
struct Permutation {
    int32_t* offsets = nullptr;
    int32_t* pair_slot = nullptr;
    int32_t* slot_token = nullptr;
};
Status permute_by_expert(const int32_t* experts, int64_t n_tokens, int64_t k, int64_t n_expert,
                         const Permutation& perm, const float* x, int64_t d, float* x_sorted,
                         cudaStream_t stream);

struct ExpertShape {
    int64_t n_expert = 0;
    int64_t d_model = 0;
    int64_t n_ff = 0;
    int64_t n_slots = 0;   // n_tokens * k
    int64_t n_tokens = 0;  // an upper bound of any expert's slot count (one slot per token)
};

// The experts' fused weights, [n_expert * n_ff, d_model] each, of one type. fp8 weights carry
// fp32 scales per output channel: w1 and v1 per row ([n_expert * n_ff]), w2 per expert and
// output column ([n_expert * d_model]); null for other types.
//
// int4 weights (DeviceDType::kInt4, inference/int4_weights.h) are packed codes with fp16 scales
// per group of `group_size` values along each row, w2 stored transposed per expert
// ([n_expert * d_model, n_ff], a row per output column); expert_gate_up and expert_down hand
// them to the kernels of int4_experts.cuh, grouped_experts_tc widens them to bf16 panels.
struct ExpertWeights {
    const void* w1 = nullptr;
    const void* v1 = nullptr;
    const void* w2 = nullptr;
    const float* w1_scales = nullptr;
    const float* v1_scales = nullptr;
    const float* w2_scales = nullptr;
    DeviceDType type = DeviceDType::kF32;
    // int4 only: fp16 bits, [rows, cols / group_size] per matrix.
    const uint16_t* w1_groups = nullptr;
    const uint16_t* v1_groups = nullptr;
    const uint16_t* w2_groups = nullptr;
    int64_t group_size = 0;
};

// Steps of at most this many tokens take the weight-streaming path.
inline constexpr int64_t kSkinnyExpertMaxTokens = 32;
// Rows of w2_e one part of the split down product sums.
inline constexpr int64_t kDownSplitRows = 512;

// Scratch of the split down product: partial sums [n_parts, n_slots, d_model] fp32, where
// n_parts = ceil(n_ff / kDownSplitRows), for up to `max_slots` slots. A step with more slots, or
// none given, takes the tiled path.
struct DownSplit {
    float* partial = nullptr;
    int64_t max_slots = 0;
};

// Floats DownSplit::partial needs for `max_slots` slots.
inline int64_t down_split_floats(int64_t max_slots, int64_t d_model, int64_t n_ff) {
    return max_slots * d_model * ((n_ff + kDownSplitRows - 1) / kDownSplitRows);
}

// x_sorted: [n_slots, d_model]; offsets: [n_expert + 1]; act: [n_slots, n_ff]
Status expert_gate_up(const float* x_sorted, const int32_t* offsets, const ExpertWeights& weights,
                      const ExpertShape& shape, GluActivation activation, float* act,
                      cudaStream_t stream);

// act: [n_slots, n_ff]; y: [n_slots, d_model]
Status expert_down(const float* act, const int32_t* offsets, const ExpertWeights& weights,
                   const ExpertShape& shape, const DownSplit& split, float* y,
                   cudaStream_t stream);

// x: [n_tokens, d]; experts, weights: [n_tokens, k]; pair_slot: [n_tokens * k];
// y: [n_tokens * k, d]
Status unpermute_add(const float* y, const int32_t* pair_slot, const int32_t* experts,
                     const float* weights, int64_t n_tokens, int64_t k, int64_t d, float* x,
                     cudaStream_t stream);

}  // namespace sluice::inference::cuda
