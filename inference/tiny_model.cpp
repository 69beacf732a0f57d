#include "inference/tiny_model.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "inference/dbrx_layout.h"
#include "inference/safetensors_writer.h"

namespace sluice::inference {

namespace {

// SplitMix64: a tiny, fast generator whose streams are independent per (seed, tensor, chunk),
// so tensors can be filled in parallel and still be reproducible.
uint64_t splitmix64(uint64_t& state) {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t hash_name(const std::string& name) {
    uint64_t hash = 1469598103934665603ull;  // FNV-1a
    for (char c : name) {
        hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    }
    return hash;
}

// Standard deviation of each tensor's entries (see the header for the targets).
double init_std(const ModelConfig& config, const std::string& name) {
    const double d = static_cast<double>(config.d_model);
    if (name.find("router") != std::string::npos) {
        return 1.5 / std::sqrt(d);  // LayerNorm'd inputs have unit scale: logits std ≈ 1.5
    }
    if (name.find("mlp.w2") != std::string::npos) {
        return 1.0 / std::sqrt(static_cast<double>(config.n_ff));
    }
    if (name == "lm_head.weight") {
        return 2.0 / std::sqrt(d);
    }
    if (name == "transformer.wte.weight") {
        return 1.0;
    }
    return 1.0 / std::sqrt(d);
}

// Fills `out` with uniform values of the given std (or 1 ± 0.1 for norm weights).
void fill(const ModelConfig& config, const std::string& name, uint64_t seed, int64_t count,
          float* out) {
    const bool is_norm = name.find("norm") != std::string::npos;
    const double half_width = is_norm ? 0.1 : init_std(config, name) * std::sqrt(3.0);
    const double centre = is_norm ? 1.0 : 0.0;
    constexpr int64_t kChunk = 1 << 20;
    const int64_t n_chunks = (count + kChunk - 1) / kChunk;
    const unsigned n_threads = std::max(1u, std::thread::hardware_concurrency());
    std::vector<std::jthread> workers;
    for (unsigned w = 0; w < n_threads; ++w) {
        workers.emplace_back([&, w] {
            for (int64_t c = w; c < n_chunks; c += n_threads) {
                uint64_t state = seed ^ hash_name(name) ^ (static_cast<uint64_t>(c) * 0x2545f491ull);
                const int64_t end = std::min(count, (c + 1) * kChunk);
                for (int64_t i = c * kChunk; i < end; ++i) {
                    const double u = static_cast<double>(splitmix64(state) >> 11) * 0x1.0p-53;
                    out[i] = static_cast<float>(centre + (2.0 * u - 1.0) * half_width);
                }
            }
        });
    }
}

}  // namespace

std::optional<TinyPreset> parse_tiny_preset(const std::string& name) {
    if (name == "tiny") {
        return TinyPreset::kTiny;
    }
    if (name == "small") {
        return TinyPreset::kSmall;
    }
    return std::nullopt;
}

ModelConfig tiny_model_config(TinyPreset preset) {
    ModelConfig config;
    config.n_vocab = 100352;
    config.max_seq_len = 4096;
    config.n_expert = 16;
    config.n_expert_used = 4;
    config.clip_qkv = 8.0f;
    config.rope_theta = 500000.0;
    config.expert_weights_norm_p = 1.0;
    if (preset == TinyPreset::kTiny) {
        config.d_model = 256;
        config.n_head = 8;
        config.n_head_kv = 2;
        config.n_layer = 2;
        config.n_ff = 512;
    } else {
        config.d_model = 1024;
        config.n_head = 16;
        config.n_head_kv = 4;
        config.n_layer = 9;
        config.n_ff = 1792;
    }
    return config;
}

Result<TinyModelSummary> write_tiny_model(const std::string& dir, const TinyModelOptions& options) {
    if (options.dtype != DType::kF32 && options.dtype != DType::kBF16) {
        return invalid_argument("tiny model dtype must be F32 or BF16, found " +
                                std::string(dtype_name(options.dtype)));
    }
    TinyModelSummary summary;
    summary.config = tiny_model_config(options.preset);
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
        return io_error("cannot create '" + dir + "': " + ec.message());
    }

    const auto layout = dbrx_tensor_layout(summary.config);
    std::vector<std::vector<uint8_t>> storage;
    std::vector<TensorToWrite> tensors;
    std::vector<float> values;
    for (const ExpectedTensor& expected : layout) {
        int64_t count = 1;
        for (int64_t dim : expected.shape) {
            count *= dim;
        }
        values.resize(static_cast<size_t>(count));
        fill(summary.config, expected.name, options.seed, count, values.data());
        std::vector<uint8_t> bytes(static_cast<size_t>(count * dtype_size(options.dtype)));
        if (options.dtype == DType::kF32) {
            std::memcpy(bytes.data(), values.data(), bytes.size());
        } else {
            std::vector<uint16_t> bf16(values.size());
            convert_f32_to_bf16(values, bf16.data());
            std::memcpy(bytes.data(), bf16.data(), bytes.size());
        }
        summary.bytes_written += static_cast<int64_t>(bytes.size());
        storage.push_back(std::move(bytes));
        tensors.push_back({expected.name, options.dtype, expected.shape, storage.back()});
    }
    SLUICE_RETURN_IF_ERROR(
        write_safetensors((std::filesystem::path(dir) / "model.safetensors").string(), tensors));

    const auto config_path = std::filesystem::path(dir) / "config.json";
    nlohmann::json config = model_config_to_json(summary.config);
    config["torch_dtype"] = options.dtype == DType::kF32 ? "float32" : "bfloat16";
    std::ofstream out(config_path, std::ios::trunc);
    out << config.dump(2) << "\n";
    out.flush();
    if (!out) {
        return io_error("writing '" + config_path.string() + "' failed");
    }
    if (options.write_tokenizer) {
        SLUICE_RETURN_IF_ERROR(options.write_tokenizer(dir));
        summary.tokenizer_written = true;
    }
    return summary;
}

}  // namespace sluice::inference
