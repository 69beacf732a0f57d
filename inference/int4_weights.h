#pragma once
// int4 weight-only quantisation of the experts (w1, v1, w2) with one fp16 scale per group of
// `group_size` values along the reduction dimension: the format, the host quantiser and
// dequantiser, and the reference of the arithmetic the CUDA expert kernels perform
// (inference/cuda/int4_experts.cuh), so that host and device agree and a checkpoint quantised
// here reloads to the very bytes quantising at load gives (inference/cuda/quantize.cu).
//
// Codes are symmetric: q in -8..7, value = q · scale, no zero point. A code is stored as the
// unsigned nibble q + 8, two per byte, value 2j in the low nibble of byte j and 2j + 1 in the
// high one. Why symmetric: the kernel turns a nibble n into n - 8 with one OR and one subtract
// (the float whose bits are 0x4b000000 | n is 2^23 + n) and applies the scale once per group to
// a sum of q · x; a zero point would add a per-group load and a correction term for nothing on
// weights that are centred on zero, as trained matrices are.
//
// A group's scale is max(max_positive / 7, -min_negative / 8) rounded up to fp16 (so the most
// negative value may take code -8 and every value lies within [-8, 7] steps, even where fp16 is
// coarse), then each value is q = round_to_nearest_even(x / scale), clamped to [-8, 7] (a
// guard; rounding up leaves nothing to clamp). Every value is then within half a step of
// q · scale, and q · scale (exact in fp32: 11 + 4 bits) quantises back to q with the same scale.
// An all-zero group gets scale 1. fp16 scales halve the scales' bytes (0.125 bit per weight at
// group 128) and keep that round trip exact; a scale past fp16's range (a group whose magnitude
// passes about 458,000) and non-finite values are refused.
//
// Layout: every quantised matrix is stored with its output channels as rows and its reduction
// dimension along the row, the form the kernel streams (one row, one output):
//   w1, v1  [n_expert * n_ff, d_model]  as in the checkpoint (applied as x · wᵀ)
//   w2      [n_expert * d_model, n_ff]  each expert's [n_ff, d_model] block transposed (the
//                                       reference applies w2 as h · w2_e, reducing over n_ff)
// packed as U8 [rows, cols / 2] beside F16 scales `NAME_scale` [rows, cols / group_size].
// group_size is a multiple of kInt4GroupMultiple (a 16-byte load of 32 codes never straddles
// two groups) that divides d_model and n_ff; 128 by default.
//
// Thread safety: pure functions.

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "inference/model_config.h"

namespace sluice::inference {

inline constexpr int64_t kInt4DefaultGroupSize = 128;
inline constexpr int64_t kInt4GroupMultiple = 32;
inline constexpr int kInt4MinCode = -8;
inline constexpr int kInt4MaxCode = 7;

// True for the tensors int4 quantises: the experts' w1, v1 and w2.
bool int4_quantizes(const std::string& tensor_name);
// True for w2, stored transposed per expert.
bool int4_transposed(const std::string& tensor_name);
// "NAME_scale".
std::string int4_scale_tensor_name(const std::string& tensor_name);

// Output rows and reduction length of a quantised expert matrix (see Layout).
struct Int4MatrixShape {
    int64_t rows = 0;
    int64_t cols = 0;
};
Int4MatrixShape int4_matrix_shape(const std::string& tensor_name, const ModelConfig& config);
// The stored shapes: codes [rows, cols / 2], scales [rows, cols / group_size].
std::vector<int64_t> int4_codes_shape(const std::string& tensor_name, const ModelConfig& config);
std::vector<int64_t> int4_scales_shape(const std::string& tensor_name, const ModelConfig& config);

// kInvalidArgument naming `field` unless group_size is a positive multiple of
// kInt4GroupMultiple dividing d_model and n_ff.
Status check_int4_group_size(int64_t group_size, const ModelConfig& config,
                             const std::string& field);

// fp16 bits of the scale of a group whose largest value is max_positive (>= 0) and smallest
// min_negative (<= 0), rounded up: 1 for an all-zero group, infinity (0x7c00, refused by the
// quantisers) past fp16's range.
uint16_t int4_group_scale(float max_positive, float min_negative);

// Quantises a row-major [rows, cols] matrix: codes gets rows · cols / 2 bytes, scales
// rows · cols / group_size fp16 values. kInvalidArgument when cols is not a multiple of
// group_size, group_size not a positive multiple of kInt4GroupMultiple, a value is not finite,
// or a group's scale is past fp16's range; the message names row and column.
Status quantize_int4_rows(const float* src, int64_t rows, int64_t cols, int64_t group_size,
                          uint8_t* codes, uint16_t* scales);

// q · scale in fp32, [rows, cols]. Preconditions as quantize_int4_rows's (checked).
void dequantize_int4_rows(const uint8_t* codes, const uint16_t* scales, int64_t rows, int64_t cols,
                          int64_t group_size, float* dst);

// The signed code of value i of a packed row.
inline int int4_code(const uint8_t* codes, int64_t i) {
    const int nibble = (codes[i / 2] >> (4 * (i % 2))) & 0xf;
    return nibble - 8;
}

// Transposes each of `blocks` row-major [rows, cols] blocks: src [blocks * rows, cols] to
// dst [blocks * cols, rows] (w2's expert blocks to and from the stored layout).
void transpose_blocks(const float* src, int64_t blocks, int64_t rows, int64_t cols, float* dst);

// The arithmetic of the CUDA int4 expert kernels, as their CPU reference:
// y[t, r] = Σ_c scale(r, c) · (Σ_{i in c} q[r, i] · x[t, i]) over runs c of kInt4GroupMultiple
// values in order, fp32 throughout. x: [m, cols]; y: [m, rows]. The device sums the runs in
// another order (lanes, then a warp reduction), so parity holds to rounding, not bits.
void int4_rows_product(const uint8_t* codes, const uint16_t* scales, int64_t rows, int64_t cols,
                       int64_t group_size, const float* x, int64_t m, float* y);

}  // namespace sluice::inference
