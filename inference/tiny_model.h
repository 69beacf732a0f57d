#pragma once
// Random DBRX checkpoints of the real architecture and vocabulary (100,352 tokens), written in
// Hugging Face layout (config.json + model.safetensors), for tests, CPU benchmarks and the
// embedded default of a machine without a real checkpoint. Their answers mean nothing; their
// shapes, routing and cost are those of DBRX.
//
// Presets:
//   tiny  — d_model 256, 2 layers, 16 experts top-4: ~64M parameters, loads in milliseconds.
//   small — d_model 1024, 9 layers, 16 experts top-4: ~1.0B parameters total, ~0.32B active.
//
// Weights are uniform with per-tensor scales chosen so that activations keep unit scale through
// the layers, router logits spread by about 1.5 (so tokens use many distinct top-4 expert sets)
// and logits spread by about 2. The same seed writes the same bytes.
//
// Tokenizer files are not written here: the tokenizer module provides the writer, passed in as
// `write_tokenizer` (null: the folder holds no tokenizer and prompts are token ids).
//
// Thread safety: free functions.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "common/result.h"
#include "inference/dtype.h"
#include "inference/model_config.h"

namespace sluice::inference {

enum class TinyPreset { kTiny, kSmall };

// "tiny" | "small"; nullopt otherwise.
std::optional<TinyPreset> parse_tiny_preset(const std::string& name);

ModelConfig tiny_model_config(TinyPreset preset);

struct TinyModelOptions {
    TinyPreset preset = TinyPreset::kTiny;
    uint64_t seed = 0;
    DType dtype = DType::kBF16;  // kF32 or kBF16
    // Writes tokenizer files into the folder after the weights; null writes none.
    std::function<Status(const std::string& dir)> write_tokenizer = nullptr;
};

struct TinyModelSummary {
    ModelConfig config;
    int64_t bytes_written = 0;
    bool tokenizer_written = false;
};

// Creates `dir` if needed and writes config.json and model.safetensors into it.
// kInvalidArgument for a dtype other than F32/BF16; kIoError when writing fails.
Result<TinyModelSummary> write_tiny_model(const std::string& dir, const TinyModelOptions& options);

}  // namespace sluice::inference
