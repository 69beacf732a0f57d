#include "inference/int4_weights.h"

#include <algorithm>
#include <cmath>

#include "common/check.h"
#include "inference/dtype.h"

namespace sluice::inference {

namespace {

constexpr uint16_t kF16One = 0x3c00;
constexpr uint16_t kF16Infinity = 0x7c00;

// Rounds to the nearest integer, ties to even, for |v| < 2^22: adding and subtracting 1.5 · 2^23
// leaves v rounded in the default rounding mode (no fast math here), as rintf does on the
// device; std::nearbyint is a library call on baseline x86-64 and was most of the quantiser's
// time. Quotients here are at most about 8.5 in magnitude.
float round_to_even(float v) {
    constexpr float kShift = 12582912.0f;  // 1.5 · 2^23
    return (v + kShift) - kShift;
}

bool shape_fits(int64_t cols, int64_t group_size) {
    return group_size > 0 && group_size % kInt4GroupMultiple == 0 && cols % group_size == 0;
}

}  // namespace

bool int4_quantizes(const std::string& tensor_name) {
    return tensor_name.ends_with("ffn.experts.mlp.w1") ||
           tensor_name.ends_with("ffn.experts.mlp.v1") ||
           tensor_name.ends_with("ffn.experts.mlp.w2");
}

bool int4_transposed(const std::string& tensor_name) {
    return tensor_name.ends_with("ffn.experts.mlp.w2");
}

std::string int4_scale_tensor_name(const std::string& tensor_name) {
    return tensor_name + "_scale";
}

Int4MatrixShape int4_matrix_shape(const std::string& tensor_name, const ModelConfig& config) {
    if (int4_transposed(tensor_name)) {
        return {config.n_expert * config.d_model, config.n_ff};
    }
    return {config.n_expert * config.n_ff, config.d_model};
}

std::vector<int64_t> int4_codes_shape(const std::string& tensor_name, const ModelConfig& config) {
    const Int4MatrixShape shape = int4_matrix_shape(tensor_name, config);
    return {shape.rows, shape.cols / 2};
}

std::vector<int64_t> int4_scales_shape(const std::string& tensor_name, const ModelConfig& config) {
    const Int4MatrixShape shape = int4_matrix_shape(tensor_name, config);
    return {shape.rows, shape.cols / config.int4_group_size};
}

Status check_int4_group_size(int64_t group_size, const ModelConfig& config,
                             const std::string& field) {
    if (group_size <= 0 || group_size % kInt4GroupMultiple != 0) {
        return invalid_argument("config field '" + field + "': " + std::to_string(group_size) +
                                " is not a positive multiple of " +
                                std::to_string(kInt4GroupMultiple));
    }
    if (config.d_model % group_size != 0 || config.n_ff % group_size != 0) {
        return invalid_argument("config field '" + field + "': " + std::to_string(group_size) +
                                " does not divide the experts' reduction dimensions d_model " +
                                std::to_string(config.d_model) + " and ffn_hidden_size " +
                                std::to_string(config.n_ff));
    }
    return Status::ok_status();
}

uint16_t int4_group_scale(float max_positive, float min_negative) {
    // Both quotients are correctly rounded, as the device's are (no fast math there).
    const float scale = std::max(max_positive / static_cast<float>(kInt4MaxCode),
                                 -min_negative / static_cast<float>(-kInt4MinCode));
    if (scale == 0.0f) {
        return kF16One;
    }
    // Rounded up (the device's __float2half_ru), so that no value of the group needs more than
    // 7 or -8 steps, however coarse fp16 is near its subnormals.
    uint16_t bits = f32_to_f16(scale);
    if (f16_to_f32(bits) < scale) {
        ++bits;  // the next fp16 value up (positive, so the next encoding); 0x7c00 is infinity
    }
    return bits;
}

Status quantize_int4_rows(const float* src, int64_t rows, int64_t cols, int64_t group_size,
                          uint8_t* codes, uint16_t* scales) {
    if (!shape_fits(cols, group_size) || rows < 0) {
        return invalid_argument(
            "int4 quantisation: [" + std::to_string(rows) + ", " + std::to_string(cols) +
            "] in groups of " + std::to_string(group_size) +
            ", expected a group size that is a positive multiple of " +
            std::to_string(kInt4GroupMultiple) + " and divides " + std::to_string(cols));
    }
    const int64_t n_groups = cols / group_size;
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t g = 0; g < n_groups; ++g) {
            const float* values = src + r * cols + g * group_size;
            float max_positive = 0.0f;
            float min_negative = 0.0f;
            for (int64_t i = 0; i < group_size; ++i) {
                if (!std::isfinite(values[i])) {
                    return invalid_argument("int4 quantisation: value " +
                                            std::to_string(values[i]) + " at row " +
                                            std::to_string(r) + ", column " +
                                            std::to_string(g * group_size + i) + " is not finite");
                }
                max_positive = std::max(max_positive, values[i]);
                min_negative = std::min(min_negative, values[i]);
            }
            const uint16_t scale_bits = int4_group_scale(max_positive, min_negative);
            if (scale_bits == kF16Infinity) {
                return invalid_argument("int4 quantisation: row " + std::to_string(r) +
                                        ", columns " + std::to_string(g * group_size) + ".." +
                                        std::to_string((g + 1) * group_size - 1) +
                                        ": magnitude past the range of an fp16 scale");
            }
            scales[r * n_groups + g] = scale_bits;
            const float scale = f16_to_f32(scale_bits);
            uint8_t* out = codes + (r * cols + g * group_size) / 2;
            for (int64_t i = 0; i < group_size; i += 2) {
                uint8_t byte = 0;
                for (int64_t half = 0; half < 2; ++half) {
                    const float q = std::clamp(round_to_even(values[i + half] / scale),
                                               static_cast<float>(kInt4MinCode),
                                               static_cast<float>(kInt4MaxCode));
                    const auto nibble = static_cast<uint8_t>(static_cast<int>(q) + 8);
                    byte = static_cast<uint8_t>(byte | (nibble << (4 * half)));
                }
                out[i / 2] = byte;
            }
        }
    }
    return Status::ok_status();
}

void dequantize_int4_rows(const uint8_t* codes, const uint16_t* scales, int64_t rows, int64_t cols,
                          int64_t group_size, float* dst) {
    SLUICE_CHECK(shape_fits(cols, group_size), "int4 rows split into whole groups");
    const int64_t n_groups = cols / group_size;
    for (int64_t r = 0; r < rows; ++r) {
        const uint8_t* row = codes + r * cols / 2;
        for (int64_t c = 0; c < cols; ++c) {
            const float scale = f16_to_f32(scales[r * n_groups + c / group_size]);
            dst[r * cols + c] = static_cast<float>(int4_code(row, c)) * scale;
        }
    }
}

void transpose_blocks(const float* src, int64_t blocks, int64_t rows, int64_t cols, float* dst) {
    for (int64_t b = 0; b < blocks; ++b) {
        const float* in = src + b * rows * cols;
        float* out = dst + b * rows * cols;
        for (int64_t r = 0; r < rows; ++r) {
            for (int64_t c = 0; c < cols; ++c) {
                out[c * rows + r] = in[r * cols + c];
            }
        }
    }
}

void int4_rows_product(const uint8_t* codes, const uint16_t* scales, int64_t rows, int64_t cols,
                       int64_t group_size, const float* x, int64_t m, float* y) {
    SLUICE_CHECK(shape_fits(cols, group_size), "int4 rows split into whole groups");
    const int64_t n_groups = cols / group_size;
    for (int64_t t = 0; t < m; ++t) {
        for (int64_t r = 0; r < rows; ++r) {
            const uint8_t* row = codes + r * cols / 2;
            float sum = 0.0f;
            for (int64_t c0 = 0; c0 < cols; c0 += kInt4GroupMultiple) {
                float run = 0.0f;
                for (int64_t i = c0; i < c0 + kInt4GroupMultiple; ++i) {
                    run = std::fma(static_cast<float>(int4_code(row, i)), x[t * cols + i], run);
                }
                sum = std::fma(f16_to_f32(scales[r * n_groups + c0 / group_size]), run, sum);
            }
            y[t * rows + r] = sum;
        }
    }
}

}  // namespace sluice::inference
