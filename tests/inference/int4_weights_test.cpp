// int4 weight-only quantisation with fp16 group scales on the host (inference/int4_weights.h):
// the arithmetic the CUDA backend's quantisation at load and its expert kernels perform, here
// checked against brute force.
#include "inference/int4_weights.h"

#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "inference/dtype.h"

namespace sluice::inference {
namespace {

// The code in [-8, 7] nearest to value / scale by exhaustive search, ties to the even code.
int nearest_code(float value, float scale) {
    int best = 0;
    double best_error = std::numeric_limits<double>::infinity();
    for (int q = kInt4MinCode; q <= kInt4MaxCode; ++q) {
        const double error = std::fabs(static_cast<double>(value) / scale - q);
        if (error < best_error || (error == best_error && q % 2 == 0)) {
            best = q;
            best_error = error;
        }
    }
    return best;
}

std::vector<float> random_values(int64_t n, uint32_t seed, float spread) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, spread);
    std::vector<float> values(static_cast<size_t>(n));
    for (float& v : values) {
        v = normal(rng);
    }
    return values;
}

struct Quantized {
    std::vector<uint8_t> codes;
    std::vector<uint16_t> scales;
};

Quantized quantize(const std::vector<float>& values, int64_t rows, int64_t cols, int64_t group) {
    Quantized q{std::vector<uint8_t>(static_cast<size_t>(rows * cols / 2)),
                std::vector<uint16_t>(static_cast<size_t>(rows * cols / group))};
    const Status status =
        quantize_int4_rows(values.data(), rows, cols, group, q.codes.data(), q.scales.data());
    REQUIRE_MESSAGE(status.ok(), status.to_string());
    return q;
}

ModelConfig expert_config(int64_t d_model, int64_t n_ff) {
    ModelConfig config;
    config.d_model = d_model;
    config.n_ff = n_ff;
    config.n_expert = 4;
    return config;
}

}  // namespace

TEST_CASE("int4: codes are the nearest of -8..7 (brute force), within half a step of each value") {
    const int64_t rows = 24;
    const int64_t cols = 512;
    const int64_t group = 128;
    for (const float spread : {0.02f, 1.0f, 3e-5f, 900.0f}) {
        // Skewed rows too, so that the most negative value sets the scale in some groups.
        std::vector<float> values = random_values(rows * cols, 7, spread);
        for (int64_t i = 0; i < rows * cols; i += 3) {
            values[static_cast<size_t>(i)] -= spread * 0.5f;
        }
        const Quantized q = quantize(values, rows, cols, group);
        for (int64_t r = 0; r < rows; ++r) {
            for (int64_t g = 0; g < cols / group; ++g) {
                const float scale = f16_to_f32(q.scales[r * (cols / group) + g]);
                float max_positive = 0.0f;
                float min_negative = 0.0f;
                for (int64_t i = 0; i < group; ++i) {
                    max_positive = std::max(max_positive, values[r * cols + g * group + i]);
                    min_negative = std::min(min_negative, values[r * cols + g * group + i]);
                }
                // The scale is the larger of max/7 and -min/8 rounded up to fp16.
                const double wanted = std::max(max_positive / 7.0, -min_negative / 8.0);
                CHECK(scale >= wanted * (1 - 1e-7));
                CHECK(scale - wanted <= std::max(wanted * std::exp2(-10.0), std::exp2(-24.0)));
                for (int64_t i = 0; i < group; ++i) {
                    const int64_t c = g * group + i;
                    const float x = values[r * cols + c];
                    const int q_code = int4_code(q.codes.data() + r * cols / 2, c);
                    CHECK_MESSAGE(q_code == nearest_code(x, scale),
                                  "spread " << spread << " row " << r << " col " << c);
                    CHECK(std::fabs(x - q_code * scale) <= 0.5 * scale * (1 + 1e-6));
                }
            }
        }
    }
}

TEST_CASE("int4: representable values round-trip exactly; an all-zero group gets scale 1") {
    const int64_t rows = 16;
    const int64_t cols = 256;
    const int64_t group = 64;
    std::mt19937 rng(3);
    std::uniform_int_distribution<int> code(kInt4MinCode, kInt4MaxCode);
    std::uniform_real_distribution<float> exponent(-20.0f, 12.0f);
    std::vector<uint8_t> codes(static_cast<size_t>(rows * cols / 2));
    std::vector<uint16_t> scales(static_cast<size_t>(rows * cols / group));
    for (uint16_t& s : scales) {
        s = f32_to_f16(std::exp2(exponent(rng)));
    }
    std::vector<int> q(static_cast<size_t>(rows * cols));
    for (int64_t i = 0; i < rows * cols; ++i) {
        q[i] = code(rng);
    }
    // Each group holds a 7 or a -8, so that its scale is exactly the one it was made with.
    for (int64_t g = 0; g < rows * cols / group; ++g) {
        q[g * group + static_cast<int64_t>(rng() % group)] = g % 2 == 0 ? 7 : -8;
    }
    for (int64_t i = 0; i < rows * cols; i += 2) {
        codes[i / 2] = static_cast<uint8_t>((q[i] + 8) | ((q[i + 1] + 8) << 4));
    }
    std::vector<float> values(static_cast<size_t>(rows * cols));
    dequantize_int4_rows(codes.data(), scales.data(), rows, cols, group, values.data());
    for (int64_t i = 0; i < rows * cols; ++i) {
        CHECK(values[i] == q[i] * f16_to_f32(scales[i / group]));
    }
    const Quantized again = quantize(values, rows, cols, group);
    CHECK(again.codes == codes);
    CHECK(again.scales == scales);

    const std::vector<float> zeros(64, 0.0f);
    const Quantized zero = quantize(zeros, 1, 64, 32);
    CHECK(zero.scales == std::vector<uint16_t>{0x3c00, 0x3c00});
    CHECK(zero.codes == std::vector<uint8_t>(32, 0x88));
    // A group too small for a normal fp16 scale still quantises (rounded up to the smallest
    // subnormal).
    std::vector<float> tiny(32, 0.0f);
    tiny[5] = 1e-12f;
    const Quantized small = quantize(tiny, 1, 32, 32);
    CHECK(small.scales[0] == 0x0001);
}

TEST_CASE("int4: bad shapes, non-finite values and out-of-range groups are refused") {
    std::vector<float> values(4 * 256, 0.5f);
    std::vector<uint8_t> codes(values.size() / 2);
    std::vector<uint16_t> scales(values.size());
    auto refused = [&](int64_t rows, int64_t cols, int64_t group) {
        const Status s =
            quantize_int4_rows(values.data(), rows, cols, group, codes.data(), scales.data());
        CHECK(s.code() == StatusCode::kInvalidArgument);
        return s.message();
    };
    CHECK(refused(2, 200, 128).find("divides 200") != std::string::npos);
    CHECK(refused(2, 256, 48).find("multiple of 32") != std::string::npos);
    CHECK(refused(2, 256, 0).find("groups of 0") != std::string::npos);
    values[300] = std::numeric_limits<float>::quiet_NaN();
    CHECK(refused(4, 256, 128).find("row 1, column 44 is not finite") != std::string::npos);
    values[300] = std::numeric_limits<float>::infinity();
    CHECK(refused(4, 256, 128).find("row 1, column 44") != std::string::npos);
    values[300] = 1e7f;
    CHECK(refused(4, 256, 128).find("row 1, columns 0..127") != std::string::npos);

    const ModelConfig config = expert_config(256, 384);
    CHECK(check_int4_group_size(128, config, "g").ok());
    CHECK(check_int4_group_size(64, config, "g").ok());
    const Status not_dividing =
        check_int4_group_size(256, config, "quantization_config.group_size");
    CHECK(not_dividing.message().find("'quantization_config.group_size'") != std::string::npos);
    CHECK(not_dividing.message().find("ffn_hidden_size 384") != std::string::npos);
    CHECK_FALSE(check_int4_group_size(96, config, "g").ok());  // divides 384, not 256
    CHECK_FALSE(check_int4_group_size(16, config, "g").ok());
}

TEST_CASE("int4: the kernels' product equals a double sum over the dequantised weights") {
    const int64_t rows = 40;
    const int64_t cols = 384;
    const int64_t group = 128;
    const int64_t m = 3;
    const std::vector<float> w = random_values(rows * cols, 11, 0.05f);
    const std::vector<float> x = random_values(m * cols, 12, 1.0f);
    const Quantized q = quantize(w, rows, cols, group);
    std::vector<float> dequantized(w.size());
    dequantize_int4_rows(q.codes.data(), q.scales.data(), rows, cols, group, dequantized.data());
    std::vector<float> y(static_cast<size_t>(m * rows));
    int4_rows_product(q.codes.data(), q.scales.data(), rows, cols, group, x.data(), m, y.data());
    for (int64_t t = 0; t < m; ++t) {
        for (int64_t r = 0; r < rows; ++r) {
            double sum = 0.0;
            double magnitude = 0.0;
            for (int64_t c = 0; c < cols; ++c) {
                sum += static_cast<double>(dequantized[r * cols + c]) * x[t * cols + c];
                magnitude +=
                    std::fabs(static_cast<double>(dequantized[r * cols + c]) * x[t * cols + c]);
            }
            CHECK(std::fabs(y[t * rows + r] - sum) <= 1e-6 * magnitude + 1e-9);
        }
    }
}

TEST_CASE("int4: the experts' stored shapes; w2's blocks transposed and back") {
    ModelConfig config = expert_config(256, 384);
    config.int4_group_size = 128;
    const std::string w1 = "transformer.blocks.0.ffn.experts.mlp.w1";
    const std::string w2 = "transformer.blocks.0.ffn.experts.mlp.w2";
    CHECK(int4_quantizes(w1));
    CHECK(int4_quantizes(w2));
    CHECK_FALSE(int4_quantizes("transformer.blocks.0.ffn.router.layer.weight"));
    CHECK_FALSE(int4_quantizes("lm_head.weight"));
    CHECK(int4_codes_shape(w1, config) == std::vector<int64_t>{4 * 384, 128});
    CHECK(int4_scales_shape(w1, config) == std::vector<int64_t>{4 * 384, 2});
    CHECK(int4_codes_shape(w2, config) == std::vector<int64_t>{4 * 256, 192});
    CHECK(int4_scales_shape(w2, config) == std::vector<int64_t>{4 * 256, 3});
    CHECK(int4_scale_tensor_name(w2) == w2 + "_scale");

    const std::vector<float> blocks = random_values(3 * 5 * 7, 5, 1.0f);
    std::vector<float> transposed(blocks.size());
    std::vector<float> back(blocks.size());
    transpose_blocks(blocks.data(), 3, 5, 7, transposed.data());
    CHECK(transposed[1 * 35 + 2 * 5 + 4] == blocks[1 * 35 + 4 * 7 + 2]);
    transpose_blocks(transposed.data(), 3, 7, 5, back.data());
    CHECK(back == blocks);
}

}  // namespace sluice::inference
