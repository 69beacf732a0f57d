#pragma once
// The CPU backend's parallel form (cpu_backend.h): ranks as worker threads, of this process or
// of the processes of several nodes.
//
// Thread safety: see backend.h.

#include <memory>

#include "inference/backend.h"
#include "inference/cpu_backend.h"
#include "inference/safetensors.h"
#include "inference/step_relay.h"

namespace sluice::inference::cpu {

// `checkpoint` was checked against `config`; options.parallel is validated and names more
// than one rank. On one node the ranks are joined by local communicators; across nodes by TCP
// ones (tcp_communicator.h), and this is node 0's engine backend: its ranks behind the step
// relay (step_relay.h). kFailedPrecondition on another node (open_parallel_cpu_follower).
Result<std::unique_ptr<Backend>> open_parallel_cpu_backend(const ModelConfig& config,
                                                           std::unique_ptr<Checkpoint> checkpoint,
                                                           const CpuBackendOptions& options);

// Node k > 0 of several: this node's ranks, following node 0's steps. kFailedPrecondition on
// node 0 or a single node.
Result<std::unique_ptr<StepFollower>> open_parallel_cpu_follower(
    const ModelConfig& config, std::unique_ptr<Checkpoint> checkpoint,
    const CpuBackendOptions& options);

}  // namespace sluice::inference::cpu
