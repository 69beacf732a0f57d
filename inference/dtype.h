#pragma once
// Element types of stored tensors and their conversions to and from fp32.
//
// bf16 and f16 follow IEEE-754 binary16 / bfloat16; fp8 is E4M3 "fn" (no infinities, 0x7f and
// 0xff are NaN), as safetensors' F8_E4M3 and PyTorch's float8_e4m3fn define it. Rounding to
// bf16 is round-to-nearest-even, matching PyTorch's `.to(torch.bfloat16)`.
//
// Thread safety: pure functions.

#include <bit>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace sluice::inference {

// kU8 holds packed int4 codes (inference/int4_weights.h) and plain bytes.
enum class DType { kF32, kBF16, kF16, kF8E4M3, kI8, kU8 };

// Bytes per element.
int64_t dtype_size(DType dtype);
// The safetensors spelling: "F32", "BF16", "F16", "F8_E4M3", "I8", "U8".
std::string_view dtype_name(DType dtype);
// Parses a safetensors dtype string; nullopt for a type this engine does not read.
std::optional<DType> parse_dtype(std::string_view name);

inline float bf16_to_f32(uint16_t bits) {
    return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16);
}

inline uint16_t f32_to_bf16(float value) {
    uint32_t bits = std::bit_cast<uint32_t>(value);
    if ((bits & 0x7fffffffu) > 0x7f800000u) {
        return static_cast<uint16_t>((bits >> 16) | 0x40);  // quiet NaN, sign kept
    }
    uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);  // round to nearest, ties to even
    return static_cast<uint16_t>((bits + rounding) >> 16);
}

float f16_to_f32(uint16_t bits);
// Rounds to IEEE binary16, round-to-nearest-even, overflow to infinity.
uint16_t f32_to_f16(float value);
float fp8_e4m3_to_f32(uint8_t bits);
// Rounds to fp8 E4M3 "fn", round-to-nearest-even, saturating: magnitudes past the largest finite
// value (448, infinities included) become ±448 and NaN becomes 0x7f, as CUDA's
// __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3) does, so host and device quantisation agree
// bit for bit.
uint8_t f32_to_fp8_e4m3(float value);

// Converts `count` elements of `dtype` at `src` (any alignment) to fp32 at `dst`.
// kI8 and kU8 are converted as plain integers (no scale, no unpacking).
void convert_to_f32(DType dtype, const void* src, int64_t count, float* dst);

// Rounds fp32 values to bf16.
void convert_f32_to_bf16(std::span<const float> src, uint16_t* dst);

}  // namespace sluice::inference
