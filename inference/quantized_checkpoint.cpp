#include "inference/quantized_checkpoint.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/check.h"
#include "inference/cpu/thread_pool.h"
#include "inference/dbrx_layout.h"
#include "inference/dtype.h"
#include "inference/fp8_weights.h"
#include "inference/int4_weights.h"
#include "inference/safetensors_writer.h"

namespace sluice::inference {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Rows converted to f32 at a time (one work item) while quantising a row-scaled matrix.
constexpr int64_t kRowsPerPass = 1024;

const TensorView& checked_tensor(const Checkpoint& checkpoint, const std::string& name) {
    const TensorView* view = checkpoint.find(name);
    SLUICE_CHECK(view != nullptr, "checkpoint was checked, yet lacks '" + name + "'");
    return *view;
}

// A quantised matrix: its codes and its scales' bytes, as they will be written.
struct QuantizedMatrix {
    std::vector<uint8_t> codes;
    std::vector<uint8_t> scales;
};

template <typename T>
std::vector<uint8_t> bytes_of(const std::vector<T>& values) {
    const auto* data = reinterpret_cast<const uint8_t*>(values.data());
    return {data, data + values.size() * sizeof(T)};
}

QuantizedMatrix quantize_fp8_matrix(const TensorView& t, const ModelConfig& config,
                                    cpu::ThreadPool& pool) {
    const int64_t rows = t.shape[0];
    const int64_t cols = t.shape[1];
    const int64_t element = dtype_size(t.dtype);
    QuantizedMatrix q;
    q.codes.resize(static_cast<size_t>(rows * cols));
    std::vector<float> scales;
    if (fp8_column_scales(t.name)) {
        // One expert's [n_ff, d_model] block per item, scales per column of the block.
        const int64_t block_rows = config.n_ff;
        scales.resize(static_cast<size_t>(rows / block_rows * cols));
        pool.parallel_for(rows / block_rows, [&](int64_t e) {
            std::vector<float> block(static_cast<size_t>(block_rows * cols));
            convert_to_f32(t.dtype, t.data + e * block_rows * cols * element, block_rows * cols,
                           block.data());
            quantize_fp8_columns(block.data(), block_rows, cols,
                                 q.codes.data() + e * block_rows * cols,
                                 scales.data() + e * cols);
        });
        q.scales = bytes_of(scales);
        return q;
    }
    scales.resize(static_cast<size_t>(rows));
    pool.parallel_for((rows + kRowsPerPass - 1) / kRowsPerPass, [&](int64_t pass) {
        const int64_t first = pass * kRowsPerPass;
        const int64_t n = std::min(kRowsPerPass, rows - first);
        std::vector<float> part(static_cast<size_t>(n * cols));
        convert_to_f32(t.dtype, t.data + first * cols * element, n * cols, part.data());
        quantize_fp8_rows(part.data(), n, cols, q.codes.data() + first * cols,
                          scales.data() + first);
    });
    q.scales = bytes_of(scales);
    return q;
}

// An expert matrix as int4 codes and fp16 group scales (inference/int4_weights.h), one expert
// per work item; w2's blocks are transposed first so that every row is one output channel.
Result<QuantizedMatrix> quantize_int4_matrix(const TensorView& t, const ModelConfig& config,
                                             cpu::ThreadPool& pool) {
    const int64_t block_rows = t.shape[0] / config.n_expert;  // [n_ff, d_model] per expert
    const int64_t block_cols = t.shape[1];
    const Int4MatrixShape shape = int4_matrix_shape(t.name, config);
    const int64_t rows_per_expert = shape.rows / config.n_expert;
    const int64_t groups_per_row = shape.cols / config.int4_group_size;
    const int64_t element = dtype_size(t.dtype);
    const bool transposed = int4_transposed(t.name);
    std::vector<uint16_t> scales(static_cast<size_t>(shape.rows * groups_per_row));
    QuantizedMatrix q;
    q.codes.resize(static_cast<size_t>(shape.rows * shape.cols / 2));
    std::vector<Status> failures(static_cast<size_t>(config.n_expert));
    pool.parallel_for(config.n_expert, [&](int64_t e) {
        const int64_t n = block_rows * block_cols;
        std::vector<float> block(static_cast<size_t>(n));
        convert_to_f32(t.dtype, t.data + e * n * element, n, block.data());
        if (transposed) {
            std::vector<float> rows(block.size());
            transpose_blocks(block.data(), 1, block_rows, block_cols, rows.data());
            block.swap(rows);
        }
        failures[e] = quantize_int4_rows(block.data(), rows_per_expert, shape.cols,
                                         config.int4_group_size,
                                         q.codes.data() + e * rows_per_expert * shape.cols / 2,
                                         scales.data() + e * rows_per_expert * groups_per_row);
    });
    for (int64_t e = 0; e < config.n_expert; ++e) {
        if (!failures[e].ok()) {
            return failures[e].with_context("tensor '" + t.name + "', expert " +
                                            std::to_string(e));
        }
    }
    q.scales = bytes_of(scales);
    return q;
}

// The scale tensors of either format (the only F32 and F16 entries the layouts fix).
bool is_scale(const ExpectedTensor& expected) {
    return expected.dtype == DType::kF32 || expected.dtype == DType::kF16;
}

// The bytes a layout entry takes in the output.
int64_t output_bytes(const ExpectedTensor& expected, const Checkpoint& source) {
    int64_t elements = 1;
    for (const int64_t n : expected.shape) {
        elements *= n;
    }
    if (expected.dtype) {
        return elements * dtype_size(*expected.dtype);
    }
    return checked_tensor(source, expected.name).n_bytes;
}

Status copy_side_files(const std::string& model_dir, const std::string& out_dir) {
    std::error_code ec;
    for (const fs::directory_entry& entry : fs::directory_iterator(model_dir, ec)) {
        const std::string name = entry.path().filename().string();
        const bool checkpoint_file = entry.path().extension() == ".safetensors" ||
                                     name == "model.safetensors.index.json" ||
                                     name == "config.json";
        if (checkpoint_file || !entry.is_regular_file()) {
            continue;
        }
        fs::copy_file(entry.path(), fs::path(out_dir) / name, ec);
        if (ec) {
            return io_error("copy '" + entry.path().string() + "': " + ec.message());
        }
    }
    if (ec) {
        return io_error("list '" + model_dir + "': " + ec.message());
    }
    return Status::ok_status();
}

Status write_config(const std::string& model_dir, const std::string& out_dir,
                    const ModelConfig& quantized) {
    std::ifstream in(fs::path(model_dir) / "config.json");
    std::stringstream text;
    text << in.rdbuf();
    // Keep every field the source had (Hugging Face's extras included); add ours.
    json root = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
    if (root.is_discarded() || !root.is_object()) {
        return invalid_argument("config.json of '" + model_dir + "' is not a JSON object");
    }
    root["quantization_config"] = model_config_to_json(quantized)["quantization_config"];
    const fs::path path = fs::path(out_dir) / "config.json";
    std::ofstream out(path, std::ios::trunc);
    out << root.dump(2) << "\n";
    out.flush();
    if (!out) {
        return io_error("writing '" + path.string() + "' failed");
    }
    return Status::ok_status();
}

}  // namespace

Result<QuantizeCheckpointSummary> write_quantized_checkpoint(
    const std::string& model_dir, const std::string& out_dir,
    const QuantizeCheckpointOptions& options) {
    if (options.max_shard_bytes <= 0) {
        return invalid_argument("max shard bytes must be positive, found " +
                                std::to_string(options.max_shard_bytes));
    }
    SLUICE_CHECK(options.format != CheckpointQuantization::kNone, "a quantised format");
    SLUICE_ASSIGN_OR_RETURN(ModelConfig config, load_model_config(model_dir));
    if (config.quantization != CheckpointQuantization::kNone) {
        return invalid_argument("'" + model_dir + "' is already quantised (quantization_config)");
    }
    ModelConfig quantized_config = config;
    quantized_config.quantization = options.format;
    if (options.format == CheckpointQuantization::kInt4Grouped) {
        SLUICE_RETURN_IF_ERROR(check_int4_group_size(options.int4_group_size, config,
                                                     "quantization_config.group_size"));
        quantized_config.int4_group_size = options.int4_group_size;
    }
    SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> source, Checkpoint::open(model_dir));
    SLUICE_RETURN_IF_ERROR(check_dbrx_checkpoint(*source, config));
    std::error_code ec;
    if (fs::exists(out_dir, ec)) {
        return invalid_argument("output folder '" + out_dir + "' exists; choose a new one");
    }
    const std::string partial = out_dir + ".partial";
    fs::remove_all(partial, ec);  // a previous attempt that did not finish
    if (!fs::create_directories(partial, ec) || ec) {
        return io_error("cannot create '" + partial + "': " + ec.message());
    }

    const std::vector<ExpectedTensor> layout = dbrx_tensor_layout(quantized_config);

    // Shards in layout order, each at most max_shard_bytes unless one tensor is larger.
    std::vector<std::vector<const ExpectedTensor*>> shards(1);
    int64_t shard_bytes = 0;
    QuantizeCheckpointSummary summary;
    for (const ExpectedTensor& expected : layout) {
        const int64_t bytes = output_bytes(expected, *source);
        // A scale stays in its matrix's shard (the layout puts it right after the matrix).
        if (!is_scale(expected) && !shards.back().empty() &&
            shard_bytes + bytes > options.max_shard_bytes) {
            shards.emplace_back();
            shard_bytes = 0;
        }
        shards.back().push_back(&expected);
        shard_bytes += bytes;
        summary.bytes_out += bytes;
    }
    summary.shards = static_cast<int64_t>(shards.size());

    // Matrices are quantised on every core, an expert or 1,024 rows per task.
    cpu::ThreadPool pool(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    std::map<std::string, std::string> weight_map;
    for (size_t i = 0; i < shards.size(); ++i) {
        const std::string file = shards.size() == 1 ? std::string("model.safetensors")
                                                    : safetensors_shard_name(i, shards.size());
        // Quantised matrices of this shard live until it is written; copied ones are borrowed.
        std::map<std::string, QuantizedMatrix> quantized;
        std::vector<TensorToWrite> tensors;
        for (const ExpectedTensor* expected : shards[i]) {
            weight_map[expected->name] = file;
            if (is_scale(*expected)) {
                // Written from its matrix's entry, which precedes it in the same shard.
                const std::string matrix =
                    expected->name.substr(0, expected->name.size() - std::string("_scale").size());
                const auto it = quantized.find(matrix);
                SLUICE_CHECK(it != quantized.end(), "a scale tensor precedes its matrix");
                tensors.push_back(
                    {expected->name, *expected->dtype, expected->shape, it->second.scales});
                continue;
            }
            const TensorView& t = checked_tensor(*source, expected->name);
            summary.bytes_in += t.n_bytes;
            if (!expected->dtype) {
                tensors.push_back(
                    {t.name, t.dtype, t.shape, {t.data, static_cast<size_t>(t.n_bytes)}});
                ++summary.tensors_copied;
                continue;
            }
            QuantizedMatrix& q = quantized[t.name];
            if (*expected->dtype == DType::kF8E4M3) {
                q = quantize_fp8_matrix(t, config, pool);
            } else {
                SLUICE_ASSIGN_OR_RETURN(q, quantize_int4_matrix(t, quantized_config, pool));
            }
            tensors.push_back({t.name, *expected->dtype, expected->shape, q.codes});
            ++summary.tensors_quantized;
        }
        SLUICE_RETURN_IF_ERROR(write_safetensors((fs::path(partial) / file).string(), tensors));
    }
    if (shards.size() > 1) {
        SLUICE_RETURN_IF_ERROR(write_safetensors_index(partial, weight_map, summary.bytes_out));
    }
    SLUICE_RETURN_IF_ERROR(write_config(model_dir, partial, quantized_config));
    SLUICE_RETURN_IF_ERROR(copy_side_files(model_dir, partial));
    fs::rename(partial, out_dir, ec);
    if (ec) {
        return io_error("rename '" + partial + "' to '" + out_dir + "': " + ec.message());
    }
    return summary;
}

Result<QuantizeCheckpointSummary> write_fp8_checkpoint(const std::string& model_dir,
                                                       const std::string& out_dir,
                                                       const QuantizeCheckpointOptions& options) {
    QuantizeCheckpointOptions fp8 = options;
    fp8.format = CheckpointQuantization::kFp8PerChannel;
    return write_quantized_checkpoint(model_dir, out_dir, fp8);
}

std::unique_ptr<Checkpoint> dequantize_fp8_checkpoint(std::unique_ptr<Checkpoint> checkpoint,
                                                      const ModelConfig& config) {
    SLUICE_CHECK(config.quantization == CheckpointQuantization::kFp8PerChannel,
                 "dequantize_fp8_checkpoint needs a quantised config");
    std::vector<Checkpoint::OwnedTensor> added;
    std::vector<std::string> removed;
    for (const ExpectedTensor& expected : dbrx_tensor_layout(config)) {
        if (expected.dtype != DType::kF8E4M3) {
            continue;
        }
        const TensorView& t = checked_tensor(*checkpoint, expected.name);
        const TensorView& s = checked_tensor(*checkpoint, fp8_scale_tensor_name(t.name));
        const int64_t rows = t.shape[0];
        const int64_t cols = t.shape[1];
        std::vector<float> scales(static_cast<size_t>(s.n_elements()));
        convert_to_f32(DType::kF32, s.data, s.n_elements(), scales.data());
        std::vector<float> values(static_cast<size_t>(rows * cols));
        if (fp8_column_scales(t.name)) {
            const int64_t block_rows = config.n_ff;
            for (int64_t e = 0; e < rows / block_rows; ++e) {
                dequantize_fp8_columns(t.data + e * block_rows * cols, scales.data() + e * cols,
                                       block_rows, cols, values.data() + e * block_rows * cols);
            }
        } else {
            dequantize_fp8_rows(t.data, scales.data(), rows, cols, values.data());
        }
        Checkpoint::OwnedTensor plain{t.name, DType::kBF16, t.shape, {}};
        plain.bytes.resize(values.size() * 2);  // operator new's alignment suits uint16_t
        convert_f32_to_bf16(values, reinterpret_cast<uint16_t*>(plain.bytes.data()));
        added.push_back(std::move(plain));
        removed.push_back(s.name);
    }
    return Checkpoint::derive(std::move(checkpoint), std::move(added), removed);
}

std::unique_ptr<Checkpoint> dequantize_int4_checkpoint(std::unique_ptr<Checkpoint> checkpoint,
                                                       const ModelConfig& config) {
    SLUICE_CHECK(config.quantization == CheckpointQuantization::kInt4Grouped,
                 "dequantize_int4_checkpoint needs an int4 config");
    std::vector<Checkpoint::OwnedTensor> added;
    std::vector<std::string> removed;
    for (const ExpectedTensor& expected : dbrx_tensor_layout(config)) {
        if (expected.dtype != DType::kU8) {
            continue;
        }
        const TensorView& t = checked_tensor(*checkpoint, expected.name);
        const TensorView& s = checked_tensor(*checkpoint, int4_scale_tensor_name(t.name));
        std::vector<float> values = dequantize_int4_tensor(t, s, config);
        Checkpoint::OwnedTensor plain{t.name, DType::kBF16,
                                      {config.n_expert * config.n_ff, config.d_model}, {}};
        plain.bytes.resize(values.size() * 2);  // operator new's alignment suits uint16_t
        convert_f32_to_bf16(values, reinterpret_cast<uint16_t*>(plain.bytes.data()));
        added.push_back(std::move(plain));
        removed.push_back(s.name);
    }
    return Checkpoint::derive(std::move(checkpoint), std::move(added), removed);
}

std::vector<float> dequantize_int4_tensor(const TensorView& codes, const TensorView& scales,
                                          const ModelConfig& config) {
    const Int4MatrixShape shape = int4_matrix_shape(codes.name, config);
    std::vector<uint16_t> scale_bits(static_cast<size_t>(scales.n_elements()));
    std::memcpy(scale_bits.data(), scales.data, scale_bits.size() * 2);
    std::vector<float> values(static_cast<size_t>(shape.rows * shape.cols));
    dequantize_int4_rows(codes.data, scale_bits.data(), shape.rows, shape.cols,
                         config.int4_group_size, values.data());
    if (!int4_transposed(codes.name)) {
        return values;
    }
    // Back from [n_expert * d_model, n_ff] to the checkpoint's [n_expert * n_ff, d_model].
    std::vector<float> blocks(values.size());
    transpose_blocks(values.data(), config.n_expert, config.d_model, config.n_ff, blocks.data());
    return blocks;
}

std::unique_ptr<Checkpoint> dequantize_checkpoint(std::unique_ptr<Checkpoint> checkpoint,
                                                  const ModelConfig& config) {
    switch (config.quantization) {
        case CheckpointQuantization::kNone:
            return checkpoint;
        case CheckpointQuantization::kFp8PerChannel:
            return dequantize_fp8_checkpoint(std::move(checkpoint), config);
        case CheckpointQuantization::kInt4Grouped:
            return dequantize_int4_checkpoint(std::move(checkpoint), config);
    }
    return checkpoint;
}

}  // namespace sluice::inference
