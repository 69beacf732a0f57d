#include "inference/cuda/device_weights.h"

#include <algorithm>
#include <functional>

#include "common/check.h"
#include "inference/cuda/quantize.cuh"
#include "inference/dbrx_layout.h"
#include "inference/dbrx_shard.h"
#include "inference/dtype.h"
#include "inference/fp8_weights.h"
#include "inference/int4_weights.h"
#include "inference/quantized_checkpoint.h"

namespace sluice::inference::cuda {

namespace {

// Values a quantisation pass stages on the device at once (rows of one matrix).
constexpr int64_t kStagingValues = int64_t{32} << 20;
// Random weights: uniform in [-b, b] with b = 0.02 · √3, a standard deviation of 0.02.
constexpr float kRandomBound = 0.034641016f;

bool is_norm(const std::string& name) { return name.find("norm") != std::string::npos; }
bool is_w2(const std::string& name) { return fp8_column_scales(name); }
// A scale tensor of a quantised checkpoint: counted and uploaded with its matrix.
bool is_scale(const ExpectedTensor& expected) {
    return expected.dtype == DType::kF32 || expected.dtype == DType::kF16;
}
// An expert matrix an int4 checkpoint stores as packed codes.
bool stored_int4(const std::string& name, const ModelConfig& config) {
    return config.quantization == CheckpointQuantization::kInt4Grouped && int4_quantizes(name);
}

// What a matrix becomes on the device. fp8 follows inference/fp8_weights.h's rule (the
// embedding and the router stay in a float format, bf16); a quantised checkpoint's fp8 matrices
// stay fp8 unless a float format is asked for, and its other matrices take the same bf16 as
// quantising at load gives them, so that the saved checkpoint computes what quantising at load
// computes (fp8 codes without scales, as some checkpoints store them, widen to bf16 as before).
DeviceDType matrix_type(const std::string& name, WeightFormat requested, DType stored,
                        const ModelConfig& config) {
    if (requested == WeightFormat::kInt4 ||
        (requested == WeightFormat::kAsStored && stored_int4(name, config))) {
        // int4 is for the experts (inference/int4_weights.h); the rest stays as stored.
        return int4_quantizes(name) ? DeviceDType::kInt4
                                    : device_dtype_for(WeightFormat::kAsStored, stored);
    }
    if (stored_int4(name, config)) {
        return device_dtype_for(requested, DType::kBF16);  // widened on the host
    }
    const bool quantized = config.quantization == CheckpointQuantization::kFp8PerChannel;
    if (requested == WeightFormat::kF8E4M3 || (requested == WeightFormat::kAsStored && quantized)) {
        return fp8_quantizes(name) ? DeviceDType::kF8E4M3 : DeviceDType::kBF16;
    }
    return device_dtype_for(requested, stored);
}

int64_t scale_count(const std::string& name, int64_t rows, int64_t cols,
                    const ModelConfig& config) {
    return is_w2(name) ? config.n_expert * cols : rows;
}

int64_t tensor_device_bytes(const std::string& name, const std::vector<int64_t>& shape,
                            WeightFormat format, DType stored, const ModelConfig& config) {
    int64_t elements = 1;
    for (const int64_t n : shape) {
        elements *= n;
    }
    if (is_norm(name)) {
        return elements * 4;
    }
    const DeviceDType type = matrix_type(name, format, stored, config);
    if (int4_quantizes(name) && (type == DeviceDType::kInt4 || stored_int4(name, config))) {
        // Sized from the config: a stored int4 tensor's shape is its packed one.
        const Int4MatrixShape int4 = int4_matrix_shape(name, config);
        const int64_t values = int4.rows * int4.cols;
        if (type != DeviceDType::kInt4) {
            return values * device_dtype_size(type);
        }
        return values / 2 + values / config.int4_group_size * 2;
    }
    int64_t bytes = elements * device_dtype_size(type);
    if (type == DeviceDType::kF8E4M3) {
        bytes += scale_count(name, shape[0], shape[1], config) * 4;
    }
    return bytes;
}

const TensorView& tensor(const Checkpoint& checkpoint, const std::string& name) {
    const TensorView* view = checkpoint.find(name);
    SLUICE_CHECK(view != nullptr, "checkpoint was checked, yet lacks '" + name + "'");
    return *view;
}

Status upload_bytes(const void* src, int64_t bytes, DeviceBuffer* dst) {
    SLUICE_RETURN_IF_ERROR(dst->allocate(bytes));
    SLUICE_CUDA_CHECK(
        cudaMemcpy(dst->get(), src, static_cast<size_t>(bytes), cudaMemcpyHostToDevice));
    return Status::ok_status();
}

Status upload_f32(const TensorView& t, DeviceBuffer* dst) {
    if (t.dtype == DType::kF32) {
        return upload_bytes(t.data, t.n_bytes, dst);
    }
    std::vector<float> values(static_cast<size_t>(t.n_elements()));
    convert_to_f32(t.dtype, t.data, t.n_elements(), values.data());
    return upload_bytes(values.data(), t.n_elements() * 4, dst);
}

// Rows [first, first + n) of a matrix, written as `type` (f32 or bf16) to device memory.
struct MatrixSource {
    DeviceDType type = DeviceDType::kF32;
    std::function<Status(int64_t first, int64_t n, void* dst)> fill;
};

MatrixSource checkpoint_source(const TensorView& t) {
    const int64_t cols = t.shape[1];
    if (t.dtype == DType::kBF16 || t.dtype == DType::kF32) {
        const int64_t element = t.dtype == DType::kBF16 ? 2 : 4;
        return {t.dtype == DType::kBF16 ? DeviceDType::kBF16 : DeviceDType::kF32,
                [&t, cols, element](int64_t first, int64_t n, void* dst) -> Status {
                    SLUICE_CUDA_CHECK(cudaMemcpy(
                        dst, t.data + first * cols * element,
                        static_cast<size_t>(n * cols * element), cudaMemcpyHostToDevice));
                    return Status::ok_status();
                }};
    }
    return {DeviceDType::kF32, [&t, cols](int64_t first, int64_t n, void* dst) -> Status {
                std::vector<float> values(static_cast<size_t>(n * cols));
                const int64_t element = dtype_size(t.dtype);
                convert_to_f32(t.dtype, t.data + first * cols * element,
                               n * cols, values.data());
                SLUICE_CUDA_CHECK(cudaMemcpy(dst, values.data(), values.size() * 4,
                                             cudaMemcpyHostToDevice));
                return Status::ok_status();
            }};
}

MatrixSource random_source(uint64_t seed, int64_t cols, DeviceDType type) {
    return {type, [seed, cols, type](int64_t first, int64_t n, void* dst) {
                // A seed per chunk start: the values depend on (seed, row), not on the chunking
                // only where chunks are equal, which is all a benchmark needs.
                return fill_random(dst, type, n * cols, seed * 0x100000001b3ull + first,
                                   kRandomBound, nullptr);
            }};
}

// Quantises a [rows, cols] matrix to fp8 through a staging buffer: scales per row, or per
// column of each group of `group_rows` rows (w2: per expert).
Status quantize_matrix(const MatrixSource& source, int64_t rows, int64_t cols,
                       int64_t group_rows, DeviceMatrix* m) {
    m->type = DeviceDType::kF8E4M3;
    m->rows = rows;
    m->cols = cols;
    const bool column_scales = group_rows > 0;
    SLUICE_RETURN_IF_ERROR(m->buffer.allocate(rows * cols));
    SLUICE_RETURN_IF_ERROR(
        m->scales.allocate((column_scales ? rows / group_rows * cols : rows) * 4));
    const int64_t chunk =
        column_scales ? group_rows : std::clamp<int64_t>(kStagingValues / cols, 1, rows);
    DeviceBuffer staging;
    SLUICE_RETURN_IF_ERROR(staging.allocate(chunk * cols * device_dtype_size(source.type)));
    auto* out = m->buffer.as<char>();
    for (int64_t first = 0; first < rows; first += chunk) {
        const int64_t n = std::min(chunk, rows - first);
        SLUICE_RETURN_IF_ERROR(source.fill(first, n, staging.get()));
        if (column_scales) {
            SLUICE_RETURN_IF_ERROR(quantize_cols_fp8(staging.get(), source.type, n, cols,
                                                     out + first * cols,
                                                     m->scales.as<float>() + first / group_rows * cols,
                                                     nullptr));
        } else {
            SLUICE_RETURN_IF_ERROR(quantize_rows_fp8(staging.get(), source.type, n, cols,
                                                     out + first * cols,
                                                     m->scales.as<float>() + first, nullptr));
        }
    }
    SLUICE_CUDA_CHECK(cudaDeviceSynchronize());
    return Status::ok_status();
}

// Quantises an expert matrix to int4 on the device (inference/int4_weights.h) through a
// staging buffer: w1 and v1 a run of rows at a time, w2 an expert at a time, its [n_ff, d_model]
// block read down the columns so that every stored row is one output column.
Status quantize_int4_matrix(const MatrixSource& source, const std::string& name,
                            const ModelConfig& config, DeviceMatrix* m) {
    const Int4MatrixShape shape = int4_matrix_shape(name, config);
    const int64_t group = config.int4_group_size;
    m->type = DeviceDType::kInt4;
    m->rows = shape.rows;
    m->cols = shape.cols;
    m->group_size = group;
    SLUICE_RETURN_IF_ERROR(m->buffer.allocate(shape.rows * shape.cols / 2));
    SLUICE_RETURN_IF_ERROR(m->scales.allocate(shape.rows * shape.cols / group * 2));
    auto* codes = m->buffer.as<uint8_t>();
    auto* scales = m->scales.as<uint16_t>();
    const int64_t source_cols = config.d_model;  // the checkpoint layout's rows hold d_model
    const bool transposed = int4_transposed(name);
    const int64_t chunk = transposed ? config.n_ff
                                     : std::clamp<int64_t>(kStagingValues / source_cols, 1,
                                                           shape.rows);
    DeviceBuffer staging;
    SLUICE_RETURN_IF_ERROR(
        staging.allocate(chunk * source_cols * device_dtype_size(source.type)));
    const int64_t source_rows = config.n_expert * config.n_ff;
    for (int64_t first = 0; first < source_rows; first += chunk) {
        const int64_t n = std::min(chunk, source_rows - first);
        SLUICE_RETURN_IF_ERROR(source.fill(first, n, staging.get()));
        if (transposed) {
            const int64_t e = first / config.n_ff;
            SLUICE_RETURN_IF_ERROR(quantize_int4(
                staging.get(), source.type, config.d_model, config.n_ff, group, true,
                codes + e * config.d_model * config.n_ff / 2,
                scales + e * config.d_model * (config.n_ff / group), nullptr));
        } else {
            SLUICE_RETURN_IF_ERROR(quantize_int4(staging.get(), source.type, n, shape.cols,
                                                 group, false, codes + first * shape.cols / 2,
                                                 scales + first * (shape.cols / group),
                                                 nullptr));
        }
    }
    SLUICE_CUDA_CHECK(cudaDeviceSynchronize());
    return Status::ok_status();
}

// An int4 checkpoint's expert matrix `t` with its group scales `s`: uploaded as they are, or
// widened on the host (q · scale) when a float format is asked for.
Status upload_int4_matrix(const TensorView& t, const TensorView& s, const ModelConfig& config,
                          DeviceMatrix* m) {
    if (m->type == DeviceDType::kInt4) {
        const Int4MatrixShape shape = int4_matrix_shape(t.name, config);
        m->rows = shape.rows;
        m->cols = shape.cols;
        m->group_size = config.int4_group_size;
        SLUICE_RETURN_IF_ERROR(upload_bytes(t.data, t.n_bytes, &m->buffer));
        return upload_bytes(s.data, s.n_bytes, &m->scales);
    }
    const std::vector<float> values = dequantize_int4_tensor(t, s, config);
    m->rows = config.n_expert * config.n_ff;
    m->cols = config.d_model;
    if (m->type == DeviceDType::kF32) {
        return upload_bytes(values.data(), static_cast<int64_t>(values.size()) * 4, &m->buffer);
    }
    std::vector<uint16_t> bf16(values.size());
    convert_f32_to_bf16(values, bf16.data());
    return upload_bytes(bf16.data(), static_cast<int64_t>(bf16.size()) * 2, &m->buffer);
}

// A quantised checkpoint's matrix `t` with its scales `s`: the codes and scales as they are, or
// widened on the host when a float format is asked for.
Status upload_quantized_matrix(const TensorView& t, const TensorView& s, DeviceMatrix* m,
                               const ModelConfig& config) {
    if (m->type == DeviceDType::kF8E4M3) {
        SLUICE_RETURN_IF_ERROR(upload_bytes(t.data, t.n_bytes, &m->buffer));
        return upload_bytes(s.data, s.n_bytes, &m->scales);
    }
    std::vector<float> scales(static_cast<size_t>(s.n_elements()));
    convert_to_f32(DType::kF32, s.data, s.n_elements(), scales.data());
    std::vector<float> values(static_cast<size_t>(t.n_elements()));
    if (is_w2(t.name)) {
        for (int64_t e = 0; e < m->rows / config.n_ff; ++e) {
            dequantize_fp8_columns(t.data + e * config.n_ff * m->cols, scales.data() + e * m->cols,
                                   config.n_ff, m->cols, values.data() + e * config.n_ff * m->cols);
        }
    } else {
        dequantize_fp8_rows(t.data, scales.data(), m->rows, m->cols, values.data());
    }
    if (m->type == DeviceDType::kF32) {
        return upload_bytes(values.data(), t.n_elements() * 4, &m->buffer);
    }
    std::vector<uint16_t> bf16(values.size());
    convert_f32_to_bf16(values, bf16.data());
    return upload_bytes(bf16.data(), t.n_elements() * 2, &m->buffer);
}

Status upload_matrix(const Checkpoint& checkpoint, const TensorView& t, WeightFormat format,
                     const ModelConfig& config, DeviceMatrix* m) {
    SLUICE_CHECK(t.shape.size() == 2, "a weight matrix is 2-d");
    m->type = matrix_type(t.name, format, t.dtype, config);
    m->rows = t.shape[0];
    m->cols = t.shape[1];
    if (stored_int4(t.name, config)) {
        return upload_int4_matrix(t, tensor(checkpoint, int4_scale_tensor_name(t.name)), config,
                                  m);
    }
    if (m->type == DeviceDType::kInt4) {
        return quantize_int4_matrix(checkpoint_source(t), t.name, config, m);
    }
    if (config.quantization == CheckpointQuantization::kFp8PerChannel && fp8_quantizes(t.name)) {
        return upload_quantized_matrix(t, tensor(checkpoint, fp8_scale_tensor_name(t.name)), m,
                                       config);
    }
    if (m->type == DeviceDType::kF8E4M3) {
        return quantize_matrix(checkpoint_source(t), m->rows, m->cols,
                               is_w2(t.name) ? config.n_ff : 0, m);
    }
    if (m->type == DeviceDType::kF32) {
        return upload_f32(t, &m->buffer);
    }
    if (t.dtype == DType::kBF16) {
        return upload_bytes(t.data, t.n_bytes, &m->buffer);
    }
    std::vector<float> values(static_cast<size_t>(t.n_elements()));
    convert_to_f32(t.dtype, t.data, t.n_elements(), values.data());
    std::vector<uint16_t> bf16(values.size());
    convert_f32_to_bf16(values, bf16.data());
    return upload_bytes(bf16.data(), t.n_elements() * 2, &m->buffer);
}

Status random_matrix(const std::string& name, int64_t rows, int64_t cols, WeightFormat format,
                     const ModelConfig& config, uint64_t seed, DeviceMatrix* m) {
    const DeviceDType type = matrix_type(name, format, DType::kBF16, config);
    const DeviceDType source_type = type == DeviceDType::kF32 ? type : DeviceDType::kBF16;
    const MatrixSource source = random_source(seed, cols, source_type);
    if (type == DeviceDType::kInt4) {
        return quantize_int4_matrix(source, name, config, m);
    }
    if (type == DeviceDType::kF8E4M3) {
        return quantize_matrix(source, rows, cols, is_w2(name) ? config.n_ff : 0, m);
    }
    m->type = type;
    m->rows = rows;
    m->cols = cols;
    SLUICE_RETURN_IF_ERROR(m->buffer.allocate(rows * cols * device_dtype_size(type)));
    SLUICE_RETURN_IF_ERROR(source.fill(0, rows, m->buffer.get()));
    SLUICE_CUDA_CHECK(cudaDeviceSynchronize());
    return Status::ok_status();
}

// ---- A rank's shard (tensor plan): only its rows and columns leave the mapping. ----

// Copies rows [first, first + n) of `slice` (numbered within the slice) of a row-major matrix
// of `row_elements` elements of `element` bytes at `data` to `dst`, packed: one 2-d copy per run
// of rows, straight from the mapping.
Status copy_slice_rows(const uint8_t* data, int64_t row_elements, int64_t element,
                       const TensorSlice& slice, int64_t first, int64_t n, void* dst) {
    const int64_t width = slice.cols.count * element;
    auto* out = static_cast<uint8_t*>(dst);
    int64_t local = 0;  // the slice's row number where the run begins
    for (const Split& run : slice.rows) {
        const int64_t lo = std::max(first, local);
        const int64_t hi = std::min(first + n, local + run.count);
        if (lo < hi) {
            const uint8_t* src =
                data + ((run.begin + lo - local) * row_elements + slice.cols.begin) * element;
            SLUICE_CUDA_CHECK(cudaMemcpy2D(out + (lo - first) * width, static_cast<size_t>(width),
                                           src, static_cast<size_t>(row_elements * element),
                                           static_cast<size_t>(width), static_cast<size_t>(hi - lo),
                                           cudaMemcpyHostToDevice));
        }
        local += run.count;
    }
    return Status::ok_status();
}

// The slice of `t` as `type` (f32 or bf16): copied as stored when the types agree, else a run
// of rows at a time converted on the host (never more than the rows asked for).
MatrixSource slice_source(const TensorView& t, const TensorSlice& slice, DeviceDType type) {
    const bool as_stored = (type == DeviceDType::kBF16 && t.dtype == DType::kBF16) ||
                           (type == DeviceDType::kF32 && t.dtype == DType::kF32);
    const int64_t cols = t.shape[1];
    if (as_stored) {
        return {type, [&t, slice, cols, type](int64_t first, int64_t n, void* dst) {
                    return copy_slice_rows(t.data, cols, device_dtype_size(type), slice, first, n,
                                           dst);
                }};
    }
    return {type, [&t, slice, cols, type](int64_t first, int64_t n, void* dst) -> Status {
                const int64_t width = slice.cols.count;
                std::vector<float> values(static_cast<size_t>(n * width));
                const int64_t element = dtype_size(t.dtype);
                int64_t local = 0;
                for (const Split& run : slice.rows) {
                    for (int64_t r = std::max(first, local);
                         r < std::min(first + n, local + run.count); ++r) {
                        const int64_t row = run.begin + r - local;
                        convert_to_f32(t.dtype, t.data + (row * cols + slice.cols.begin) * element,
                                       width, values.data() + (r - first) * width);
                    }
                    local += run.count;
                }
                if (type == DeviceDType::kF32) {
                    SLUICE_CUDA_CHECK(
                        cudaMemcpy(dst, values.data(), values.size() * 4, cudaMemcpyHostToDevice));
                    return Status::ok_status();
                }
                std::vector<uint16_t> bf16(values.size());
                convert_f32_to_bf16(values, bf16.data());
                SLUICE_CUDA_CHECK(
                    cudaMemcpy(dst, bf16.data(), bf16.size() * 2, cudaMemcpyHostToDevice));
                return Status::ok_status();
            }};
}

// A slice's bytes of a byte matrix (fp8 codes, fp32 scales, packed int4 codes, fp16 scales):
// `element` bytes per value, uploaded as they are.
Status upload_slice_bytes(const TensorView& t, int64_t row_values, int64_t element,
                          const TensorSlice& slice, DeviceBuffer* dst) {
    SLUICE_RETURN_IF_ERROR(dst->allocate(slice.n_rows() * slice.cols.count * element));
    return copy_slice_rows(t.data, row_values, element, slice, 0, slice.n_rows(), dst->get());
}

// An int4 checkpoint's expert matrix, the shard's codes and scales as they are.
Status upload_int4_slice(const TensorView& t, const TensorView& s, const ModelConfig& config,
                         const DbrxShard& shard, DeviceMatrix* m) {
    if (m->type != DeviceDType::kInt4) {
        return not_supported("tensor '" + t.name +
                             "': an int4 checkpoint widened to a float format is not split "
                             "across ranks; load it as int4 (weights: stored or int4)");
    }
    const Int4MatrixShape shape = int4_matrix_shape(t.name, config);
    const int64_t group = config.int4_group_size;
    const TensorSlice values = int4_slice(t.name, config, shard);
    m->rows = values.n_rows();
    m->cols = values.cols.count;
    m->group_size = group;
    // Two codes per byte: the slice's columns are even (whole groups, a multiple of 32).
    const TensorSlice code_bytes{values.rows, {values.cols.begin / 2, values.cols.count / 2}};
    SLUICE_RETURN_IF_ERROR(upload_slice_bytes(t, shape.cols / 2, 1, code_bytes, &m->buffer));
    return upload_slice_bytes(s, shape.cols / group, 2, int4_scale_slice(values, group),
                              &m->scales);
}

// A quantised (fp8 per-channel) checkpoint's matrix, the shard's codes and their scales.
Status upload_fp8_slice(const TensorView& t, const TensorView& s, const TensorSlice& slice,
                        const DbrxShard& shard, DeviceMatrix* m) {
    if (m->type != DeviceDType::kF8E4M3) {
        return not_supported("tensor '" + t.name +
                             "': an fp8 checkpoint widened to a float format is not split "
                             "across ranks; load it as fp8 (weights: stored or fp8)");
    }
    SLUICE_RETURN_IF_ERROR(upload_slice_bytes(t, t.shape[1], 1, slice, &m->buffer));
    const TensorSlice scales = fp8_scale_slice(t.name, slice, shard);
    const int64_t scale_cols = fp8_column_scales(t.name) ? t.shape[1] : 1;
    return upload_slice_bytes(s, scale_cols, 4, scales, &m->scales);
}

// The shard's part of matrix `t`. `local` is the config with the shard's ffn size, which the
// expert formats' layouts (int4 w2 per expert, fp8 w2 scales per expert) are sized by.
Status upload_matrix_slice(const Checkpoint& checkpoint, const TensorView& t, WeightFormat format,
                           const ModelConfig& config, const ModelConfig& local,
                           const DbrxShard& shard, DeviceMatrix* m) {
    SLUICE_CHECK(t.shape.size() == 2, "a weight matrix is 2-d");
    m->type = matrix_type(t.name, format, t.dtype, config);
    if (stored_int4(t.name, config)) {
        return upload_int4_slice(t, tensor(checkpoint, int4_scale_tensor_name(t.name)), config,
                                 shard, m);
    }
    const TensorSlice slice = tensor_slice(t.name, t.shape[0], t.shape[1], config, shard);
    m->rows = slice.n_rows();
    m->cols = slice.cols.count;
    const DeviceDType source_type =
        t.dtype == DType::kBF16 ? DeviceDType::kBF16 : DeviceDType::kF32;
    if (m->type == DeviceDType::kInt4) {
        return quantize_int4_matrix(slice_source(t, slice, source_type), t.name, local, m);
    }
    if (config.quantization == CheckpointQuantization::kFp8PerChannel && fp8_quantizes(t.name)) {
        return upload_fp8_slice(t, tensor(checkpoint, fp8_scale_tensor_name(t.name)), slice, shard,
                                m);
    }
    if (m->type == DeviceDType::kF8E4M3) {
        // Scales from the slice's values: out_proj's per-row scales see the shard's columns
        // only, w2's per-column scales the shard's ffn rows only (docs/parallel.md).
        return quantize_matrix(slice_source(t, slice, source_type), m->rows, m->cols,
                               is_w2(t.name) ? local.n_ff : 0, m);
    }
    const MatrixSource source = slice_source(t, slice, m->type);
    const int64_t element = device_dtype_size(m->type);
    SLUICE_RETURN_IF_ERROR(m->buffer.allocate(m->rows * m->cols * element));
    const int64_t chunk = std::clamp<int64_t>(kStagingValues / std::max<int64_t>(m->cols, 1), 1,
                                              std::max<int64_t>(m->rows, 1));
    for (int64_t first = 0; first < m->rows; first += chunk) {
        SLUICE_RETURN_IF_ERROR(source.fill(first, std::min(chunk, m->rows - first),
                                           m->buffer.as<char>() + first * m->cols * element));
    }
    return Status::ok_status();
}

// The config a shard's expert layouts are sized by: the shard's ffn size and expert count.
ModelConfig shard_config(const ModelConfig& config, const DbrxShard& shard) {
    ModelConfig local = config;
    local.n_ff = shard.n_ff;
    local.n_expert = shard.n_expert;
    return local;
}

}  // namespace

DeviceDType device_dtype_for(WeightFormat requested, DType stored) {
    switch (requested) {
        case WeightFormat::kF32:
            return DeviceDType::kF32;
        case WeightFormat::kBF16:
            return DeviceDType::kBF16;
        case WeightFormat::kF8E4M3:  // per tensor: matrix_type
        case WeightFormat::kInt4:    // per tensor: matrix_type
        case WeightFormat::kAsStored:
        case WeightFormat::kInt8:  // refused by open_cuda_backend before this is asked
            break;
    }
    return stored == DType::kBF16 || stored == DType::kF8E4M3 ? DeviceDType::kBF16
                                                              : DeviceDType::kF32;
}

int64_t device_weight_bytes(const Checkpoint& checkpoint, const ModelConfig& config,
                            WeightFormat format) {
    int64_t bytes = 0;
    for (const ExpectedTensor& expected : dbrx_tensor_layout(config)) {
        if (is_scale(expected)) {
            continue;
        }
        const TensorView& t = tensor(checkpoint, expected.name);
        bytes += tensor_device_bytes(t.name, t.shape, format, t.dtype, config);
    }
    return bytes;
}

namespace {

// Every tensor of the model onto the device: the norms whole (f32), the matrices through
// `matrix` (the whole tensor, or a rank's slice of it).
Result<DeviceWeights> upload_model(
    const Checkpoint& checkpoint, const ModelConfig& config,
    const std::function<Status(const std::string& name, DeviceMatrix* m)>& matrix) {
    DeviceWeights w;
    SLUICE_RETURN_IF_ERROR(matrix("transformer.wte.weight", &w.embedding));
    for (int64_t i = 0; i < config.n_layer; ++i) {
        DeviceLayer layer;
        auto get = [&](const char* suffix) -> const TensorView& {
            return tensor(checkpoint, dbrx_block_tensor(i, suffix));
        };
        auto block = [&](const char* suffix, DeviceMatrix* m) {
            return matrix(dbrx_block_tensor(i, suffix), m);
        };
        SLUICE_RETURN_IF_ERROR(upload_f32(get("norm_attn_norm.norm_1.weight"), &layer.norm_1));
        SLUICE_RETURN_IF_ERROR(upload_f32(get("norm_attn_norm.norm_2.weight"), &layer.norm_2));
        SLUICE_RETURN_IF_ERROR(block("norm_attn_norm.attn.Wqkv.weight", &layer.wqkv));
        SLUICE_RETURN_IF_ERROR(block("norm_attn_norm.attn.out_proj.weight", &layer.out_proj));
        SLUICE_RETURN_IF_ERROR(block("ffn.router.layer.weight", &layer.router));
        SLUICE_RETURN_IF_ERROR(block("ffn.experts.mlp.w1", &layer.w1));
        SLUICE_RETURN_IF_ERROR(block("ffn.experts.mlp.v1", &layer.v1));
        SLUICE_RETURN_IF_ERROR(block("ffn.experts.mlp.w2", &layer.w2));
        w.layers.push_back(std::move(layer));
    }
    SLUICE_RETURN_IF_ERROR(upload_f32(tensor(checkpoint, "transformer.norm_f.weight"), &w.norm_f));
    SLUICE_RETURN_IF_ERROR(matrix("lm_head.weight", &w.lm_head));
    return w;
}

}  // namespace

Result<DeviceWeights> upload_weights(const Checkpoint& checkpoint, const ModelConfig& config,
                                     WeightFormat format) {
    return upload_model(checkpoint, config, [&](const std::string& name, DeviceMatrix* m) {
        return upload_matrix(checkpoint, tensor(checkpoint, name), format, config, m);
    });
}

int64_t random_weight_bytes(const ModelConfig& config, WeightFormat format) {
    int64_t bytes = 0;
    for (const ExpectedTensor& expected : dbrx_tensor_layout(config)) {
        bytes += tensor_device_bytes(expected.name, expected.shape, format, DType::kBF16, config);
    }
    return bytes;
}

Result<DeviceWeights> make_random_weights(const ModelConfig& config, WeightFormat format,
                                          uint64_t seed) {
    DeviceWeights w;
    uint64_t next_seed = seed;
    for (const ExpectedTensor& expected : dbrx_tensor_layout(config)) {
        const std::string& name = expected.name;
        DeviceBuffer* norm = nullptr;
        DeviceMatrix* m = nullptr;
        if (name == "transformer.wte.weight") {
            m = &w.embedding;
        } else if (name == "lm_head.weight") {
            m = &w.lm_head;
        } else if (name == "transformer.norm_f.weight") {
            norm = &w.norm_f;
        } else {
            const auto layer = static_cast<size_t>(std::stoll(name.substr(name.find("blocks.") + 7)));
            if (w.layers.size() <= layer) {
                w.layers.resize(layer + 1);
            }
            DeviceLayer& l = w.layers[layer];
            if (name.ends_with("norm_1.weight")) {
                norm = &l.norm_1;
            } else if (name.ends_with("norm_2.weight")) {
                norm = &l.norm_2;
            } else if (name.ends_with("Wqkv.weight")) {
                m = &l.wqkv;
            } else if (name.ends_with("out_proj.weight")) {
                m = &l.out_proj;
            } else if (name.ends_with("router.layer.weight")) {
                m = &l.router;
            } else if (name.ends_with("mlp.w1")) {
                m = &l.w1;
            } else if (name.ends_with("mlp.v1")) {
                m = &l.v1;
            } else if (name.ends_with("mlp.w2")) {
                m = &l.w2;
            }
        }
        SLUICE_CHECK(norm != nullptr || m != nullptr, "unplaced tensor '" + name + "'");
        if (norm != nullptr) {
            SLUICE_RETURN_IF_ERROR(norm->allocate(expected.shape[0] * 4));
            SLUICE_RETURN_IF_ERROR(
                fill_constant(norm->as<float>(), expected.shape[0], 1.0f, nullptr));
            continue;
        }
        SLUICE_RETURN_IF_ERROR(random_matrix(name, expected.shape[0], expected.shape[1], format,
                                             config, ++next_seed, m));
    }
    SLUICE_CUDA_CHECK(cudaDeviceSynchronize());
    return w;
}

bool is_whole(const DbrxShard& shard, const ModelConfig& config) {
    const DbrxShard whole = DbrxShard::whole(config);
    return shard.head_begin == 0 && shard.n_head == whole.n_head &&
           shard.n_head_kv == whole.n_head_kv && shard.ff_begin == 0 && shard.n_ff == whole.n_ff &&
           shard.n_expert == whole.n_expert && shard.vocab_begin == 0 &&
           shard.n_vocab == whole.n_vocab;
}

Status check_shard_weights(const ModelConfig& config, WeightFormat format, const DbrxShard& shard,
                           int tensor_ranks) {
    const bool int4 = format == WeightFormat::kInt4 ||
                      config.quantization == CheckpointQuantization::kInt4Grouped;
    if (int4) {
        SLUICE_RETURN_IF_ERROR(check_int4_shard(config, shard, tensor_ranks));
    }
    return Status::ok_status();
}

int64_t device_weight_bytes(const Checkpoint& checkpoint, const ModelConfig& config,
                            WeightFormat format, const DbrxShard& shard) {
    if (is_whole(shard, config)) {
        return device_weight_bytes(checkpoint, config, format);
    }
    const ModelConfig local = shard_config(config, shard);
    int64_t bytes = 0;
    for (const ExpectedTensor& expected : dbrx_tensor_layout(config)) {
        if (is_scale(expected)) {
            continue;
        }
        const TensorView& t = tensor(checkpoint, expected.name);
        std::vector<int64_t> shape = t.shape;
        if (shape.size() == 2 && !stored_int4(t.name, config)) {
            const TensorSlice slice = tensor_slice(t.name, shape[0], shape[1], config, shard);
            shape = {slice.n_rows(), slice.cols.count};
        }
        bytes += tensor_device_bytes(t.name, shape, format, t.dtype, local);
    }
    return bytes;
}

Result<DeviceWeights> upload_weights(const Checkpoint& checkpoint, const ModelConfig& config,
                                     WeightFormat format, const DbrxShard& shard) {
    if (is_whole(shard, config)) {
        return upload_weights(checkpoint, config, format);
    }
    const ModelConfig local = shard_config(config, shard);
    SLUICE_ASSIGN_OR_RETURN(
        DeviceWeights w,
        upload_model(checkpoint, config, [&](const std::string& name, DeviceMatrix* m) {
            return upload_matrix_slice(checkpoint, tensor(checkpoint, name), format, config, local,
                                       shard, m);
        }));
    SLUICE_CUDA_CHECK(cudaDeviceSynchronize());
    return w;
}

int64_t DeviceWeights::bytes() const {
    int64_t bytes = embedding.bytes() + norm_f.bytes() + lm_head.bytes();
    for (const DeviceLayer& l : layers) {
        bytes += l.norm_1.bytes() + l.norm_2.bytes() + l.wqkv.bytes() + l.out_proj.bytes() +
                 l.router.bytes() + l.w1.bytes() + l.v1.bytes() + l.w2.bytes();
    }
    return bytes;
}

int64_t DeviceWeights::active_bytes(const ModelConfig& config) const {
    int64_t bytes = embedding.bytes() / config.n_vocab + lm_head.bytes();
    for (const DeviceLayer& l : layers) {
        const int64_t experts = l.w1.bytes() + l.v1.bytes() + l.w2.bytes();
        bytes += l.wqkv.bytes() + l.out_proj.bytes() + l.router.bytes() +
                 experts / config.n_expert * config.n_expert_used;
    }
    return bytes;
}

}  // namespace sluice::inference::cuda
