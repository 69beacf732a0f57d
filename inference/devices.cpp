#include "inference/devices.h"

#if SLUICE_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace sluice::inference {

BuildFeatures build_features() {
    return BuildFeatures{.cuda = SLUICE_HAVE_CUDA != 0, .nccl = SLUICE_HAVE_NCCL != 0};
}

Result<std::vector<GpuInfo>> visible_gpus() {
#if SLUICE_HAVE_CUDA
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver) {
        // A machine without a GPU or driver is a normal case for a CPU deployment.
        return std::vector<GpuInfo>{};
    }
    if (err != cudaSuccess) {
        return unavailable(std::string("cuda device query failed: ") + cudaGetErrorString(err));
    }
    std::vector<GpuInfo> gpus;
    for (int device = 0; device < count; ++device) {
        cudaDeviceProp prop{};
        err = cudaGetDeviceProperties(&prop, device);
        if (err != cudaSuccess) {
            return unavailable("cuda device " + std::to_string(device) +
                               " properties: " + cudaGetErrorString(err));
        }
        gpus.push_back(GpuInfo{.index = device,
                               .name = prop.name,
                               .total_memory_bytes = prop.totalGlobalMem,
                               .compute_capability_major = prop.major,
                               .compute_capability_minor = prop.minor});
    }
    return gpus;
#else
    return not_supported("this build has no CUDA backend (configure with SLUICE_CUDA=ON)");
#endif
}

}  // namespace sluice::inference
