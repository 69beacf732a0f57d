#pragma once
// Writing safetensors checkpoints: one file, or shards with a `model.safetensors.index.json`
// as Hugging Face's `save_pretrained(max_shard_size=...)` lays them out. Used by the tiny-model
// generator and by tests that build checkpoints.
//
// The header is padded with spaces to a multiple of 8 bytes so that tensor data of every dtype
// starts aligned, as the reference writer does. Files are written to `<path>.tmp` and renamed,
// so a crash leaves no half-written checkpoint under the final name.
//
// Thread safety: free functions; concurrent calls must use different paths.

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "inference/dtype.h"

namespace sluice::inference {

// A tensor to write; the bytes are borrowed for the duration of the call.
struct TensorToWrite {
    std::string name;
    DType dtype = DType::kF32;
    std::vector<int64_t> shape;
    std::span<const uint8_t> bytes;  // exactly n_elements * dtype_size bytes
};

// Writes one safetensors file. kInvalidArgument when a tensor's byte count disagrees with its
// shape or a name repeats; kIoError when the file cannot be written.
Status write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors);

// Writes `tensors` to `dir` as shards `model-0000i-of-0000n.safetensors` of at most
// `max_shard_bytes` of data each (a larger tensor gets a shard of its own) plus
// `model.safetensors.index.json`.
Status write_safetensors_sharded(const std::string& dir, const std::vector<TensorToWrite>& tensors,
                                 int64_t max_shard_bytes);

// The pieces of a sharded checkpoint for writers that produce one shard at a time (a checkpoint
// larger than memory): shard i (from 0) of n is named `model-0000{i+1}-of-0000n.safetensors`;
// the index maps every tensor name to its shard's file name. The index is written last and
// atomically (a temporary file renamed), so a folder without it is not a checkpoint yet.
std::string safetensors_shard_name(size_t index, size_t count);
Status write_safetensors_index(const std::string& dir,
                               const std::map<std::string, std::string>& weight_map,
                               int64_t total_bytes);

}  // namespace sluice::inference
