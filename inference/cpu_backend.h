#pragma once
// The CPU backend: DBRX on the host, fp32 math over f32, bf16 or int8 weights.
//
// open_cpu_backend reads `<dir>/config.json`, opens the safetensors checkpoint (single or
// sharded), checks every tensor's name and shape against the config before anything else, and
// prepares the weights in the requested format. Weights whose stored form is already the
// requested one are used in place from the memory mapping; others are converted once.
//
// Errors: those of load_model_config, Checkpoint::open and check_dbrx_checkpoint.
// Thread safety: see backend.h (owned by one thread; uses `n_threads` workers inside calls).

#include <memory>
#include <string>

#include "common/result.h"
#include "inference/backend.h"

namespace sluice::inference {

struct CpuBackendOptions {
    WeightFormat weights = WeightFormat::kAsStored;
    int n_threads = 0;  // 0: every hardware thread
};

Result<std::unique_ptr<Backend>> open_cpu_backend(const std::string& model_dir,
                                                  const CpuBackendOptions& options = {});

// Which kernels the CPU backend picked on this machine: "avx2+fma" or "portable".
std::string cpu_kernel_variant();

}  // namespace sluice::inference
