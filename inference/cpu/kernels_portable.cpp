// Portable row-dot kernels (see kernels.h) and the run-time choice between them and AVX2.
#include "inference/cpu/kernels.h"

#include <bit>

#include "inference/cpu/panel_layout.h"

namespace sluice::inference::cpu {

namespace {

inline float widen(float value) { return value; }
inline float widen(uint16_t bits) { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }
inline float widen(int8_t value) { return static_cast<float>(value); }

// Eight partial sums per token keep the loop vectorisable by the compiler and make the
// summation order close to the SIMD kernel's. `row_of(r)` is row r's column 0 and `col(j)` the
// offset of column j from it (row-major or panel layout); eight columns from a multiple of 8
// are contiguous in both.
template <typename W, typename RowOf, typename Col>
void rows_dot(RowOf row_of, Col col, const float* scales, int64_t n_rows, int64_t k, const float* x,
              int64_t m, float* y, int64_t ldy) {
    constexpr int kLanes = 8;
    for (int64_t r = 0; r < n_rows; ++r) {
        const W* row = row_of(r);
        const float scale = scales != nullptr ? scales[r] : 1.0f;
        for (int64_t t = 0; t < m; ++t) {
            const float* xt = x + t * k;
            float partial[kLanes] = {};
            int64_t j = 0;
            for (; j + kLanes <= k; j += kLanes) {
                const W* group = row + col(j);
                for (int lane = 0; lane < kLanes; ++lane) {
                    partial[lane] += widen(group[lane]) * xt[j + lane];
                }
            }
            float sum = 0;
            for (float p : partial) {
                sum += p;
            }
            for (; j < k; ++j) {
                sum += widen(row[col(j)]) * xt[j];
            }
            y[t * ldy + r] = sum * scale;
        }
    }
}

template <typename W>
void rows_dot(const W* w, const float* scales, int64_t n_rows, int64_t k, const float* x, int64_t m,
              float* y, int64_t ldy) {
    rows_dot<W>([w, k](int64_t r) { return w + r * k; }, [](int64_t j) { return j; }, scales,
                n_rows, k, x, m, y, ldy);
}

void f32_rows(const float* w, int64_t n_rows, int64_t k, const float* x, int64_t m, float* y,
              int64_t ldy) {
    rows_dot(w, nullptr, n_rows, k, x, m, y, ldy);
}

void bf16_rows(const uint16_t* w, int64_t n_rows, int64_t k, const float* x, int64_t m, float* y,
               int64_t ldy) {
    rows_dot(w, nullptr, n_rows, k, x, m, y, ldy);
}

void bf16_panels(const uint16_t* w, int64_t first_row, int64_t n_rows, int64_t k, const float* x,
                 int64_t m, float* y, int64_t ldy) {
    rows_dot<uint16_t>(
        [w, first_row, k](int64_t r) { return w + panel_row_offset(first_row + r, k); },
        panel_col_offset, nullptr, n_rows, k, x, m, y, ldy);
}

void i8_rows(const int8_t* w, const float* scales, int64_t n_rows, int64_t k, const float* x,
             int64_t m, float* y, int64_t ldy) {
    rows_dot(w, scales, n_rows, k, x, m, y, ldy);
}

}  // namespace

// Defined in kernels_avx2.cpp; nullptr when that file was compiled without AVX2.
const RowKernels* avx2_row_kernels_compiled();

const RowKernels& portable_row_kernels() {
    static const RowKernels kernels{"portable", f32_rows, bf16_rows, bf16_panels, i8_rows};
    return kernels;
}

const RowKernels* avx2_row_kernels() {
#if defined(__x86_64__) || defined(_M_X64)
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        return avx2_row_kernels_compiled();
    }
#endif
    return nullptr;
}

const RowKernels& row_kernels() {
    static const RowKernels* chosen = [] {
        const RowKernels* avx2 = avx2_row_kernels();
        return avx2 != nullptr ? avx2 : &portable_row_kernels();
    }();
    return *chosen;
}

}  // namespace sluice::inference::cpu
