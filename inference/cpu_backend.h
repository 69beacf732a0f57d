#pragma once
// The CPU backend: DBRX on the host, fp32 math over f32, bf16 or int8 weights.
//
// open_cpu_backend reads `<dir>/config.json`, opens the safetensors checkpoint (single or
// sharded), checks every tensor's name and shape against the config before anything else, and
// prepares the weights in the requested format. Weights whose stored form is already the
// requested one are used in place from the memory mapping; others are converted once.
//
// With `parallel` naming more than one rank, the backend runs the model as that many ranks of
// a parallel plan (parallel_config.h, docs/parallel.md): one worker thread per rank, each
// holding only its shard of the weights (slices of the one mapping) and the KV heads it needs,
// joined by a local communicator — or, when `parallel.nodes` names several nodes, this node's
// ranks joined to the other nodes' by TCP (tcp_communicator.h): node 0 runs the engine over
// open_cpu_backend, the others follow it (open_cpu_follower). forward() hands the step to every
// rank and returns rank 0's output, the same logits as one rank up to the order of fp32 sums
// (docs/parallel.md). When a rank fails, the group is aborted, the step fails on every rank, and
// every later call returns that failure (kAborted naming the rank): the backend cannot serve again
// and is reopened.
//
// Errors: those of load_model_config, Checkpoint::open and check_dbrx_checkpoint;
// kInvalidArgument for a parallel setting the model cannot be split by, or fp8 and int4
// weights (the CUDA backend's); the TCP group's errors across nodes.
// Thread safety: see backend.h (owned by one thread; uses `n_threads` workers inside calls, per
// rank when parallel).

#include <memory>
#include <string>

#include "common/result.h"
#include "inference/backend.h"
#include "inference/parallel_config.h"
#include "inference/step_relay.h"

namespace sluice::inference {

struct CpuBackendOptions {
    WeightFormat weights = WeightFormat::kAsStored;
    int n_threads = 0;  // per rank; 0: the hardware threads shared out among the ranks
    ParallelConfig parallel{};
};

Result<std::unique_ptr<Backend>> open_cpu_backend(const std::string& model_dir,
                                                  const CpuBackendOptions& options = {});

// Node k > 0 of an engine spanning several nodes (options.parallel.nodes, .node): loads this
// node's shards and joins the group; run() then follows node 0's steps (step_relay.h).
// kFailedPrecondition on node 0 or a single node; open_cpu_backend's other errors.
Result<std::unique_ptr<StepFollower>> open_cpu_follower(const std::string& model_dir,
                                                        const CpuBackendOptions& options);

// Which kernels the CPU backend picked on this machine: "avx2+fma" or "portable".
std::string cpu_kernel_variant();

}  // namespace sluice::inference
