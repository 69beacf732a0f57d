#pragma once
// What accelerators this build can use and which the machine shows. Used by `sluice version`,
// /readyz and the engine's backend choice.
//
// Thread safety: free functions, safe to call from any thread.

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace sluice::inference {

struct BuildFeatures {
    bool cuda = false;  // the CUDA backend is compiled in
    bool nccl = false;  // NCCL multi-GPU support is compiled in
};

struct GpuInfo {
    int index = 0;
    std::string name;
    std::uint64_t total_memory_bytes = 0;
    int compute_capability_major = 0;
    int compute_capability_minor = 0;
};

BuildFeatures build_features();

// The GPUs the CUDA runtime shows this process (CUDA_VISIBLE_DEVICES applies). An empty list when
// CUDA is compiled in but no GPU or driver is present; kNotSupported when CUDA is not compiled in.
Result<std::vector<GpuInfo>> visible_gpus();

}  // namespace sluice::inference
