#pragma once
// Weights made on the device: fp8 E4M3 quantisation with fp32 scales per output channel, and
// random fills for benchmarks that need DBRX-sized weights without a checkpoint.
//
//   quantize_rows_fp8  one scale per row (the output channel of a weight applied as x · Wᵀ):
//                      scale = max |row| / 448 (E4M3's largest finite value), each value
//                      rounded to nearest, saturating; an all-zero row gets scale 1.
//   quantize_cols_fp8  one scale per column over `rows` rows (w2_e, applied as act · w2_e, whose
//                      output channels are its columns).
//   quantize_int4      int4 codes with an fp16 scale per group of values along each row, the
//                      arithmetic of quantize_int4_rows (inference/int4_weights.h) operation for
//                      operation, so the device writes the bytes a saved checkpoint holds.
//                      Non-finite values, which the host refuses, are not checked here.
//   fill_random        uniform values in [-bound, bound] from a hash of (seed, index), so that
//                      the same seed gives the same weights on any device.
//
// Sources are f32 or bf16 device arrays; launches on the caller's stream.

#include <cstdint>

#include "inference/cuda/cuda_check.h"

namespace sluice::inference::cuda {

// E4M3's largest finite magnitude.
inline constexpr float kFp8E4M3Max = 448.0f;

// src: [rows, cols] of src_type; dst: [rows, cols] fp8; scales: [rows]
Status quantize_rows_fp8(const void* src, DeviceDType src_type, int64_t rows, int64_t cols,
                         void* dst, float* scales, cudaStream_t stream);

// src: [rows, cols] of src_type; dst: [rows, cols] fp8; scales: [cols]
Status quantize_cols_fp8(const void* src, DeviceDType src_type, int64_t rows, int64_t cols,
                         void* dst, float* scales, cudaStream_t stream);

// src: [rows, cols] of src_type, or [cols, rows] when `transposed` (w2's [n_ff, d_model] block,
// whose output channels are its columns); codes: [rows, cols / 2] bytes; scales: fp16 bits
// [rows, cols / group_size]
Status quantize_int4(const void* src, DeviceDType src_type, int64_t rows, int64_t cols,
                     int64_t group_size, bool transposed, void* codes, uint16_t* scales,
                     cudaStream_t stream);

// dst: [count] of type (f32 or bf16); value i = bound * (2 u - 1), u from a hash of (seed, i).
Status fill_random(void* dst, DeviceDType type, int64_t count, uint64_t seed, float bound,
                   cudaStream_t stream);

// dst: [count] f32, every value `value`.
Status fill_constant(float* dst, int64_t count, float value, cudaStream_t stream);

}  // namespace sluice::inference::cuda
