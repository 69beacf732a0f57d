#include "inference/dtype.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "common/check.h"

namespace sluice::inference {

int64_t dtype_size(DType dtype) {
    switch (dtype) {
        case DType::kF32: return 4;
        case DType::kBF16: return 2;
        case DType::kF16: return 2;
        case DType::kF8E4M3: return 1;
        case DType::kI8: return 1;
        case DType::kU8: return 1;
    }
    SLUICE_CHECK(false, "unknown dtype");
    return 0;
}

std::string_view dtype_name(DType dtype) {
    switch (dtype) {
        case DType::kF32: return "F32";
        case DType::kBF16: return "BF16";
        case DType::kF16: return "F16";
        case DType::kF8E4M3: return "F8_E4M3";
        case DType::kI8: return "I8";
        case DType::kU8: return "U8";
    }
    return "?";
}

std::optional<DType> parse_dtype(std::string_view name) {
    for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16, DType::kF8E4M3, DType::kI8,
                        DType::kU8}) {
        if (dtype_name(dtype) == name) {
            return dtype;
        }
    }
    return std::nullopt;
}

float f16_to_f32(uint16_t bits) {
    const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
    const uint32_t exponent = (bits >> 10) & 0x1fu;
    const uint32_t mantissa = bits & 0x3ffu;
    if (exponent == 0) {
        // Zero or subnormal: mantissa * 2^-24, exact in fp32.
        float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
        return sign ? -magnitude : magnitude;
    }
    if (exponent == 31) {
        return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
    }
    return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

uint16_t f32_to_f16(float value) {
    // The compiler's binary16 type converts with the current rounding mode (nearest-even).
    return std::bit_cast<uint16_t>(static_cast<_Float16>(value));
}

float fp8_e4m3_to_f32(uint8_t bits) {
    const bool negative = (bits & 0x80u) != 0;
    const int exponent = (bits >> 3) & 0xf;
    const int mantissa = bits & 0x7;
    if (exponent == 15 && mantissa == 7) {
        return std::numeric_limits<float>::quiet_NaN();
    }
    float magnitude = exponent == 0 ? std::ldexp(static_cast<float>(mantissa), -9)
                                    : std::ldexp(1.0f + mantissa / 8.0f, exponent - 7);
    return negative ? -magnitude : magnitude;
}

uint8_t f32_to_fp8_e4m3(float value) {
    if (std::isnan(value)) {
        return 0x7f;
    }
    const uint8_t sign = std::signbit(value) ? 0x80 : 0x00;
    if (std::isinf(value)) {
        return static_cast<uint8_t>(sign | 0x7e);
    }
    const float magnitude = std::fabs(value);
    constexpr float kMinNormal = 0.015625f;  // 2^-6
    if (magnitude < kMinNormal) {
        // Subnormals are multiples of 2^-9; a rounded 8 · 2^-9 is the smallest normal, whose
        // code (exponent 1, mantissa 0) is the same number 8.
        const auto steps = static_cast<uint8_t>(std::nearbyint(magnitude * 512.0f));
        return static_cast<uint8_t>(sign | steps);
    }
    // Normal: round fp32's 23 mantissa bits to 3, ties to even; a carry moves into the exponent,
    // as it should. Then rebias the exponent from 127 to 7.
    const uint32_t bits = std::bit_cast<uint32_t>(magnitude);
    const uint32_t rounded = (bits + 0x7ffffu + ((bits >> 20) & 1u)) >> 20;
    const uint32_t code = rounded - ((127u - 7u) << 3);
    if (code > 0x7e) {
        return static_cast<uint8_t>(sign | 0x7e);  // ±448, the largest finite value
    }
    return static_cast<uint8_t>(sign | code);
}

void convert_to_f32(DType dtype, const void* src, int64_t count, float* dst) {
    const auto* bytes = static_cast<const unsigned char*>(src);
    switch (dtype) {
        case DType::kF32:
            std::memcpy(dst, src, static_cast<size_t>(count) * 4);
            return;
        case DType::kBF16:
            for (int64_t i = 0; i < count; ++i) {
                uint16_t bits;
                std::memcpy(&bits, bytes + 2 * i, 2);
                dst[i] = bf16_to_f32(bits);
            }
            return;
        case DType::kF16:
            for (int64_t i = 0; i < count; ++i) {
                uint16_t bits;
                std::memcpy(&bits, bytes + 2 * i, 2);
                dst[i] = f16_to_f32(bits);
            }
            return;
        case DType::kF8E4M3:
            for (int64_t i = 0; i < count; ++i) {
                dst[i] = fp8_e4m3_to_f32(bytes[i]);
            }
            return;
        case DType::kI8:
            for (int64_t i = 0; i < count; ++i) {
                dst[i] = static_cast<float>(static_cast<int8_t>(bytes[i]));
            }
            return;
        case DType::kU8:
            for (int64_t i = 0; i < count; ++i) {
                dst[i] = static_cast<float>(bytes[i]);
            }
            return;
    }
}

void convert_f32_to_bf16(std::span<const float> src, uint16_t* dst) {
    for (size_t i = 0; i < src.size(); ++i) {
        dst[i] = f32_to_bf16(src[i]);
    }
}

}  // namespace sluice::inference
