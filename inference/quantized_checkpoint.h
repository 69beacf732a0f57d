#pragma once
// Quantised checkpoints: writing a DBRX checkpoint's weights as fp8 E4M3 with per-channel scales
// (the format of inference/fp8_weights.h) or its experts as int4 with fp16 group scales
// (inference/int4_weights.h), so that a model is quantised once and reloads without
// re-quantising, and presenting such a checkpoint to a backend that computes in bf16.
//
// Thread safety: free functions; concurrent writes must use different output folders.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "inference/model_config.h"
#include "inference/safetensors.h"

namespace sluice::inference {

struct QuantizeCheckpointOptions {
    // Shards of at most this many bytes of tensor data (a larger tensor gets a shard of its own);
    // a model that fits in one shard is written as a single model.safetensors.
    int64_t max_shard_bytes = int64_t{5} << 30;
    // kFp8PerChannel or kInt4Grouped.
    CheckpointQuantization format = CheckpointQuantization::kFp8PerChannel;
    // int4 only: values per scale along the reduction dimension (check_int4_group_size).
    int64_t int4_group_size = 128;
};

// What was written.
struct QuantizeCheckpointSummary {
    int64_t tensors_quantized = 0;
    int64_t tensors_copied = 0;
    int64_t bytes_in = 0;   // tensor data read
    int64_t bytes_out = 0;  // tensor data written, scales included
    int64_t shards = 0;
};

// Quantises the DBRX checkpoint in `model_dir` to options.format into the new folder `out_dir`:
// the
// quantised tensors and the others unchanged (sharded as options say), config.json with
// `quantization_config`, and every other regular file of `model_dir` (tokenizer, generation
// config) copied. Memory use is one shard plus, per thread, one expert (two for int4's w2,
// transposed on the way) or 1,024 rows in f32, whatever the model's size; matrices are quantised
// on every core.
// The folder is built as `<out_dir>.partial` and renamed when complete, so `out_dir` never holds a
// half-written checkpoint.
// Errors: those of load_model_config, Checkpoint::open and check_dbrx_checkpoint;
// kInvalidArgument when the checkpoint is already quantised, `out_dir` exists, the int4 group
// size does not fit the model (naming quantization_config.group_size) or an expert holds a value
// int4 cannot take (non-finite, or past an fp16 scale's range; naming tensor and expert);
// kIoError when a file cannot be written.
Result<QuantizeCheckpointSummary> write_quantized_checkpoint(
    const std::string& model_dir, const std::string& out_dir,
    const QuantizeCheckpointOptions& options);

// write_quantized_checkpoint with format kFp8PerChannel whatever options say.
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

// The same for an int4 checkpoint: each expert matrix as q · scale rounded to bf16, in the
// checkpoint's [n_expert * n_ff, d_model] shape (w2 transposed back), scales removed.
std::unique_ptr<Checkpoint> dequantize_int4_checkpoint(std::unique_ptr<Checkpoint> checkpoint,
                                                       const ModelConfig& config);

// One int4 expert tensor (codes and their scales, as checked) as fp32 q · scale in the
// checkpoint's plain [n_expert * n_ff, d_model] layout.
std::vector<float> dequantize_int4_tensor(const TensorView& codes, const TensorView& scales,
                                          const ModelConfig& config);

// dequantize_fp8_checkpoint or dequantize_int4_checkpoint as `config` says; an unquantised
// checkpoint is returned as it is.
std::unique_ptr<Checkpoint> dequantize_checkpoint(std::unique_ptr<Checkpoint> checkpoint,
                                                  const ModelConfig& config);

}  // namespace sluice::inference
