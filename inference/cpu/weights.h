#pragma once
// WeightMatrix: a row-major weight matrix [rows, cols] as the CPU kernels read it. Rows are
// output channels, cols the reduction dimension: y = x · Wᵀ. Stored f32, bf16, or int8 with one
// fp32 scale per row (symmetric, scale = max|row| / 127).
//
// A matrix either borrows its elements from a checkpoint's memory mapping (when the stored dtype
// is the wanted format and suitably aligned) or owns a converted copy.
//
// Layout: row-major, or for bf16 the panel layout of panel_layout.h (pack_panels), which only
// the row-dot kernels, row_to_f32 and Matmul need to know about.
//
// Thread safety: immutable after construction.

#include <cstdint>
#include <span>
#include <vector>

#include "common/result.h"
#include "inference/backend.h"
#include "inference/safetensors.h"

namespace sluice::inference::cpu {

enum class MatrixFormat { kF32, kBF16, kInt8 };
enum class MatrixLayout { kRows, kPanels };

class WeightMatrix {
public:
    WeightMatrix() = default;
    WeightMatrix(WeightMatrix&&) = default;
    WeightMatrix& operator=(WeightMatrix&&) = default;
    WeightMatrix(const WeightMatrix&) = delete;
    WeightMatrix& operator=(const WeightMatrix&) = delete;

    // Quantises or rounds fp32 values [rows, cols] into `format`, owning the result.
    static WeightMatrix from_f32(std::span<const float> values, int64_t rows, int64_t cols,
                                 MatrixFormat format);
    // Borrows `data` ([rows, cols] of `format`, not int8); the caller keeps it alive.
    static WeightMatrix borrow(const void* data, int64_t rows, int64_t cols, MatrixFormat format);

    MatrixFormat format() const { return format_; }
    MatrixLayout layout() const { return layout_; }
    int64_t rows() const { return rows_; }
    int64_t cols() const { return cols_; }
    // The first element; in the panel layout, of the first panel.
    const void* data() const { return data_; }
    const float* scales() const { return scales_.empty() ? nullptr : scales_.data(); }
    int64_t bytes() const;

    // Row r dequantised to fp32: out[cols].
    void row_to_f32(int64_t r, float* out) const;

    // Whether pack_panels would store a matrix of this shape and format in panels.
    static bool panels_fit(int64_t rows, int64_t cols, MatrixFormat format);

private:
    friend WeightMatrix pack_panels(WeightMatrix matrix);

    MatrixFormat format_ = MatrixFormat::kF32;
    MatrixLayout layout_ = MatrixLayout::kRows;
    int64_t rows_ = 0;
    int64_t cols_ = 0;
    const void* data_ = nullptr;
    std::vector<float> owned_f32_;
    std::vector<uint16_t> owned_bf16_;
    std::vector<int8_t> owned_i8_;
    std::vector<float> scales_;  // [rows], int8 only
};

// `matrix` in the panel layout when panels_fit (bf16, rows a multiple of kPanelRows, columns of
// kPanelCols), owning the packed copy (a borrowed matrix stops pointing into the mapping);
// otherwise `matrix` unchanged. For the matrices that batch-1 decode streams.
WeightMatrix pack_panels(WeightMatrix matrix);

// The matrix format that `requested` means for a tensor stored as `stored`.
MatrixFormat matrix_format_for(WeightFormat requested, DType stored);

// A checkpoint tensor of shape [rows, cols] as a matrix in `format`; borrowed when possible.
WeightMatrix load_matrix(const TensorView& tensor, MatrixFormat format);

// A fused expert tensor [n_blocks * block_rows, cols] whose blocks are applied without a
// transpose (DBRX's w2): each block is transposed to [cols, block_rows], giving
// [n_blocks * cols, block_rows], so that every expert matrix is read row-wise like the others.
WeightMatrix load_matrix_transposed_blocks(const TensorView& tensor, int64_t n_blocks,
                                           MatrixFormat format);

// Rows of a rank's shard (parallel plans): `count` rows from `begin`.
struct RowRange {
    int64_t begin = 0;
    int64_t count = 0;
};

// The rows `ranges` (in order) and columns [col_begin, col_begin + n_cols) of a checkpoint
// tensor [rows, cols], as a matrix [Σ counts, n_cols]. Only those elements are read from the
// mapping: borrowed when they are one contiguous run in the wanted format, else copied.
WeightMatrix load_matrix_slice(const TensorView& tensor, std::span<const RowRange> ranges,
                               int64_t col_begin, int64_t n_cols, MatrixFormat format);

// As load_matrix_transposed_blocks, for blocks [block_begin, block_begin + n_blocks_kept) of
// the tensor's `n_blocks`, and of each kept block only the rows [row_begin, row_begin + n_rows)
// (an expert's ffn slice): [n_blocks_kept * cols, n_rows].
WeightMatrix load_matrix_transposed_blocks(const TensorView& tensor, int64_t n_blocks,
                                           int64_t block_begin, int64_t n_blocks_kept,
                                           RowRange rows, MatrixFormat format);

// A whole tensor widened to fp32 (norm weights, and tests).
std::vector<float> tensor_to_f32(const TensorView& tensor);

}  // namespace sluice::inference::cpu
