#include "inference/fp8_weights.h"

#include <algorithm>
#include <cmath>

#include "inference/dtype.h"

namespace sluice::inference {

namespace {

// The device's scale_for: an all-zero channel keeps scale 1 (its codes are all zero anyway).
float scale_for(float max_abs) { return max_abs > 0.0f ? max_abs / kFp8E4M3MaxFinite : 1.0f; }

}  // namespace

bool fp8_quantizes(const std::string& tensor_name) {
    if (tensor_name == "transformer.wte.weight" ||
        tensor_name.ends_with("ffn.router.layer.weight")) {
        return false;
    }
    return tensor_name == "lm_head.weight" || tensor_name.ends_with("attn.Wqkv.weight") ||
           tensor_name.ends_with("attn.out_proj.weight") ||
           tensor_name.ends_with("ffn.experts.mlp.w1") ||
           tensor_name.ends_with("ffn.experts.mlp.v1") ||
           tensor_name.ends_with("ffn.experts.mlp.w2");
}

bool fp8_column_scales(const std::string& tensor_name) {
    return tensor_name.ends_with("ffn.experts.mlp.w2");
}

std::string fp8_scale_tensor_name(const std::string& tensor_name) { return tensor_name + "_scale"; }

std::vector<int64_t> fp8_scale_shape(const std::string& tensor_name, int64_t rows, int64_t cols,
                                     const ModelConfig& config) {
    if (fp8_column_scales(tensor_name)) {
        return {config.n_expert, cols};
    }
    return {rows};
}

void quantize_fp8_rows(const float* src, int64_t rows, int64_t cols, uint8_t* dst, float* scales) {
    for (int64_t r = 0; r < rows; ++r) {
        const float* row = src + r * cols;
        float max_abs = 0.0f;
        for (int64_t c = 0; c < cols; ++c) {
            max_abs = std::max(max_abs, std::fabs(row[c]));
        }
        const float scale = scale_for(max_abs);
        const float inverse = 1.0f / scale;
        for (int64_t c = 0; c < cols; ++c) {
            dst[r * cols + c] = f32_to_fp8_e4m3(row[c] * inverse);
        }
        scales[r] = scale;
    }
}

void quantize_fp8_columns(const float* src, int64_t rows, int64_t cols, uint8_t* dst,
                          float* scales) {
    std::vector<float> max_abs(static_cast<size_t>(cols), 0.0f);
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) {
            max_abs[c] = std::max(max_abs[c], std::fabs(src[r * cols + c]));
        }
    }
    std::vector<float> inverse(static_cast<size_t>(cols));
    for (int64_t c = 0; c < cols; ++c) {
        scales[c] = scale_for(max_abs[c]);
        inverse[c] = 1.0f / scales[c];
    }
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) {
            dst[r * cols + c] = f32_to_fp8_e4m3(src[r * cols + c] * inverse[c]);
        }
    }
}

void dequantize_fp8_rows(const uint8_t* codes, const float* scales, int64_t rows, int64_t cols,
                         float* dst) {
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) {
            dst[r * cols + c] = fp8_e4m3_to_f32(codes[r * cols + c]) * scales[r];
        }
    }
}

void dequantize_fp8_columns(const uint8_t* codes, const float* scales, int64_t rows, int64_t cols,
                            float* dst) {
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) {
            dst[r * cols + c] = fp8_e4m3_to_f32(codes[r * cols + c]) * scales[c];
        }
    }
}

}  // namespace sluice::inference
