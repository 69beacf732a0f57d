#pragma once
// The CPU backend's parallel form (cpu_backend.h): ranks as worker threads of this process.
//
// Thread safety: see backend.h.

#include <memory>

#include "inference/backend.h"
#include "inference/cpu_backend.h"
#include "inference/safetensors.h"

namespace sluice::inference::cpu {

// `checkpoint` was checked against `config`; options.parallel is validated and names more
// than one rank on this node.
Result<std::unique_ptr<Backend>> open_parallel_cpu_backend(const ModelConfig& config,
                                                           std::unique_ptr<Checkpoint> checkpoint,
                                                           const CpuBackendOptions& options);

}  // namespace sluice::inference::cpu
