#pragma once
// The grouped expert products with int4 weights (inference/int4_weights.h), dequantised inside
// the kernel: each weight row is streamed once per chunk of up to 8 slots, 16 bytes (32 codes)
// per load, the next loads in flight while the current ones are used. A nibble n becomes the
// code n - 8 with one OR and one subtract (the float whose bits are 0x4b000000 | n is 2^23 + n),
// each lane sums q · x over its run of 32 codes in fp32 and adds scale · run, the group's fp16
// scale applied once per run; a warp-shuffle sum gives the output. CPU reference:
// int4_rows_product (inference/int4_weights.h), which sums the same runs in order.
//
//   int4_gate_up  act = f(x · w1_eᵀ) ⊙ (x · v1_eᵀ): one warp per 2 rows of w1 and the same rows
//                 of v1, the GLU fused.
//   int4_down     y = act · w2_e, from w2 stored transposed (a row per output column): one warp
//                 per 4 output columns, reducing over n_ff in the same way; no split parts, so
//                 the result does not depend on timing.
//
// Steps below tensor_core_min_tokens(kInt4) tokens take these kernels (slots beyond 8 per expert
// are taken 8 at a time, each chunk reading the rows again); larger ones go to the tensor cores
// through bf16 panels (tensor_core.cuh). With CudaBackendOptions::int4_mma_experts, steps of up
// to kInt4MmaMaxTokens take int4_mma.cuh's kernels instead.
//
// Requirements (checked): group_size a multiple of 32 dividing d_model and n_ff; 16-byte aligned
// code rows (d_model and n_ff multiples of 32 give that from an aligned base) and activations.
//
// Thread safety: launches on the caller's stream.

#include <cstdint>

#include "inference/cuda/cuda_check.h"
#include "inference/cuda/moe.cuh"

namespace sluice::inference::cuda {

// x_sorted: [n_slots, d_model]; offsets: [n_expert + 1]; act: [n_slots, n_ff]
Status int4_gate_up(const float* x_sorted, const int32_t* offsets, const ExpertWeights& weights,
                    const ExpertShape& shape, GluActivation activation, float* act,
                    cudaStream_t stream);

// act: [n_slots, n_ff]; y: [n_slots, d_model]
Status int4_down(const float* act, const int32_t* offsets, const ExpertWeights& weights,
                 const ExpertShape& shape, float* y, cudaStream_t stream);

}  // namespace sluice::inference::cuda
