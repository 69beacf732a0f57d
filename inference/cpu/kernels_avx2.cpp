// AVX2+FMA row-dot kernels (see kernels.h). This file is compiled with -mavx2 -mfma on x86-64
// and is only called after a run-time CPU check. It includes no standard-library templates, so
// no inline function compiled here with AVX2 can be merged into code that runs without it.
#include "inference/cpu/kernels.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#include "inference/cpu/panel_layout.h"

namespace sluice::inference::cpu {

namespace {

// Offset of column j from a row's column 0: row-major, or in the panel layout (P). Kernels
// only ask for j at multiples of 8 and for the scalar tail, and eight columns from a multiple
// of 8 are contiguous in both layouts.
template <bool P>
inline int64_t at(int64_t j) {
    if constexpr (P) {
        return panel_col_offset(j);
    } else {
        return j;
    }
}

struct F32 {
    using T = float;
    static constexpr bool kBf16 = false;
    static __m256 load(const float* p) { return _mm256_loadu_ps(p); }
    static float scalar(const float* p) { return *p; }
};

struct BF16 {
    using T = uint16_t;
    static constexpr bool kBf16 = true;
    static __m256 load(const uint16_t* p) {
        __m128i bits = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits), 16));
    }
    static float scalar(const uint16_t* p) {
        union {
            uint32_t u;
            float f;
        } value{static_cast<uint32_t>(*p) << 16};
        return value.f;
    }
};

struct I8 {
    using T = int8_t;
    static constexpr bool kBf16 = false;
    static __m256 load(const int8_t* p) {
        __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
        return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
    }
    static float scalar(const int8_t* p) { return static_cast<float>(*p); }
};

inline float hsum(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v);
    __m128 hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

// One weight row against M tokens, one accumulator per token. Every kernel for several tokens
// sums a (row, token) pair in the same order (8-wide FMAs in j order, hsum, then the scalar
// tail), so a token's result does not depend on which tile or batch of several it was in.
template <typename L, int M, bool P = false>
inline void row_dot(const typename L::T* row, int64_t k, const float* x, float* out) {
    __m256 acc[M];
    for (int t = 0; t < M; ++t) {
        acc[t] = _mm256_setzero_ps();
    }
    int64_t j = 0;
    for (; j + 8 <= k; j += 8) {
        const __m256 w0 = L::load(row + at<P>(j));
        for (int t = 0; t < M; ++t) {
            acc[t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + t * k + j), acc[t]);
        }
    }
    for (int t = 0; t < M; ++t) {
        float sum = hsum(acc[t]);
        for (int64_t jj = j; jj < k; ++jj) {
            sum += L::scalar(row + at<P>(jj)) * x[t * k + jj];
        }
        out[t] = sum;
    }
}

// Four weight rows against one token (decode, f32 and int8 weights): four independent streams
// keep more loads in flight than one row at a time, which is what a memory-bound GEMV needs.
// The loop walks one cache line of each row per pass and prefetches the same line of the next
// block of four rows (adjacent in memory), as the bf16 loop below does; without it the loads,
// not the arithmetic, were where the int8 loop stalled.
template <typename L>
inline void four_rows_one_token(const typename L::T* w, int64_t k, const float* x, float* out) {
    constexpr int64_t kLine = 64 / sizeof(typename L::T);  // elements per cache line: 16 or 64
    __m256 acc0[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                      _mm256_setzero_ps()};
    __m256 acc1[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                      _mm256_setzero_ps()};
    int64_t j = 0;
    for (; j + kLine <= k; j += kLine) {
        for (int64_t step = 0; step < kLine; step += 16) {
            const __m256 x0 = _mm256_loadu_ps(x + j + step);
            const __m256 x1 = _mm256_loadu_ps(x + j + step + 8);
            for (int r = 0; r < 4; ++r) {
                acc0[r] = _mm256_fmadd_ps(L::load(w + r * k + j + step), x0, acc0[r]);
                acc1[r] = _mm256_fmadd_ps(L::load(w + r * k + j + step + 8), x1, acc1[r]);
            }
        }
        for (int r = 0; r < 4; ++r) {
            _mm_prefetch(reinterpret_cast<const char*>(w + (r + 4) * k + j), _MM_HINT_T0);
        }
    }
    for (; j + 8 <= k; j += 8) {
        const __m256 xv = _mm256_loadu_ps(x + j);
        for (int r = 0; r < 4; ++r) {
            acc0[r] = _mm256_fmadd_ps(L::load(w + r * k + j), xv, acc0[r]);
        }
    }
    for (int r = 0; r < 4; ++r) {
        float sum = hsum(_mm256_add_ps(acc0[r], acc1[r]));
        for (int64_t jj = j; jj < k; ++jj) {
            sum += L::scalar(w + r * k + jj) * x[jj];
        }
        out[r] = sum;
    }
}

// Three weight rows against T <= 4 tokens, the tile of a batched step: up to twelve
// accumulators, each weight vector widened once for T tokens and each token vector loaded once
// for three rows (at T = 4, 7 loads per 12 FMAs, against 5 per 4 in row_dot<L, 4>, whose loads
// bound it). The rows are given one by one, since in the panel layout (P) a tile's rows may lie
// in two panels.
template <typename L, int T, bool P = false>
inline void three_rows_tokens(const typename L::T* const w[3], int64_t k, const float* x,
                              float out[3][4]) {
    static_assert(T >= 1 && T <= 4, "a tile holds one to four tokens");
    // Named accumulators, not an array: GCC stores an accumulator array back to the stack on
    // every iteration, which costs more than the FMAs.
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a03 = a00;
    __m256 a10 = a00, a11 = a00, a12 = a00, a13 = a00;
    __m256 a20 = a00, a21 = a00, a22 = a00, a23 = a00;
    int64_t j = 0;
    for (; j + 8 <= k; j += 8) {
        const __m256 w0 = L::load(w[0] + at<P>(j));
        const __m256 w1 = L::load(w[1] + at<P>(j));
        const __m256 w2 = L::load(w[2] + at<P>(j));
        __m256 xv = _mm256_loadu_ps(x + j);
        a00 = _mm256_fmadd_ps(w0, xv, a00);
        a10 = _mm256_fmadd_ps(w1, xv, a10);
        a20 = _mm256_fmadd_ps(w2, xv, a20);
        if constexpr (T > 1) {
            xv = _mm256_loadu_ps(x + k + j);
            a01 = _mm256_fmadd_ps(w0, xv, a01);
            a11 = _mm256_fmadd_ps(w1, xv, a11);
            a21 = _mm256_fmadd_ps(w2, xv, a21);
        }
        if constexpr (T > 2) {
            xv = _mm256_loadu_ps(x + 2 * k + j);
            a02 = _mm256_fmadd_ps(w0, xv, a02);
            a12 = _mm256_fmadd_ps(w1, xv, a12);
            a22 = _mm256_fmadd_ps(w2, xv, a22);
        }
        if constexpr (T > 3) {
            xv = _mm256_loadu_ps(x + 3 * k + j);
            a03 = _mm256_fmadd_ps(w0, xv, a03);
            a13 = _mm256_fmadd_ps(w1, xv, a13);
            a23 = _mm256_fmadd_ps(w2, xv, a23);
        }
    }
    const __m256 acc[3][4] = {{a00, a01, a02, a03}, {a10, a11, a12, a13}, {a20, a21, a22, a23}};
    for (int r = 0; r < 3; ++r) {
        for (int t = 0; t < T; ++t) {
            float sum = hsum(acc[r][t]);
            for (int64_t jj = j; jj < k; ++jj) {
                sum += L::scalar(w[r] + at<P>(jj)) * x[t * k + jj];
            }
            out[r][t] = sum;
        }
    }
}

// One weight row against tokens [t, m), in groups of four then the rest.
template <typename L, bool P = false>
inline void row_tokens(const typename L::T* row, float scale, int64_t k, const float* x, int64_t t,
                       int64_t m, float* y, int64_t ldy, int64_t r) {
    float out[4];
    for (; t + 4 <= m; t += 4) {
        row_dot<L, 4, P>(row, k, x + t * k, out);
        for (int i = 0; i < 4; ++i) {
            y[(t + i) * ldy + r] = out[i] * scale;
        }
    }
    const int64_t left = m - t;
    if (left == 0) {
        return;
    }
    if (left == 1) {
        row_dot<L, 1, P>(row, k, x + t * k, out);
    } else if (left == 2) {
        row_dot<L, 2, P>(row, k, x + t * k, out);
    } else {
        row_dot<L, 3, P>(row, k, x + t * k, out);
    }
    for (int64_t i = 0; i < left; ++i) {
        y[(t + i) * ldy + r] = out[i] * scale;
    }
}

// Four bf16 weight rows against one token (decode), the hot loop of batch-1 decode.
// One 256-bit load takes 16 bf16 weights of a row; unpacking them against zero in 16-bit lanes
// puts each value in the high half of a 32-bit lane, which is exactly its fp32 value. Unpacking
// works within 128-bit halves, so the low unpack holds elements 0-3 and 8-11 and the high one
// 4-7 and 12-15; the token's 16 values are arranged the same way (two lane permutes) and shared
// by the four rows. This halves the instructions per weight of the widening load it replaces.
// The rows of a block are adjacent, so the next block starts right after this one: each row
// prefetches the same offset of its successor block, keeping four more streams of loads in
// flight than the hardware prefetcher starts on its own (measured: without the prefetch the
// new loop is no faster than the old one).
inline void four_bf16_rows_one_token(const uint16_t* w, int64_t k, const float* x, float* out) {
    constexpr int64_t kAhead = 4;  // rows: the next block
    const __m256i zero = _mm256_setzero_si256();
    __m256 acc_lo[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                        _mm256_setzero_ps()};
    __m256 acc_hi[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                        _mm256_setzero_ps()};
    int64_t j = 0;
    for (; j + 32 <= k; j += 32) {
        for (int64_t half = 0; half < 32; half += 16) {
            const __m256 xa = _mm256_loadu_ps(x + j + half);
            const __m256 xb = _mm256_loadu_ps(x + j + half + 8);
            const __m256 x_lo = _mm256_permute2f128_ps(xa, xb, 0x20);  // 0-3, 8-11
            const __m256 x_hi = _mm256_permute2f128_ps(xa, xb, 0x31);  // 4-7, 12-15
            for (int r = 0; r < 4; ++r) {
                const __m256i bits =
                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + r * k + j + half));
                const __m256 lo = _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, bits));
                const __m256 hi = _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, bits));
                acc_lo[r] = _mm256_fmadd_ps(lo, x_lo, acc_lo[r]);
                acc_hi[r] = _mm256_fmadd_ps(hi, x_hi, acc_hi[r]);
            }
        }
        for (int r = 0; r < 4; ++r) {
            _mm_prefetch(reinterpret_cast<const char*>(w + (r + kAhead) * k + j), _MM_HINT_T0);
        }
    }
    for (int r = 0; r < 4; ++r) {
        float sum = hsum(_mm256_add_ps(acc_lo[r], acc_hi[r]));
        for (int64_t jj = j; jj < k; ++jj) {
            sum += BF16::scalar(w + r * k + jj) * x[jj];
        }
        out[r] = sum;
    }
}

// Rows [first, n_rows) of `row(r)` against m >= 2 tokens in tiles of three rows and up to four
// tokens; returns the first row not covered by a whole tile.
template <typename L, bool P, typename RowOf, typename ScaleOf>
int64_t several_tokens(RowOf row, ScaleOf scale_of, int64_t first, int64_t n_rows, int64_t k,
                       const float* x, int64_t m, float* y, int64_t ldy) {
    float tile[3][4];
    auto store = [&](int64_t t, int64_t n_tokens) {
        for (int r = 0; r < 3; ++r) {
            for (int64_t i = 0; i < n_tokens; ++i) {
                y[(t + i) * ldy + first + r] = tile[r][i] * scale_of(first + r);
            }
        }
    };
    for (; first + 3 <= n_rows; first += 3) {
        const typename L::T* const block[3] = {row(first), row(first + 1), row(first + 2)};
        int64_t t = 0;
        for (; t + 4 <= m; t += 4) {
            three_rows_tokens<L, 4, P>(block, k, x + t * k, tile);
            store(t, 4);
        }
        const int64_t left = m - t;
        if (left == 1) {
            three_rows_tokens<L, 1, P>(block, k, x + t * k, tile);
        } else if (left == 2) {
            three_rows_tokens<L, 2, P>(block, k, x + t * k, tile);
        } else if (left == 3) {
            three_rows_tokens<L, 3, P>(block, k, x + t * k, tile);
        }
        store(t, left);
    }
    return first;
}

template <typename L>
void rows(const typename L::T* w, const float* scales, int64_t n_rows, int64_t k, const float* x,
          int64_t m, float* y, int64_t ldy) {
    auto scale_of = [scales](int64_t r) { return scales != nullptr ? scales[r] : 1.0f; };
    int64_t first = 0;
    if (m == 1) {
        float out[4];
        for (; first + 4 <= n_rows; first += 4) {
            if constexpr (L::kBf16) {
                four_bf16_rows_one_token(w + first * k, k, x, out);
            } else {
                four_rows_one_token<L>(w + first * k, k, x, out);
            }
            for (int i = 0; i < 4; ++i) {
                y[first + i] = out[i] * scale_of(first + i);
            }
        }
    } else {
        first = several_tokens<L, false>([w, k](int64_t r) { return w + r * k; }, scale_of, 0,
                                         n_rows, k, x, m, y, ldy);
    }
    for (int64_t r = first; r < n_rows; ++r) {
        row_tokens<L>(w + r * k, scale_of(r), k, x, 0, m, y, ldy, r);
    }
}

// One panel (four bf16 rows, panel_layout.h) against one token: the loop of
// four_bf16_rows_one_token, in the same order of additions, over one sequential stream. No
// software prefetch: the hardware prefetcher follows the one stream, and a prefetch 2 KiB ahead
// made batch-1 decode 7-10% slower with one and with two threads (docs/benchmarks.md, "Panels
// without software prefetch").
inline void panel_one_token(const uint16_t* panel, int64_t k, const float* x, float* out) {
    const __m256i zero = _mm256_setzero_si256();
    __m256 acc_lo[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                        _mm256_setzero_ps()};
    __m256 acc_hi[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                        _mm256_setzero_ps()};
    const uint16_t* p = panel;
    for (int64_t j = 0; j < k; j += kPanelCols, p += kPanelRows * kPanelCols) {
        const __m256 xa = _mm256_loadu_ps(x + j);
        const __m256 xb = _mm256_loadu_ps(x + j + 8);
        const __m256 x_lo = _mm256_permute2f128_ps(xa, xb, 0x20);  // 0-3, 8-11
        const __m256 x_hi = _mm256_permute2f128_ps(xa, xb, 0x31);  // 4-7, 12-15
        for (int r = 0; r < 4; ++r) {
            const __m256i bits =
                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + r * kPanelCols));
            const __m256 lo = _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, bits));
            const __m256 hi = _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, bits));
            acc_lo[r] = _mm256_fmadd_ps(lo, x_lo, acc_lo[r]);
            acc_hi[r] = _mm256_fmadd_ps(hi, x_hi, acc_hi[r]);
        }
    }
    for (int r = 0; r < 4; ++r) {
        out[r] = hsum(_mm256_add_ps(acc_lo[r], acc_hi[r]));
    }
}

void bf16_panels(const uint16_t* w, int64_t first_row, int64_t n_rows, int64_t k, const float* x,
                 int64_t m, float* y, int64_t ldy) {
    auto row = [w, first_row, k](int64_t r) { return w + panel_row_offset(first_row + r, k); };
    auto one = [](int64_t) { return 1.0f; };
    int64_t first = 0;
    if (m == 1) {
        // Rows before the first whole panel of the range, then whole panels.
        for (; first < n_rows && (first_row + first) % kPanelRows != 0; ++first) {
            row_tokens<BF16, true>(row(first), 1.0f, k, x, 0, 1, y, ldy, first);
        }
        float out[4];
        for (; first + kPanelRows <= n_rows; first += kPanelRows) {
            panel_one_token(w + (first_row + first) * k, k, x, out);
            for (int i = 0; i < 4; ++i) {
                y[first + i] = out[i];
            }
        }
    } else {
        first = several_tokens<BF16, true>(row, one, 0, n_rows, k, x, m, y, ldy);
    }
    for (int64_t r = first; r < n_rows; ++r) {
        row_tokens<BF16, true>(row(r), 1.0f, k, x, 0, m, y, ldy, r);
    }
}

void f32_rows(const float* w, int64_t n_rows, int64_t k, const float* x, int64_t m, float* y,
              int64_t ldy) {
    rows<F32>(w, nullptr, n_rows, k, x, m, y, ldy);
}

void bf16_rows(const uint16_t* w, int64_t n_rows, int64_t k, const float* x, int64_t m, float* y,
               int64_t ldy) {
    rows<BF16>(w, nullptr, n_rows, k, x, m, y, ldy);
}

void i8_rows(const int8_t* w, const float* scales, int64_t n_rows, int64_t k, const float* x,
             int64_t m, float* y, int64_t ldy) {
    rows<I8>(w, scales, n_rows, k, x, m, y, ldy);
}

const RowKernels kAvx2Kernels{"avx2+fma", f32_rows, bf16_rows, bf16_panels, i8_rows};

}  // namespace

const RowKernels* avx2_row_kernels_compiled() { return &kAvx2Kernels; }

}  // namespace sluice::inference::cpu

#else

namespace sluice::inference::cpu {
const RowKernels* avx2_row_kernels_compiled() { return nullptr; }
}  // namespace sluice::inference::cpu

#endif
