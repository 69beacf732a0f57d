#pragma once
// Quantised checkpoints: writing a DBRX checkpoint's weights as fp8 E4M3 with per-channel scales
// (the format of inference/fp8_weights.h) so that a model is quantised once and reloads without
// re-quantising, and presenting such a checkpoint to a backend that computes in bf16.
//
// Thread safety: free functions; concurrent writes must use different output folders.

#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"
#include "inference/model_config.h"
#include "inference/safetensors.h"

namespace sluice::inference {

struct QuantizeCheckpointOptions {
    // Shards of at most this many bytes of tensor data (a larger tensor gets a shard of its own);
    // a model that fits in one shard is written as a single model.safetensors.
    int64_t max_shard_bytes = int64_t{5} << 30;
};

// What was written.
struct QuantizeCheckpointSummary {
    int64_t tensors_quantized = 0;
    int64_t tensors_copied = 0;
    int64_t bytes_in = 0;   // tensor data read
    int64_t bytes_out = 0;  // tensor data written, scales included
    int64_t shards = 0;
};

// Quantises the DBRX checkpoint in `model_dir` to fp8 into the new folder `out_dir`: the
// quantised tensors and the others unchanged (sharded as options say), config.json with
// `quantization_config`, and every other regular file of `model_dir` (tokenizer, generation
// config) copied. Memory use is one shard plus, per thread, one expert or 1,024 rows in f32,
// whatever the model's size; matrices are quantised on every core.
// The folder is built as `<out_dir>.partial` and renamed when complete, so `out_dir` never holds a
// half-written checkpoint.
// Errors: those of load_model_config, Checkpoint::open and check_dbrx_checkpoint;
// kInvalidArgument when the checkpoint is already quantised or `out_dir` exists;
// kIoError when a file cannot be written.
Result<QuantizeCheckpointSummary> write_fp8_checkpoint(
    const std::string& model_dir, const std::string& out_dir,
    const QuantizeCheckpointOptions& options = {});

// The checkpoint a quantised one stands for: each fp8 matrix with its scales applied (code ·
// scale, rounded to bf16) and the scale tensors removed, so a backend that computes in bf16 or
// f32 (the CPU backend) loads it as a plain checkpoint. `config` is the quantised one; the
// caller then checks the result against `config` with `quantization` kNone. Other tensors keep
// borrowing the mapped files.
std::unique_ptr<Checkpoint> dequantize_fp8_checkpoint(std::unique_ptr<Checkpoint> checkpoint,
                                                      const ModelConfig& config);

}  // namespace sluice::inference
