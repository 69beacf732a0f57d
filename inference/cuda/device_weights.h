#pragma once
// DBRX's weights on the device: which format each tensor takes, how many bytes that makes (for
// the memory plan, before any allocation), and the upload.
//
// Formats follow the CPU backend's matrix_format_for: kAsStored keeps bf16 (and widens fp8 to
// bf16), keeps f32 and widens f16 to f32; kF32 and kBF16 force one format. kF8E4M3 quantises
// at load on the device (quantize.cuh): Wqkv, out_proj, w1, v1 and lm_head with a scale per row,
// w2 with a scale per expert and column (its output channels); the embedding (a lookup) and the
// router (the most sensitive choice in the model) stay bf16. Norm weights are always f32. w2
// stays in the checkpoint's [n_expert * n_ff, d_model] layout; the kernel applies it without a
// transpose.
//
// kInt4 quantises the experts (w1, v1, w2) at load on the device (quantize_int4), w2 transposed
// per expert, fp16 scales per config.int4_group_size values; every other tensor stays as stored.
// An int4 checkpoint's experts are uploaded as they are (kAsStored or kInt4) or widened on the
// host (kBF16, kF32). An fp8 checkpoint cannot become int4 nor an int4 one fp8 (the backend
// refuses both).
//
// make_random_weights builds the same structure from hashed random values made on the device
// (uniform, standard deviation 0.02, norms 1), for benchmarks at DBRX's real sizes where no
// checkpoint is at hand.
//
// Thread safety: owned by the backend's thread.

#include <cstdint>
#include <vector>

#include "common/result.h"
#include "inference/backend.h"
#include "inference/cuda/cuda_check.h"
#include "inference/cuda/dense.cuh"
#include "inference/dbrx_shard.h"
#include "inference/model_config.h"
#include "inference/safetensors.h"

namespace sluice::inference::cuda {

struct DeviceMatrix {
    DeviceBuffer buffer;
    DeviceDType type = DeviceDType::kF32;
    int64_t rows = 0;
    int64_t cols = 0;
    // fp8: [rows] f32, or [n_expert * cols] for w2. int4: fp16 bits [rows, cols / group_size].
    DeviceBuffer scales;
    // int4 only: values per scale. An int4 matrix's rows are its output channels and cols its
    // reduction length (w2 transposed: [n_expert * d_model, n_ff]); buffer holds rows · cols / 2
    // bytes.
    int64_t group_size = 0;

    const float* scale_data() const { return scales.as<float>(); }
    DenseWeight view() const { return {buffer.get(), type, rows, cols, scale_data()}; }
    int64_t bytes() const { return buffer.bytes() + scales.bytes(); }
};

struct DeviceLayer {
    DeviceBuffer norm_1;    // [d_model] f32
    DeviceBuffer norm_2;    // [d_model] f32
    DeviceMatrix wqkv;      // [n_qkv, d_model]
    DeviceMatrix out_proj;  // [d_model, d_model]
    DeviceMatrix router;    // [n_expert, d_model]
    DeviceMatrix w1;        // [n_expert * n_ff, d_model]  gate
    DeviceMatrix v1;        // [n_expert * n_ff, d_model]  up
    DeviceMatrix w2;        // [n_expert * n_ff, d_model]  down, applied as h · w2_e
};

struct DeviceWeights {
    DeviceMatrix embedding;  // [n_vocab, d_model]
    std::vector<DeviceLayer> layers;
    DeviceBuffer norm_f;   // [d_model] f32
    DeviceMatrix lm_head;  // [n_vocab, d_model]

    int64_t bytes() const;
    // Dense matrices, one embedding row, lm_head and n_expert_used experts per layer.
    int64_t active_bytes(const ModelConfig& config) const;
};

DeviceDType device_dtype_for(WeightFormat requested, DType stored);

// Bytes the weights of a checked checkpoint take on the device in `format`.
int64_t device_weight_bytes(const Checkpoint& checkpoint, const ModelConfig& config,
                            WeightFormat format);

// Uploads a checkpoint already checked by check_dbrx_checkpoint. kResourceExhausted when device
// memory runs out.
Result<DeviceWeights> upload_weights(const Checkpoint& checkpoint, const ModelConfig& config,
                                     WeightFormat format);

// A rank of a parallel plan (dbrx_shard.h) uploads only its shard: tensor_slice's rows and
// columns of each matrix (the experts of its group only, under the expert plan and the grid),
// copied from the checkpoint's mapping to the device a run of rows at a time (bf16 and f32 as
// stored; other types converted a bounded chunk of rows at a time), so no tensor is ever held whole
// in host memory. The embedding, norms and router are uploaded whole. Formats as above, with these
// limits: int4 (quantised at load or stored) needs each rank's ffn slice on group boundaries
// (check_shard_weights); an fp8 or int4 checkpoint is split as stored only, not widened to a float
// format (kNotSupported naming the tensor); fp8 quantised at load takes out_proj's per-row scales
// over the shard's columns and w2's per-column scales over the shard's ffn rows, so those two
// differ from one rank's by their finer scales. A whole shard (DbrxShard::whole) takes the
// single-rank path above.
bool is_whole(const DbrxShard& shard, const ModelConfig& config);

// check_int4_shard's error for int4 weights whose ffn slice cuts a group.
Status check_shard_weights(const ModelConfig& config, WeightFormat format, const DbrxShard& shard,
                           int tensor_ranks);

int64_t device_weight_bytes(const Checkpoint& checkpoint, const ModelConfig& config,
                            WeightFormat format, const DbrxShard& shard);

Result<DeviceWeights> upload_weights(const Checkpoint& checkpoint, const ModelConfig& config,
                                     WeightFormat format, const DbrxShard& shard);

// Bytes of make_random_weights(config, format, ...) (bf16 unless format asks otherwise).
int64_t random_weight_bytes(const ModelConfig& config, WeightFormat format);

// Random weights of DBRX's layout for `config`, made on the device.
Result<DeviceWeights> make_random_weights(const ModelConfig& config, WeightFormat format,
                                          uint64_t seed);

}  // namespace sluice::inference::cuda
