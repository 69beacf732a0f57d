#pragma once
// The CUDA backend's tensor plan (cuda_backend.h, docs/parallel.md): one CUDA backend per rank,
// each over its shard of the weights (device_weights.h) and its own KV cache of its KV heads,
// driven by one worker thread per rank; the ranks meet in three collectives per step — the
// all-reduces after out_proj and after the experts' down product, and the lm_head's vocabulary
// all-gather — over NCCL (a GPU per rank) or the staging communicator (all ranks on one GPU,
// CudaBackendOptions::ranks_share_device).
//
// Thread safety: see backend.h (the returned backend is owned by one thread; its workers are
// its own).

#include <memory>

#include "common/result.h"
#include "inference/backend.h"
#include "inference/communicator.h"
#include "inference/cuda_backend.h"
#include "inference/dbrx_shard.h"
#include "inference/safetensors.h"

namespace sluice::inference::cuda {

// One rank: a CUDA backend on options.device over `shard` of the checked `checkpoint`, joined
// to the others by `comm`, whose stream it computes on. Decode graphs are never used on a rank.
// check_shard_weights' errors, then open_cuda_backend's.
Result<std::unique_ptr<Backend>> open_cuda_rank(const ModelConfig& config,
                                                const Checkpoint& checkpoint,
                                                const CudaBackendOptions& options,
                                                const DbrxShard& shard,
                                                std::unique_ptr<Communicator> comm);

// The tensor plan over options.parallel (validated, more than one rank). `checkpoint` was
// checked against `config` and is kept open while the ranks upload from it.
Result<std::unique_ptr<Backend>> open_parallel_cuda_backend(const ModelConfig& config,
                                                            std::unique_ptr<Checkpoint> checkpoint,
                                                            const CudaBackendOptions& options);

}  // namespace sluice::inference::cuda
