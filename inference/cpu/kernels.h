#pragma once
// Row-dot kernels: the innermost loop of decode GEMV and of small per-expert token groups.
//
// Each kernel computes, for a block of weight rows (output channels) and m input rows (tokens),
//   y[t * ldy + r] = scale[r] * sum_j w[r * k + j] * x[t * k + j]     r < n_rows, t < m
// reading every weight row from memory once and reusing it from L1 for all m tokens (tokens are
// taken four at a time). At one token (batch-1 decode) four adjacent rows are read per pass and
// the next four are prefetched, since that loop is bound by how many loads are in flight.
// Weights are f32, bf16 (widened in registers) or int8 with one fp32 scale per row;
// accumulation is fp32. bf16 matrices may also be in the panel layout (panel_layout.h), which
// the one-token loop reads as one sequential stream; for several tokens a panel matrix's rows
// are summed in exactly the order of a row-major one, so the layout never changes a batched
// result.
//
// Two implementations exist: AVX2+FMA (kernels_avx2.cpp, compiled with -mavx2 -mfma on x86-64)
// and a portable one (kernels_portable.cpp). row_kernels() picks once, at run time, the AVX2 one
// when the CPU supports it.
//
// Thread safety: pure functions; the table is immutable.

#include <cstdint>

namespace sluice::inference::cpu {

struct RowKernels {
    const char* name;
    // w: [n_rows, k]; x: [m, k]; y: [m, ldy] (the first n_rows columns written)
    void (*f32)(const float* w, int64_t n_rows, int64_t k, const float* x, int64_t m, float* y,
                int64_t ldy);
    void (*bf16)(const uint16_t* w, int64_t n_rows, int64_t k, const float* x, int64_t m,
                 float* y, int64_t ldy);
    // w: the first element of a bf16 panel matrix [rows, k] (k a multiple of kPanelCols); its
    // rows [first_row, first_row + n_rows) are used. x and y as above.
    void (*bf16_panels)(const uint16_t* w, int64_t first_row, int64_t n_rows, int64_t k,
                        const float* x, int64_t m, float* y, int64_t ldy);
    // scales: [n_rows]
    void (*i8)(const int8_t* w, const float* scales, int64_t n_rows, int64_t k, const float* x,
               int64_t m, float* y, int64_t ldy);
};

const RowKernels& row_kernels();

// The portable table, always available (tests compare the two).
const RowKernels& portable_row_kernels();
// The AVX2+FMA table, or nullptr when not compiled in or the CPU lacks AVX2/FMA.
const RowKernels* avx2_row_kernels();

}  // namespace sluice::inference::cpu
