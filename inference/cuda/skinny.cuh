#pragma once
// Weight-streaming products for steps of few tokens (decode). There a product does a few
// multiply-adds per weight, so its time is the bytes of the weights over memory bandwidth: each
// weight is loaded once, 16 bytes per load (8 bf16, 16 fp8 or 4 f32 values), widened to fp32 in
// registers and multiplied by every token of the step from the same load; sums stay in fp32.
//
//   skinny_dense     y = x · W[rows]ᵀ (· scale per row) (+ beta · y) for up to kSkinnyMaxTokens
//                    tokens; one warp per 4 weight rows, a warp-shuffle sum per output.
//   skinny_gate_up   the grouped gate/up product of the experts with the slots the step routed
//                    to them (moe.cuh): one warp per 2 rows of w1 and the same 2 rows of v1,
//                    the GLU fused; an expert with more than kSkinnyMaxTokens slots takes them
//                    kSkinnyMaxTokens at a time.
//   skinny_down      y = act · w2_e, each thread 8 output columns; w2_e's rows are cut into parts
//                    of kDownSplitRows rows whose partial sums are then added in part order.
//
// Requirements (callers check with skinny_row_fits): row lengths a multiple of the values per
// 16-byte load, 16-byte aligned rows; callers fall back to the cuBLAS and tiled paths otherwise.
//
// Thread safety: launches on the caller's stream.

#include <cstdint>

#include "inference/cuda/cuda_check.h"
#include "inference/cuda/dense.cuh"
#include "inference/cuda/moe.cuh"

namespace sluice::inference::cuda {

inline constexpr int64_t kSkinnyMaxTokens = 8;

// Values of `type` per 16-byte load.
inline int64_t skinny_vector_width(DeviceDType type) { return 16 / device_dtype_size(type); }

// Can rows of `cols` values of `type` starting at `data` be streamed 16 bytes at a time?
bool skinny_row_fits(const void* data, DeviceDType type, int64_t cols);

// job.m <= kSkinnyMaxTokens; job.x rows of job.weight.cols floats, 16-byte aligned.
Status skinny_dense(const DenseJob& job, cudaStream_t stream);

// shape.n_tokens <= kSkinnyExpertMaxTokens.
Status skinny_gate_up(const float* x_sorted, const int32_t* offsets, const ExpertWeights& weights,
                      const ExpertShape& shape, GluActivation activation, float* act,
                      cudaStream_t stream);

// split.partial holds down_split_floats(shape.n_slots, ...) floats.
Status skinny_down(const float* act, const int32_t* offsets, const ExpertWeights& weights,
                   const ExpertShape& shape, float* partial, float* y, cudaStream_t stream);

}  // namespace sluice::inference::cuda
