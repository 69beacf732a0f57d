#include "inference/quantized_checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <span>
#include <sstream>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/check.h"
#include "inference/cpu/thread_pool.h"
#include "inference/dbrx_layout.h"
#include "inference/dtype.h"
#include "inference/fp8_weights.h"
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

std::span<const uint8_t> bytes_of(const std::vector<float>& values) {
    return {reinterpret_cast<const uint8_t*>(values.data()), values.size() * sizeof(float)};
}

// A quantised matrix: its codes and its scales, as they will be written.
struct QuantizedMatrix {
    std::vector<uint8_t> codes;
    std::vector<float> scales;
};

QuantizedMatrix quantize_matrix(const TensorView& t, const ModelConfig& config,
                                cpu::ThreadPool& pool) {
    const int64_t rows = t.shape[0];
    const int64_t cols = t.shape[1];
    const int64_t element = dtype_size(t.dtype);
    QuantizedMatrix q;
    q.codes.resize(static_cast<size_t>(rows * cols));
    if (fp8_column_scales(t.name)) {
        // One expert's [n_ff, d_model] block per item, scales per column of the block.
        const int64_t block_rows = config.n_ff;
        q.scales.resize(static_cast<size_t>(rows / block_rows * cols));
        pool.parallel_for(rows / block_rows, [&](int64_t e) {
            std::vector<float> block(static_cast<size_t>(block_rows * cols));
            convert_to_f32(t.dtype, t.data + e * block_rows * cols * element, block_rows * cols,
                           block.data());
            quantize_fp8_columns(block.data(), block_rows, cols,
                                 q.codes.data() + e * block_rows * cols,
                                 q.scales.data() + e * cols);
        });
        return q;
    }
    q.scales.resize(static_cast<size_t>(rows));
    pool.parallel_for((rows + kRowsPerPass - 1) / kRowsPerPass, [&](int64_t pass) {
        const int64_t first = pass * kRowsPerPass;
        const int64_t n = std::min(kRowsPerPass, rows - first);
        std::vector<float> part(static_cast<size_t>(n * cols));
        convert_to_f32(t.dtype, t.data + first * cols * element, n * cols, part.data());
        quantize_fp8_rows(part.data(), n, cols, q.codes.data() + first * cols,
                          q.scales.data() + first);
    });
    return q;
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

Status write_config(const std::string& model_dir, const std::string& out_dir) {
    std::ifstream in(fs::path(model_dir) / "config.json");
    std::stringstream text;
    text << in.rdbuf();
    // Keep every field the source had (Hugging Face's extras included); add ours.
    json root = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
    if (root.is_discarded() || !root.is_object()) {
        return invalid_argument("config.json of '" + model_dir + "' is not a JSON object");
    }
    ModelConfig marker;
    marker.quantization = CheckpointQuantization::kFp8PerChannel;
    root["quantization_config"] = model_config_to_json(marker)["quantization_config"];
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

Result<QuantizeCheckpointSummary> write_fp8_checkpoint(const std::string& model_dir,
                                                       const std::string& out_dir,
                                                       const QuantizeCheckpointOptions& options) {
    if (options.max_shard_bytes <= 0) {
        return invalid_argument("max shard bytes must be positive, found " +
                                std::to_string(options.max_shard_bytes));
    }
    SLUICE_ASSIGN_OR_RETURN(ModelConfig config, load_model_config(model_dir));
    if (config.quantization != CheckpointQuantization::kNone) {
        return invalid_argument("'" + model_dir + "' is already quantised (quantization_config)");
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

    ModelConfig quantized_config = config;
    quantized_config.quantization = CheckpointQuantization::kFp8PerChannel;
    const std::vector<ExpectedTensor> layout = dbrx_tensor_layout(quantized_config);

    // Shards in layout order, each at most max_shard_bytes unless one tensor is larger.
    std::vector<std::vector<const ExpectedTensor*>> shards(1);
    int64_t shard_bytes = 0;
    QuantizeCheckpointSummary summary;
    for (const ExpectedTensor& expected : layout) {
        const int64_t bytes = output_bytes(expected, *source);
        // A scale stays in its matrix's shard (the layout puts it right after the matrix).
        const bool scale = expected.dtype == DType::kF32;
        if (!scale && !shards.back().empty() && shard_bytes + bytes > options.max_shard_bytes) {
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
            if (expected->dtype == DType::kF32) {
                // A scale (the only entries the layout gives F32): written from its matrix's
                // entry, which precedes it in the same shard.
                const std::string matrix =
                    expected->name.substr(0, expected->name.size() - std::string("_scale").size());
                const auto it = quantized.find(matrix);
                SLUICE_CHECK(it != quantized.end(), "a scale tensor precedes its matrix");
                tensors.push_back(
                    {expected->name, DType::kF32, expected->shape, bytes_of(it->second.scales)});
                continue;
            }
            const TensorView& t = checked_tensor(*source, expected->name);
            summary.bytes_in += t.n_bytes;
            if (expected->dtype == DType::kF8E4M3) {
                QuantizedMatrix& q = quantized[t.name] = quantize_matrix(t, config, pool);
                tensors.push_back({t.name, DType::kF8E4M3, t.shape, q.codes});
                ++summary.tensors_quantized;
            } else {
                tensors.push_back(
                    {t.name, t.dtype, t.shape, {t.data, static_cast<size_t>(t.n_bytes)}});
                ++summary.tensors_copied;
            }
        }
        SLUICE_RETURN_IF_ERROR(write_safetensors((fs::path(partial) / file).string(), tensors));
    }
    if (shards.size() > 1) {
        SLUICE_RETURN_IF_ERROR(write_safetensors_index(partial, weight_map, summary.bytes_out));
    }
    SLUICE_RETURN_IF_ERROR(write_config(model_dir, partial));
    SLUICE_RETURN_IF_ERROR(copy_side_files(model_dir, partial));
    fs::rename(partial, out_dir, ec);
    if (ec) {
        return io_error("rename '" + partial + "' to '" + out_dir + "': " + ec.message());
    }
    return summary;
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

}  // namespace sluice::inference
