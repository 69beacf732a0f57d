#pragma once
// Row-wise kernels of the DBRX forward pass: the embedding lookup and LayerNorm.
// CPU references: WeightMatrix::row_to_f32 (cpu/weights.h) and layer_norm (cpu/ops.h).
//
// Host launchers: check shapes, launch on `stream`, return the launch error. Pointers are device
// pointers.

#include <cstdint>

#include "inference/cuda/cuda_check.h"

namespace sluice::inference::cuda {

// out[t] = table[tokens[t]] widened to fp32.
// table: [n_vocab, d] of `type`; tokens: [n_tokens]; out: [n_tokens, d]
Status embed_tokens(const void* table, DeviceDType type, const int32_t* tokens, int64_t n_tokens,
                    int64_t d, float* out, cudaStream_t stream);

// nn.LayerNorm(d, bias=False) of rows of x: out[i] = LN(x[rows[i]]) * weight, or of x[i] when
// `rows` is null. Two passes over the row in fp32 (mean, then centred variance).
// x: [*, d]; rows: [n] or null; weight: [d]; out: [n, d] (may alias x only when rows is null)
Status layer_norm(const float* x, const int32_t* rows, const float* weight, int64_t n, int64_t d,
                  float eps, float* out, cudaStream_t stream);

}  // namespace sluice::inference::cuda
