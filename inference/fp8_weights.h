#pragma once
// fp8 E4M3 weight-only quantisation with one fp32 scale per output channel: which tensors of a
// DBRX checkpoint it applies to, where their scales go, and the host arithmetic, which is the same
// operation for operation as the CUDA backend's quantisation at load (inference/cuda/quantize.cu),
// so a checkpoint quantised here reloads to the very bytes quantising at load gives.
//
// The rule: every weight matrix is quantised except the token embedding (a gather, where fp8
// saves no bandwidth per step) and the router (16 × d_model, whose top-k choice is sensitive to
// small errors); layer norms stay f32. A matrix's scale is max|row| / 448 per output row — for
// w2, which the reference applies as h @ w2 (its rows are the input side), per column within each
// expert's [n_ff, d_model] block. Values are x · (1 / scale) rounded to nearest even and saturated
// (f32_to_fp8_e4m3). An all-zero channel gets scale 1.
//
// In a quantised checkpoint (ModelConfig::quantization kFp8PerChannel) a matrix `NAME` is stored
// F8_E4M3 in its usual shape and its scales as F32 tensor `NAME_scale`: shape [rows], or
// [n_expert, d_model] for w2.
//
// Thread safety: pure functions.

#include <cstdint>
#include <string>
#include <vector>

#include "inference/model_config.h"

namespace sluice::inference {

inline constexpr float kFp8E4M3MaxFinite = 448.0f;

// True for the tensors the rule above quantises.
bool fp8_quantizes(const std::string& tensor_name);
// True for the experts' w2 (column scales per expert block).
bool fp8_column_scales(const std::string& tensor_name);
// "NAME_scale".
std::string fp8_scale_tensor_name(const std::string& tensor_name);
// The scale tensor's shape for a [rows, cols] matrix.
std::vector<int64_t> fp8_scale_shape(const std::string& tensor_name, int64_t rows, int64_t cols,
                                     const ModelConfig& config);

// Quantises a row-major [rows, cols] matrix with one scale per row: dst gets rows·cols codes,
// scales gets rows values.
void quantize_fp8_rows(const float* src, int64_t rows, int64_t cols, uint8_t* dst, float* scales);
// The same with one scale per column over all `rows` (one expert's w2 block).
void quantize_fp8_columns(const float* src, int64_t rows, int64_t cols, uint8_t* dst,
                          float* scales);

// code · scale, the value the kernels compute with.
void dequantize_fp8_rows(const uint8_t* codes, const float* scales, int64_t rows, int64_t cols,
                         float* dst);
void dequantize_fp8_columns(const uint8_t* codes, const float* scales, int64_t rows, int64_t cols,
                            float* dst);

}  // namespace sluice::inference
