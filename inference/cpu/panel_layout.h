#pragma once
// The panel layout of bf16 weight matrices, the one the batch-1 decode loop reads fastest.
//
// Rows are taken four at a time (a panel); within a panel, for each group of 16 columns, the
// four rows' 16 values follow each other (4 x 32 bytes = two cache lines), so a thread that
// multiplies a panel by one token reads one sequential stream instead of four rows 2 * cols
// bytes apart. The hardware prefetcher follows one stream well; four interleaved ones it did
// not (measured in docs/design.md, "The CPU backend's decode path"). Same idea as llama.cpp's
// repacked (row-interleaved) formats.
//
// A panel occupies exactly the bytes of its four rows in row-major order, so a panel-aligned
// range of rows starts where it would in a row-major matrix. A matrix is stored this way only
// when its row count is a multiple of kPanelRows and its column count a multiple of
// kPanelCols (weights.h, pack_panels), so every row belongs to a full panel and every group of
// eight columns (one AVX2 vector) is contiguous.
//
// Thread safety: constants and pure functions.

#include <cstdint>

namespace sluice::inference::cpu {

inline constexpr int64_t kPanelRows = 4;
inline constexpr int64_t kPanelCols = 16;

// Element offset of row r's column 0 in a panel matrix of `cols` columns.
inline int64_t panel_row_offset(int64_t r, int64_t cols) {
    return (r / kPanelRows) * kPanelRows * cols + (r % kPanelRows) * kPanelCols;
}

// Offset of column j from its row's column 0: each group of kPanelCols columns is followed by
// the other three rows' groups.
inline int64_t panel_col_offset(int64_t j) {
    return j + (kPanelRows - 1) * kPanelCols * (j / kPanelCols);
}

}  // namespace sluice::inference::cpu
