#include "inference/backend_factory.h"

#include "common/log.h"
#include "inference/cpu_backend.h"
#include "inference/cuda_backend.h"
#include "inference/devices.h"

namespace sluice::inference {

std::optional<BackendKind> parse_backend_kind(const std::string& name) {
    if (name == "auto") {
        return BackendKind::kAuto;
    }
    if (name == "cpu") {
        return BackendKind::kCpu;
    }
    if (name == "cuda") {
        return BackendKind::kCuda;
    }
    return std::nullopt;
}

BackendKind resolve_backend_kind(BackendKind kind) {
    if (kind == BackendKind::kCpu) {
        return kind;
    }
    Result<std::vector<GpuInfo>> gpus = visible_gpus();
    if (gpus.ok() && !gpus->empty()) {
        return BackendKind::kCuda;
    }
    const std::string why = gpus.ok() ? "no GPU is visible" : gpus.status().message();
    // auto on a CPU machine is the normal case; an explicit cuda request deserves a warning.
    if (kind == BackendKind::kCuda) {
        log::warn("inference", "cuda backend requested; falling back to the cpu backend",
                  {{"reason", why}});
    } else {
        log::info("inference", "using the cpu backend", {{"reason", why}});
    }
    return BackendKind::kCpu;
}

namespace {

CudaBackendOptions cuda_options(const BackendOptions& options) {
    return {.weights = options.weights,
            .device = 0,
            .max_batch_tokens = options.max_batch_tokens,
            .max_sampled_rows = options.max_sequences,
            .decode_graphs = options.cuda_graphs,
            .parallel = options.parallel};
}

}  // namespace

Result<std::unique_ptr<Backend>> open_backend(const std::string& model_dir,
                                              const BackendOptions& options) {
    SLUICE_RETURN_IF_ERROR(validate_parallel_config(options.parallel));
    if (resolve_backend_kind(options.kind) == BackendKind::kCuda) {
        // The tensor plan, the expert plan and the grid run on the cuda backend, a GPU per
        // rank, on this node or (as node 0) across several.
        return open_cuda_backend(model_dir, cuda_options(options));
    }
    return open_cpu_backend(model_dir, {options.weights, options.n_threads, options.parallel});
}

Result<std::unique_ptr<StepFollower>> open_follower(const std::string& model_dir,
                                                    const BackendOptions& options) {
    SLUICE_RETURN_IF_ERROR(validate_parallel_config(options.parallel));
    if (resolve_backend_kind(options.kind) == BackendKind::kCuda) {
        return open_cuda_follower(model_dir, cuda_options(options));
    }
    return open_cpu_follower(model_dir, {options.weights, options.n_threads, options.parallel});
}

#if !SLUICE_HAVE_CUDA
Result<std::unique_ptr<Backend>> open_cuda_backend(const std::string& /*model_dir*/,
                                                   const CudaBackendOptions& /*options*/) {
    return not_supported("this build has no CUDA backend (configure with SLUICE_CUDA=ON)");
}

Result<std::unique_ptr<StepFollower>> open_cuda_follower(const std::string& /*model_dir*/,
                                                         const CudaBackendOptions& /*options*/) {
    return not_supported("this build has no CUDA backend (configure with SLUICE_CUDA=ON)");
}

Result<std::unique_ptr<Backend>> open_cuda_backend_random(const ModelConfig& /*config*/,
                                                          const CudaBackendOptions& /*options*/,
                                                          uint64_t /*seed*/) {
    return not_supported("this build has no CUDA backend (configure with SLUICE_CUDA=ON)");
}

Status set_cuda_decode_graphs(Backend& /*backend*/, bool /*enabled*/) {
    return not_supported("this build has no CUDA backend (configure with SLUICE_CUDA=ON)");
}

Status set_cuda_split_k_attention(Backend& /*backend*/, bool /*enabled*/) {
    return not_supported("this build has no CUDA backend (configure with SLUICE_CUDA=ON)");
}

Status set_cuda_int4_mma_experts(Backend& /*backend*/, bool /*enabled*/) {
    return not_supported("this build has no CUDA backend (configure with SLUICE_CUDA=ON)");
}

Result<CudaGraphCounts> cuda_decode_graph_counts(const Backend& /*backend*/) {
    return not_supported("this build has no CUDA backend (configure with SLUICE_CUDA=ON)");
}
#endif

}  // namespace sluice::inference
