// The layouts of the int4 tensor-core expert kernels (inference/cuda/int4_mma_layout.h), on the
// host: a warp's mma.sync products are replayed from PTX's fragment definitions of
// m16n8k16 (A: a lane's register r holds rows g + 8 (r % 2), k 2t + 8 (r / 2) and + 1; B: register
// r holds k 2t + 8r and + 1 of column g; C: element i is row g + 8 (i / 2), column 2t + i % 2), fed
// with what the kernel's lanes load and unpack, and compared with the plain sums Σ_k (code - 8) ·
// x. The device kernels use these very functions; their GPU test
// (tests/inference_gpu/int4_experts_test.cpp) checks the products against the CPU reference.
#include "inference/cuda/int4_mma_layout.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <set>
#include <vector>

#include "inference/dtype.h"

namespace sluice::inference::cuda::int4_mma {
namespace {

constexpr int kRows = 16;
constexpr int kTokens = 8;

// A bf16x2 word as its two values (the first in the low half).
std::array<float, 2> bf16x2_values(uint32_t word) {
    return {bf16_value(word & 0xffffu), bf16_value(word >> 16)};
}

// What fma.rn.bf16x2(biased, 1, -136) gives for a biased code pair: both inputs and the result
// are small integers, so the fma is exact and the bf16 result is the plain difference.
std::array<float, 2> unpacked_pair(uint32_t word, int i) {
    const auto biased = bf16x2_values(biased_code_pair(word, i));
    const auto bias = bf16x2_values(kBf16x2MinusCodeBias);
    const auto one = bf16x2_values(kBf16x2One);
    return {biased[0] * one[0] + bias[0], biased[1] * one[1] + bias[1]};
}

// 16 rows of `cols` codes (0..15, the stored nibbles) packed two per byte, value 2j in the low
// nibble of byte j.
std::vector<uint8_t> pack_codes(const std::vector<int>& nibbles, int cols) {
    std::vector<uint8_t> bytes(nibbles.size() / 2);
    for (size_t r = 0; r < nibbles.size() / static_cast<size_t>(cols); ++r) {
        for (int j = 0; j < cols / 2; ++j) {
            const size_t at = r * static_cast<size_t>(cols) + 2 * static_cast<size_t>(j);
            bytes[at / 2] = static_cast<uint8_t>(nibbles[at] | (nibbles[at + 1] << 4));
        }
    }
    return bytes;
}

uint32_t load_word(const uint8_t* p) {
    uint32_t w = 0;
    std::memcpy(&w, p, sizeof w);  // little-endian, as the device reads it
    return w;
}

// One warp's product of a 16-row tile and 8 tokens over `cols` values, as the kernel does it
// (lane loads, unpacking, packed activations) with mma replayed from PTX's definition:
// out[row][token] = Σ over chunks and steps of A · (B_hi + B_lo).
std::vector<double> replay_warp(const std::vector<uint8_t>& codes,
                                const std::vector<uint32_t>& packed, int cols) {
    std::vector<double> out(kRows * kTokens, 0.0);
    const int row_bytes = cols / 2;
    for (int ch = 0; ch < cols / kChunk; ++ch) {
        // Each lane's two 16-byte loads.
        std::array<std::array<std::array<uint32_t, 4>, 2>, 32> raw{};
        for (int lane = 0; lane < 32; ++lane) {
            const int g = lane / 4;
            const int t = lane % 4;
            for (int r = 0; r < 2; ++r) {
                const uint8_t* p =
                    codes.data() + (g + 8 * r) * row_bytes + ch * (kChunk / 2) + 16 * t;
                for (int j = 0; j < 4; ++j) {
                    raw[lane][r][j] = load_word(p + 4 * j);
                }
            }
        }
        for (int s = 0; s < kStepsPerChunk; ++s) {
            // A[row][k] and B[k][n] (hi and lo) of this step, gathered from the lanes' registers
            // by PTX's fragment layout.
            double a[kRows][16] = {};
            double b_hi[16][kTokens] = {};
            double b_lo[16][kTokens] = {};
            for (int lane = 0; lane < 32; ++lane) {
                const int g = lane / 4;
                const int t = lane % 4;
                const int j = step_word(s);
                for (int r = 0; r < 4; ++r) {
                    const auto pair = unpacked_pair(raw[lane][a_register_row(r)][j],
                                                    step_pair(s, a_register_second(r)));
                    for (int e = 0; e < 2; ++e) {
                        a[g + 8 * (r % 2)][2 * t + 8 * (r / 2) + e] = pair[e];
                    }
                }
                const int block = ch * (kChunk / 8) + step_block(t, s);
                const uint32_t* words =
                    packed.data() + (g * cols / 8 + block) * kPackedWords + 4 * step_half(s);
                for (int r = 0; r < 2; ++r) {
                    const auto hi = bf16x2_values(words[r]);
                    const auto lo = bf16x2_values(words[2 + r]);
                    for (int e = 0; e < 2; ++e) {
                        b_hi[2 * t + 8 * r + e][g] = hi[e];
                        b_lo[2 * t + 8 * r + e][g] = lo[e];
                    }
                }
            }
            for (int row = 0; row < kRows; ++row) {
                for (int n = 0; n < kTokens; ++n) {
                    for (int k = 0; k < 16; ++k) {
                        out[row * kTokens + n] += a[row][k] * (b_hi[k][n] + b_lo[k][n]);
                    }
                }
            }
        }
    }
    return out;
}

TEST_CASE("int4 mma layout: every step covers its chunk's values once, A and B alike") {
    for (int s = 0; s < kStepsPerChunk; ++s) {
        std::set<int> values;
        for (int t = 0; t < 4; ++t) {
            for (int second = 0; second < 2; ++second) {
                for (int e = 0; e < 2; ++e) {
                    const int v = step_value(t, s, second, e);
                    // The lane's load holds it (A) ...
                    CHECK(v / 32 == t);
                    // ... and its packed block and half hold it (B): pair (i, i + 4) of block
                    // step_block, i = step_pair.
                    CHECK(v / 8 == step_block(t, s));
                    CHECK(v % 8 == step_pair(s, second) + 4 * e);
                    CHECK(step_pair(s, second) / 2 == step_half(s));
                    // The kernel adds a step's offset to the lane's first block.
                    CHECK(step_block(t, s) - step_block(t, 0) ==
                          step_block(0, s) - step_block(0, 0));
                    values.insert(v);
                }
            }
        }
        CHECK(values.size() == 16);
    }
    std::set<int> all;
    for (int s = 0; s < kStepsPerChunk; ++s) {
        for (int t = 0; t < 4; ++t) {
            for (int second = 0; second < 2; ++second) {
                for (int e = 0; e < 2; ++e) {
                    all.insert(step_value(t, s, second, e));
                }
            }
        }
    }
    CHECK(all.size() == kChunk);
    CHECK(*all.begin() == 0);
    CHECK(*all.rbegin() == kChunk - 1);
}

TEST_CASE("int4 mma layout: code pairs unpack to code - 8 exactly") {
    for (uint32_t n = 0; n < 16; ++n) {
        for (uint32_t m = 0; m < 16; ++m) {
            for (int i = 0; i < 4; ++i) {
                const uint32_t word = (n << (4 * i)) | (m << (4 * (i + 4)));
                const auto pair = unpacked_pair(word, i);
                CHECK(pair[0] == static_cast<float>(n) - 8.0f);
                CHECK(pair[1] == static_cast<float>(m) - 8.0f);
            }
        }
    }
}

TEST_CASE("int4 mma layout: bf16 rounding and the hi/lo split") {
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 3.0f);
    for (int i = 0; i < 20000; ++i) {
        const float v = normal(rng) * std::pow(10.0f, static_cast<float>(i % 13 - 6));
        CHECK(bf16_bits(v) == f32_to_bf16(v));
        uint32_t hi = 0, lo = 0;
        split_bf16(v, hi, lo);
        const double rest = static_cast<double>(v) - bf16_value(hi) - bf16_value(lo);
        CHECK(std::fabs(rest) <= std::ldexp(std::fabs(static_cast<double>(v)), -16));
    }
    const float inf = std::numeric_limits<float>::infinity();
    uint32_t hi = 0, lo = 0;
    split_bf16(inf, hi, lo);
    CHECK(bf16_value(hi) == inf);
    CHECK(lo == 0u);
    split_bf16(-inf, hi, lo);
    CHECK(bf16_value(hi) == -inf);
    CHECK(std::isnan(bf16_value(bf16_bits(std::numeric_limits<float>::quiet_NaN()))));
    CHECK(bf16_value(bf16_bits(3.4e38f)) == inf);  // rounds past bf16's largest finite value
}

TEST_CASE("int4 mma layout: a warp's replayed products equal the plain sums") {
    for (const int cols : {128, 384}) {
        std::mt19937 rng(static_cast<uint32_t>(cols));
        std::uniform_int_distribution<int> nibble(0, 15);
        std::normal_distribution<float> normal(0.0f, 1.0f);
        std::vector<int> nibbles(static_cast<size_t>(kRows * cols));
        for (int& n : nibbles) {
            n = nibble(rng);
        }
        std::vector<float> x(static_cast<size_t>(kTokens * cols));
        for (float& v : x) {
            v = normal(rng);
        }
        std::vector<uint32_t> packed(x.size());
        for (size_t b = 0; b < x.size() / 8; ++b) {
            pack_block(x.data() + 8 * b, packed.data() + 8 * b);
        }
        const auto got = replay_warp(pack_codes(nibbles, cols), packed, cols);
        double max_error = 0.0;
        double max_sum = 0.0;
        for (int row = 0; row < kRows; ++row) {
            for (int n = 0; n < kTokens; ++n) {
                double want = 0.0;
                for (int k = 0; k < cols; ++k) {
                    want += (nibbles[static_cast<size_t>(row * cols + k)] - 8) *
                            static_cast<double>(x[static_cast<size_t>(n * cols + k)]);
                }
                max_error = std::max(max_error,
                                     std::fabs(got[static_cast<size_t>(row * kTokens + n)] - want));
                max_sum = std::max(max_sum, std::fabs(want));
            }
        }
        INFO(cols << " values: max error " << max_error << " of sums up to " << max_sum);
        // hi + lo carries each activation to 2^-16 of itself; the codes are exact.
        CHECK(max_error <= 8.0 * cols * std::ldexp(1.0, -16) * 4.0);
        CHECK(max_error <= 1e-4 * max_sum);
    }
}

}  // namespace
}  // namespace sluice::inference::cuda::int4_mma
