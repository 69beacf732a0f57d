#pragma once
// Where each value of an int4 expert product lives on its way into the tensor cores'
// mma.sync.m16n8k16 (bf16 inputs, fp32 sums): shared by the kernels of int4_mma.cu and by the
// host test that replays a warp's products against plain sums
// (tests/inference/int4_mma_layout_test.cpp). Integer arithmetic and bit patterns only, so that
// host and device compute the same bits.
//
// Weights (mma's A, 16 rows × 16 k per step). A reduction chunk is kChunk = 128 values. Lane l
// of a warp (g = l / 4, t = l % 4) holds rows g and g + 8 of a 16-row tile, and loads 16 bytes of
// each: the chunk's codes [32t, 32t + 32), four words; word j holds code 32t + 8j + i in bits
// 4i..4i+3 (int4_weights.h). mma's sum over its 16 k values does not care which stored value a
// k stands for as long as A and B agree, so the 8 k-steps of a chunk are cut from the words as
// they lie: step s = 2j + h takes from word j the code pairs (i, i + 4) with i = 2h for the
// lane's first k pair (mma's k 2t and 2t + 1) and i = 2h + 1 for its second (k 2t + 8, 2t + 9).
// A shift by 4i and an AND with 0x000f000f put such a pair into the two halves of a word; OR'd
// with the bf16 bits of 128 they read 128 + n, exactly, and one bf16x2 subtraction of 136 leaves
// the codes n - 8.
//
// Activations (mma's B, 16 k × 8 tokens) are packed to match before the product: per token,
// each block of 8 values becomes 8 words [hi(0), hi(1), lo(0), lo(1), hi(2), hi(3), lo(2),
// lo(3)], hi(i) and lo(i) the bf16x2 pairs of values (i, i + 4) of the block (the first in the low
// half), hi the value rounded to bf16 and lo the remainder rounded to bf16: hi + lo keeps about
// 16 bits of the fp32 value, so the products are those of the fp32 activations to ~2^-17. Step s
// of lane t reads 16 bytes, half h of the chunk's block 4t + j: its B registers for the hi
// product, then for the lo product.

#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define SLUICE_HOST_DEVICE __host__ __device__
#else
#define SLUICE_HOST_DEVICE
#endif

namespace sluice::inference::cuda::int4_mma {

inline constexpr int kChunk = 128;        // reduction values per 16-byte load of a row
inline constexpr int kStepsPerChunk = 8;  // mma k-steps of 16 per chunk
inline constexpr int kPackedWords = 8;    // packed words per block of 8 activations
inline constexpr uint32_t kBf16x2One = 0x3f803f80u;
inline constexpr uint32_t kBf16x2MinusCodeBias = 0xc308c308u;  // (-136, -136)

// The word of a lane's 16-byte load that step s reads, and its first or second code pair.
SLUICE_HOST_DEVICE constexpr int step_word(int s) { return s / 2; }
SLUICE_HOST_DEVICE constexpr int step_pair(int s, int second) { return 2 * (s % 2) + second; }

// mma's A register r of a lane holds row g (r % 2 == 0) or g + 8 of the tile, and the lane's
// first k pair (r < 2) or its second.
SLUICE_HOST_DEVICE constexpr int a_register_row(int r) { return r % 2; }
SLUICE_HOST_DEVICE constexpr int a_register_second(int r) { return r / 2; }

// Codes (i, i + 4) of `word` as the bf16x2 bits of 128 + code.
SLUICE_HOST_DEVICE constexpr uint32_t biased_code_pair(uint32_t word, int i) {
    return ((word >> (4 * i)) & 0x000f000fu) | 0x43004300u;
}

// Where step s of lane t reads its activations: the block (of 8 values) within the chunk and the
// half (of 4 words) within the block.
SLUICE_HOST_DEVICE constexpr int step_block(int t, int s) { return 4 * t + s / 2; }
SLUICE_HOST_DEVICE constexpr int step_half(int s) { return s % 2; }

// The value within the chunk that element e (0 or 1) of lane t's first (second = 0) or second
// (second = 1) k pair stands for at step s: the layout above, for tests and readers.
SLUICE_HOST_DEVICE constexpr int step_value(int t, int s, int second, int e) {
    return 32 * t + 8 * step_word(s) + step_pair(s, second) + 4 * e;
}

SLUICE_HOST_DEVICE inline uint32_t float_bits(float v) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(v);
#else
    uint32_t u = 0;
    std::memcpy(&u, &v, sizeof u);
    return u;
#endif
}

SLUICE_HOST_DEVICE inline float bits_float(uint32_t u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float v = 0.0f;
    std::memcpy(&v, &u, sizeof v);
    return v;
#endif
}

// v rounded to the nearest bf16 (ties to even; a NaN stays a quiet NaN), as its 16 bits.
SLUICE_HOST_DEVICE inline uint32_t bf16_bits(float v) {
    const uint32_t u = float_bits(v);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        return (u >> 16) | 0x40u;
    }
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

SLUICE_HOST_DEVICE inline float bf16_value(uint32_t bits) { return bits_float(bits << 16); }

// hi and lo of v as above; lo is 0 where hi is not finite, so an infinity stays one.
SLUICE_HOST_DEVICE inline void split_bf16(float v, uint32_t& hi, uint32_t& lo) {
    hi = bf16_bits(v);
    lo = (hi & 0x7f80u) == 0x7f80u ? 0u : bf16_bits(v - bf16_value(hi));
}

// The 8 packed words of the block x[0..8).
SLUICE_HOST_DEVICE inline void pack_block(const float* x, uint32_t* out) {
    for (int i = 0; i < 4; ++i) {
        uint32_t hi_a = 0, lo_a = 0, hi_b = 0, lo_b = 0;
        split_bf16(x[i], hi_a, lo_a);
        split_bf16(x[i + 4], hi_b, lo_b);
        const int base = 4 * (i / 2) + i % 2;
        out[base] = hi_a | (hi_b << 16);
        out[base + 2] = lo_a | (lo_b << 16);
    }
}

}  // namespace sluice::inference::cuda::int4_mma
