#include "inference/cpu/weights.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/check.h"
#include "inference/cpu/panel_layout.h"

namespace sluice::inference::cpu {

WeightMatrix WeightMatrix::from_f32(std::span<const float> values, int64_t rows, int64_t cols,
                                    MatrixFormat format) {
    SLUICE_CHECK(static_cast<int64_t>(values.size()) == rows * cols, "matrix size mismatch");
    WeightMatrix m;
    m.format_ = format;
    m.rows_ = rows;
    m.cols_ = cols;
    switch (format) {
        case MatrixFormat::kF32:
            m.owned_f32_.assign(values.begin(), values.end());
            m.data_ = m.owned_f32_.data();
            break;
        case MatrixFormat::kBF16:
            m.owned_bf16_.resize(values.size());
            convert_f32_to_bf16(values, m.owned_bf16_.data());
            m.data_ = m.owned_bf16_.data();
            break;
        case MatrixFormat::kInt8:
            m.owned_i8_.resize(values.size());
            m.scales_.resize(static_cast<size_t>(rows));
            for (int64_t r = 0; r < rows; ++r) {
                const float* row = values.data() + r * cols;
                float max_abs = 0;
                for (int64_t c = 0; c < cols; ++c) {
                    max_abs = std::max(max_abs, std::fabs(row[c]));
                }
                const float scale = max_abs > 0 ? max_abs / 127.0f : 1.0f;
                m.scales_[static_cast<size_t>(r)] = scale;
                for (int64_t c = 0; c < cols; ++c) {
                    float q = std::nearbyint(row[c] / scale);
                    m.owned_i8_[static_cast<size_t>(r * cols + c)] =
                        static_cast<int8_t>(std::clamp(q, -127.0f, 127.0f));
                }
            }
            m.data_ = m.owned_i8_.data();
            break;
    }
    return m;
}

WeightMatrix WeightMatrix::borrow(const void* data, int64_t rows, int64_t cols,
                                  MatrixFormat format) {
    SLUICE_CHECK(format != MatrixFormat::kInt8, "int8 matrices carry scales and are owned");
    WeightMatrix m;
    m.format_ = format;
    m.rows_ = rows;
    m.cols_ = cols;
    m.data_ = data;
    return m;
}

int64_t WeightMatrix::bytes() const {
    switch (format_) {
        case MatrixFormat::kF32: return rows_ * cols_ * 4;
        case MatrixFormat::kBF16: return rows_ * cols_ * 2;
        case MatrixFormat::kInt8: return rows_ * cols_ + rows_ * 4;
    }
    return 0;
}

void WeightMatrix::row_to_f32(int64_t r, float* out) const {
    switch (format_) {
        case MatrixFormat::kF32:
            std::memcpy(out, static_cast<const float*>(data_) + r * cols_,
                        static_cast<size_t>(cols_) * 4);
            return;
        case MatrixFormat::kBF16: {
            const auto* bits = static_cast<const uint16_t*>(data_);
            if (layout_ == MatrixLayout::kPanels) {
                // Group by group: each group's kPanelCols values are contiguous (and the loop
                // vectorises, which matters when prefill widens whole panels for sgemm).
                const uint16_t* row = bits + panel_row_offset(r, cols_);
                for (int64_t c = 0; c < cols_; c += kPanelCols) {
                    const uint16_t* group = row + panel_col_offset(c);
                    for (int64_t i = 0; i < kPanelCols; ++i) {
                        out[c + i] = bf16_to_f32(group[i]);
                    }
                }
                return;
            }
            const uint16_t* row = bits + r * cols_;
            for (int64_t c = 0; c < cols_; ++c) {
                out[c] = bf16_to_f32(row[c]);
            }
            return;
        }
        case MatrixFormat::kInt8: {
            const int8_t* row = static_cast<const int8_t*>(data_) + r * cols_;
            const float scale = scales_[static_cast<size_t>(r)];
            for (int64_t c = 0; c < cols_; ++c) {
                out[c] = static_cast<float>(row[c]) * scale;
            }
            return;
        }
    }
}

bool WeightMatrix::panels_fit(int64_t rows, int64_t cols, MatrixFormat format) {
    return format == MatrixFormat::kBF16 && rows > 0 && rows % kPanelRows == 0 && cols > 0 &&
           cols % kPanelCols == 0;
}

WeightMatrix pack_panels(WeightMatrix matrix) {
    if (matrix.layout_ == MatrixLayout::kPanels ||
        !WeightMatrix::panels_fit(matrix.rows_, matrix.cols_, matrix.format_)) {
        return matrix;
    }
    const int64_t cols = matrix.cols_;
    const auto* rows = static_cast<const uint16_t*>(matrix.data_);
    std::vector<uint16_t> packed(static_cast<size_t>(matrix.rows_ * cols));
    for (int64_t r = 0; r < matrix.rows_; ++r) {
        uint16_t* row = packed.data() + panel_row_offset(r, cols);
        for (int64_t c = 0; c < cols; c += kPanelCols) {
            std::memcpy(row + panel_col_offset(c), rows + r * cols + c, kPanelCols * 2);
        }
    }
    matrix.owned_bf16_ = std::move(packed);  // frees a converted row-major copy
    matrix.data_ = matrix.owned_bf16_.data();
    matrix.layout_ = MatrixLayout::kPanels;
    return matrix;
}

MatrixFormat matrix_format_for(WeightFormat requested, DType stored) {
    switch (requested) {
        case WeightFormat::kF32: return MatrixFormat::kF32;
        case WeightFormat::kBF16: return MatrixFormat::kBF16;
        case WeightFormat::kInt8: return MatrixFormat::kInt8;
        case WeightFormat::kAsStored:
        case WeightFormat::kF8E4M3:  // refused by open_cpu_backend before this is asked
        case WeightFormat::kInt4:    // likewise
            // fp8 widens losslessly to bf16; f16 does not, so it goes to f32.
            return stored == DType::kBF16 || stored == DType::kF8E4M3 ? MatrixFormat::kBF16
                                                                      : MatrixFormat::kF32;
    }
    return MatrixFormat::kF32;
}

std::vector<float> tensor_to_f32(const TensorView& tensor) {
    std::vector<float> out(static_cast<size_t>(tensor.n_elements()));
    convert_to_f32(tensor.dtype, tensor.data, tensor.n_elements(), out.data());
    return out;
}

WeightMatrix load_matrix(const TensorView& tensor, MatrixFormat format) {
    SLUICE_CHECK(tensor.shape.size() == 2, "load_matrix needs a 2-d tensor");
    const int64_t rows = tensor.shape[0];
    const int64_t cols = tensor.shape[1];
    const auto address = reinterpret_cast<uintptr_t>(tensor.data);
    if (format == MatrixFormat::kF32 && tensor.dtype == DType::kF32 && address % 4 == 0) {
        return WeightMatrix::borrow(tensor.data, rows, cols, format);
    }
    if (format == MatrixFormat::kBF16 && tensor.dtype == DType::kBF16 && address % 2 == 0) {
        return WeightMatrix::borrow(tensor.data, rows, cols, format);
    }
    return WeightMatrix::from_f32(tensor_to_f32(tensor), rows, cols, format);
}

WeightMatrix load_matrix_slice(const TensorView& tensor, std::span<const RowRange> ranges,
                               int64_t col_begin, int64_t n_cols, MatrixFormat format) {
    SLUICE_CHECK(tensor.shape.size() == 2, "load_matrix_slice needs a 2-d tensor");
    const int64_t cols = tensor.shape[1];
    SLUICE_CHECK(col_begin >= 0 && n_cols > 0 && col_begin + n_cols <= cols,
                 "column slice outside the tensor");
    int64_t n_rows = 0;
    for (const RowRange& range : ranges) {
        SLUICE_CHECK(range.begin >= 0 && range.count >= 0 &&
                         range.begin + range.count <= tensor.shape[0],
                     "row slice outside the tensor");
        n_rows += range.count;
    }
    const int64_t element = dtype_size(tensor.dtype);
    const uint8_t* first = ranges.empty() ? tensor.data
                                          : tensor.data + ranges.front().begin * cols * element;
    // Ranges that follow each other (the q, k and v heads of the whole model) form one run.
    bool one_run = !ranges.empty();
    for (size_t i = 1; i < ranges.size(); ++i) {
        one_run = one_run && ranges[i].begin == ranges[i - 1].begin + ranges[i - 1].count;
    }
    if (one_run && n_cols == cols) {
        TensorView run = tensor;  // a contiguous run of whole rows: borrowable like a tensor
        run.shape = {n_rows, cols};
        run.data = first;
        run.n_bytes = n_rows * cols * element;
        return load_matrix(run, format);
    }
    std::vector<float> values(static_cast<size_t>(n_rows * n_cols));
    float* out = values.data();
    for (const RowRange& range : ranges) {
        for (int64_t r = range.begin; r < range.begin + range.count; ++r) {
            convert_to_f32(tensor.dtype, tensor.data + (r * cols + col_begin) * element, n_cols,
                           out);
            out += n_cols;
        }
    }
    return WeightMatrix::from_f32(values, n_rows, n_cols, format);
}

WeightMatrix load_matrix_transposed_blocks(const TensorView& tensor, int64_t n_blocks,
                                           MatrixFormat format) {
    SLUICE_CHECK(tensor.shape.size() == 2 && tensor.shape[0] % n_blocks == 0,
                 "transposed blocks need [n_blocks * block_rows, cols]");
    return load_matrix_transposed_blocks(tensor, n_blocks, 0, n_blocks,
                                         {0, tensor.shape[0] / n_blocks}, format);
}

WeightMatrix load_matrix_transposed_blocks(const TensorView& tensor, int64_t n_blocks,
                                           int64_t block_begin, int64_t n_blocks_kept,
                                           RowRange rows, MatrixFormat format) {
    SLUICE_CHECK(tensor.shape.size() == 2 && tensor.shape[0] % n_blocks == 0,
                 "transposed blocks need [n_blocks * block_rows, cols]");
    const int64_t block_rows = tensor.shape[0] / n_blocks;
    SLUICE_CHECK(block_begin >= 0 && n_blocks_kept > 0 && block_begin + n_blocks_kept <= n_blocks &&
                     rows.begin >= 0 && rows.count > 0 && rows.begin + rows.count <= block_rows,
                 "block slice outside the tensor");
    const int64_t cols = tensor.shape[1];
    const int64_t element = dtype_size(tensor.dtype);
    std::vector<float> block(static_cast<size_t>(rows.count * cols));
    std::vector<float> transposed(static_cast<size_t>(n_blocks_kept * cols * rows.count));
    for (int64_t b = 0; b < n_blocks_kept; ++b) {
        const int64_t first_row = (block_begin + b) * block_rows + rows.begin;
        convert_to_f32(tensor.dtype, tensor.data + first_row * cols * element, rows.count * cols,
                       block.data());
        float* out = transposed.data() + b * cols * rows.count;  // [cols, rows.count]
        for (int64_t r = 0; r < rows.count; ++r) {
            for (int64_t c = 0; c < cols; ++c) {
                out[c * rows.count + r] = block[static_cast<size_t>(r * cols + c)];
            }
        }
    }
    return WeightMatrix::from_f32(transposed, n_blocks_kept * cols, rows.count, format);
}

}  // namespace sluice::inference::cpu
