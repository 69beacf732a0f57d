// fp8 E4M3 rounding and per-channel quantisation on the host (inference/fp8_weights.h): the
// arithmetic the CUDA backend's quantisation at load performs, here checked against brute force.
#include "inference/fp8_weights.h"

#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "inference/dtype.h"

namespace sluice::inference {
namespace {

// The nearest finite E4M3 value by exhaustive search, ties to the even code (the even mantissa),
// magnitudes past 448 saturating.
uint8_t nearest_code(float value) {
    const float magnitude = std::fabs(value);
    uint8_t best = 0;
    double best_error = std::numeric_limits<double>::infinity();
    for (int code = 0; code < 0x7f; ++code) {  // 0x7f is NaN
        const double error =
            std::fabs(static_cast<double>(fp8_e4m3_to_f32(static_cast<uint8_t>(code))) - magnitude);
        if (error < best_error || (error == best_error && code % 2 == 0)) {
            best = static_cast<uint8_t>(code);
            best_error = error;
        }
    }
    return static_cast<uint8_t>((std::signbit(value) ? 0x80 : 0) | best);
}

}  // namespace

TEST_CASE("fp8: every finite code rounds back to itself; NaN, infinities and overflow saturate") {
    for (int code = 0; code < 256; ++code) {
        if ((code & 0x7f) == 0x7f) {
            continue;
        }
        const float value = fp8_e4m3_to_f32(static_cast<uint8_t>(code));
        CHECK_MESSAGE(f32_to_fp8_e4m3(value) == code, "code " << code << " value " << value);
    }
    CHECK(f32_to_fp8_e4m3(std::numeric_limits<float>::quiet_NaN()) == 0x7f);
    CHECK(f32_to_fp8_e4m3(std::numeric_limits<float>::infinity()) == 0x7e);
    CHECK(f32_to_fp8_e4m3(-std::numeric_limits<float>::infinity()) == 0xfe);
    CHECK(f32_to_fp8_e4m3(1e9f) == 0x7e);
    CHECK(f32_to_fp8_e4m3(464.0f) == 0x7e);  // the midpoint to the absent 480 ties down to 448
    CHECK(fp8_e4m3_to_f32(0x7e) == 448.0f);
    CHECK(f32_to_fp8_e4m3(1e-30f) == 0x00);
    CHECK(f32_to_fp8_e4m3(-1e-30f) == 0x80);
}

TEST_CASE("fp8: rounding is to the nearest value, ties to even, at every scale (brute force)") {
    std::mt19937 rng(17);
    std::uniform_real_distribution<float> exponent(-12.0f, 9.5f);
    int checked = 0;
    for (int i = 0; i < 20000; ++i) {
        const float value = std::exp2(exponent(rng)) * (rng() % 2 == 0 ? 1.0f : -1.0f);
        CHECK_MESSAGE(f32_to_fp8_e4m3(value) == nearest_code(value), "value " << value);
        ++checked;
    }
    // Exact midpoints between neighbouring codes, subnormal and normal: ties go to the even code.
    for (int code = 0; code < 0x7e; ++code) {
        const float low = fp8_e4m3_to_f32(static_cast<uint8_t>(code));
        const float high = fp8_e4m3_to_f32(static_cast<uint8_t>(code + 1));
        const float mid = (low + high) / 2;
        const uint8_t expected = static_cast<uint8_t>(code % 2 == 0 ? code : code + 1);
        CHECK_MESSAGE(f32_to_fp8_e4m3(mid) == expected, "midpoint of codes " << code);
        CHECK(f32_to_fp8_e4m3(-mid) == (expected | 0x80));
        ++checked;
    }
    CHECK(checked == 20000 + 0x7e);
}

TEST_CASE("fp8: per-row and per-column quantisation keep each value within half a step") {
    const int64_t rows = 7;
    const int64_t cols = 33;
    std::mt19937 rng(5);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    std::vector<float> matrix(rows * cols);
    for (float& v : matrix) {
        v = normal(rng);
    }
    // A zero row and a zero column: scale 1, codes 0.
    for (int64_t c = 0; c < cols; ++c) {
        matrix[2 * cols + c] = 0.0f;
    }
    for (int64_t r = 0; r < rows; ++r) {
        matrix[r * cols + 4] = 0.0f;
    }
    std::vector<uint8_t> codes(matrix.size());
    std::vector<float> row_scales(rows);
    quantize_fp8_rows(matrix.data(), rows, cols, codes.data(), row_scales.data());
    std::vector<float> back(matrix.size());
    dequantize_fp8_rows(codes.data(), row_scales.data(), rows, cols, back.data());
    for (int64_t r = 0; r < rows; ++r) {
        float max_abs = 0;
        for (int64_t c = 0; c < cols; ++c) {
            max_abs = std::max(max_abs, std::fabs(matrix[r * cols + c]));
        }
        CHECK(row_scales[r] == doctest::Approx(max_abs > 0 ? max_abs / 448.0f : 1.0f));
        for (int64_t c = 0; c < cols; ++c) {
            const float x = matrix[r * cols + c];
            // E4M3 keeps 3 mantissa bits: half a step is 1/16 of the value's binade, and 2^-10
            // of the scale below the smallest normal.
            const float bound = std::max(std::fabs(x) / 16.0f, row_scales[r] * 0.0009765625f);
            CHECK_MESSAGE(std::fabs(back[r * cols + c] - x) <= bound, "row " << r << " col " << c);
            if (std::fabs(x) == max_abs && max_abs > 0) {
                CHECK((codes[r * cols + c] & 0x7f) == 0x7e);  // the channel's peak maps to 448
            }
        }
    }
    for (int64_t c = 0; c < cols; ++c) {
        CHECK(codes[2 * cols + c] == 0);
    }
    CHECK(row_scales[2] == 1.0f);

    std::vector<float> col_scales(cols);
    quantize_fp8_columns(matrix.data(), rows, cols, codes.data(), col_scales.data());
    dequantize_fp8_columns(codes.data(), col_scales.data(), rows, cols, back.data());
    CHECK(col_scales[4] == 1.0f);
    for (int64_t c = 0; c < cols; ++c) {
        for (int64_t r = 0; r < rows; ++r) {
            const float x = matrix[r * cols + c];
            const float bound = std::max(std::fabs(x) / 16.0f, col_scales[c] * 0.0009765625f);
            CHECK(std::fabs(back[r * cols + c] - x) <= bound);
        }
    }
}

TEST_CASE("fp8: which tensors are quantised and where their scales go") {
    ModelConfig config;
    config.n_expert = 16;
    CHECK(fp8_quantizes("lm_head.weight"));
    CHECK(fp8_quantizes("transformer.blocks.3.norm_attn_norm.attn.Wqkv.weight"));
    CHECK(fp8_quantizes("transformer.blocks.3.norm_attn_norm.attn.out_proj.weight"));
    CHECK(fp8_quantizes("transformer.blocks.3.ffn.experts.mlp.v1"));
    CHECK_FALSE(fp8_quantizes("transformer.wte.weight"));
    CHECK_FALSE(fp8_quantizes("transformer.blocks.3.ffn.router.layer.weight"));
    CHECK_FALSE(fp8_quantizes("transformer.blocks.3.norm_attn_norm.norm_1.weight"));
    CHECK(fp8_scale_tensor_name("lm_head.weight") == "lm_head.weight_scale");
    CHECK(fp8_scale_shape("lm_head.weight", 100, 64, config) == std::vector<int64_t>{100});
    CHECK(fp8_scale_shape("transformer.blocks.0.ffn.experts.mlp.w2", 16 * 96, 64, config) ==
          std::vector<int64_t>{16, 64});
}

}  // namespace sluice::inference
