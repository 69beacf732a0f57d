#pragma once
// The grouped expert products with int4 weights on the tensor cores, for decode-sized steps:
// the codes are widened in registers straight into mma.sync's bf16 operands (exactly: a code
// n - 8 is a small integer) and multiplied by the activations split into two bf16 terms, sums in
// fp32, the group's fp16 scale applied to each group's sum (int4_mma_layout.h has the layouts).
// Each code is unpacked once per pass of up to 32 tokens, where the CUDA-core kernels of
// int4_experts.cuh unpack it once per 8 and spend a multiply-add per code and token.
//
//   int4_mma_gate_up  act = f(x · w1_eᵀ) ⊙ (x · v1_eᵀ): a block of 4 warps per 16 rows of w1
//                     (and the same rows of v1) of one expert; its warps split the reduction by
//                     groups and their sums are added in warp order through shared memory, the
//                     GLU fused there, so results do not depend on timing.
//   int4_mma_down     y = act · w2_e from w2 stored transposed (a row per output column), the
//                     same way over n_ff.
//
// Each first packs its activations into `staging` (int4_mma_layout.h): n_slots × (d_model or
// n_ff) words.
//
// Requirements (int4_mma_fits): the group a multiple of 128 (so d_model and n_ff are too), codes
// 16-byte aligned, staging for the step's slots, at most kInt4MmaMaxTokens tokens. An expert's
// slots are taken 32 at a time, each pass reading its weights again: past a few passes the
// bf16 panels on cuBLAS (tensor_core.cuh) read fewer bytes per product.
//
// Thread safety: launches on the caller's stream.

#include <cstdint>

#include "inference/cuda/cuda_check.h"
#include "inference/cuda/moe.cuh"

namespace sluice::inference::cuda {

// The most tokens a step on these kernels may have (CudaBackendOptions::int4_mma_experts sends
// int4 steps up to this size here, beyond it to the bf16 panels).
inline constexpr int64_t kInt4MmaMaxTokens = 128;

// Words for packed activations: n_slots × max(d_model, n_ff).
struct Int4MmaStaging {
    uint32_t* words = nullptr;
    int64_t capacity = 0;
};

inline int64_t int4_mma_staging_words(int64_t n_slots, int64_t d_model, int64_t n_ff) {
    return n_slots * (d_model > n_ff ? d_model : n_ff);
}

// Do these weights, this step and this staging meet the requirements above?
bool int4_mma_fits(const ExpertWeights& weights, const ExpertShape& shape,
                   const Int4MmaStaging& staging);

// x_sorted: [n_slots, d_model]; offsets: [n_expert + 1]; act: [n_slots, n_ff]
Status int4_mma_gate_up(const float* x_sorted, const int32_t* offsets, const ExpertWeights& weights,
                        const ExpertShape& shape, GluActivation activation,
                        const Int4MmaStaging& staging, float* act, cudaStream_t stream);

// act: [n_slots, n_ff]; y: [n_slots, d_model]
Status int4_mma_down(const float* act, const int32_t* offsets, const ExpertWeights& weights,
                     const ExpertShape& shape, const Int4MmaStaging& staging, float* y,
                     cudaStream_t stream);

}  // namespace sluice::inference::cuda
