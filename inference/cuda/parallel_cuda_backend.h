#pragma once
// The CUDA backend's parallel plans (cuda_backend.h, docs/parallel.md): one CUDA backend per
// rank, each over its shard of the weights (device_weights.h) and its own KV cache of its KV
// heads, driven by one worker thread per rank, over NCCL (a GPU per rank) or the staging
// communicator (all ranks on one GPU, CudaBackendOptions::ranks_share_device).
//   - tensor plan: three collectives per step — the all-reduces after out_proj and after the
//     experts' down product, and the lm_head's vocabulary all-gather;
//   - expert plan: attention and lm_head as the tensor plan; the experts are distributed whole
//     over the ranks and each layer's tokens are exchanged with all-to-alls
//     (expert_parallel_moe.h);
//   - grid (tensor x expert): as the expert plan over the groups' columns, each group's experts
//     split inside across its ranks as in the tensor plan, summed over its row.
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
#include "inference/step_relay.h"

namespace sluice::inference::cuda {

// A rank's communicators: the group of all ranks (attention's and lm_head's collectives, and
// the expert plan's token exchange), and in a tensor x expert grid its row (`tensor`: the ranks
// of its expert group, which sum the experts' partial products) and column (`expert`: one rank
// per group, which exchange the tokens), split from `all`.
struct RankCommunicators {
    std::unique_ptr<Communicator> all;
    std::unique_ptr<Communicator> tensor;  // grid only
    std::unique_ptr<Communicator> expert;  // grid only
};

// One rank: a CUDA backend on options.device over `shard` of the checked `checkpoint`, joined
// to the others by `comms`, on whose stream it computes (the sub-groups share `all`'s). Decode
// graphs are never used on a rank. check_shard_weights' errors, then open_cuda_backend's.
Result<std::unique_ptr<Backend>> open_cuda_rank(const ModelConfig& config,
                                                const Checkpoint& checkpoint,
                                                const CudaBackendOptions& options,
                                                const DbrxShard& shard, RankCommunicators comms);

// The tensor plan, the expert plan or the grid over options.parallel (validated, more than one
// rank). `checkpoint` was checked against `config` and is kept open while the ranks upload from
// it. On several nodes this is node 0's engine backend: this node's ranks behind the step relay
// (step_relay.h), which carries every call to the other nodes first; kFailedPrecondition on
// another node (open_parallel_cuda_follower).
Result<std::unique_ptr<Backend>> open_parallel_cuda_backend(const ModelConfig& config,
                                                            std::unique_ptr<Checkpoint> checkpoint,
                                                            const CudaBackendOptions& options);

// Node k > 0 of several: this node's ranks (ranks k x R .. (k + 1) x R - 1 on its GPUs 0 .. R-1),
// following node 0's steps. kFailedPrecondition on node 0 or a single node.
Result<std::unique_ptr<StepFollower>> open_parallel_cuda_follower(
    const ModelConfig& config, std::unique_ptr<Checkpoint> checkpoint,
    const CudaBackendOptions& options);

}  // namespace sluice::inference::cuda
