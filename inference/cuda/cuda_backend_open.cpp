// Opening the CUDA backend (cuda_backend_impl.h): the options checked, the device memory planned
// before anything is allocated, the weights placed once the plan is accepted, and the factories
// and run-time switches of cuda_backend.h.
#include <algorithm>
#include <functional>

#include "common/log.h"
#include "inference/cuda/cuda_backend_impl.h"
#include "inference/cuda/parallel_cuda_backend.h"
#include "inference/cuda/sample.cuh"
#include "inference/cuda/staged_communicator.h"
#include "inference/dbrx_layout.h"
#include "inference/gpu_memory_plan.h"
#include "inference/int4_weights.h"

namespace sluice::inference {

namespace {

using cuda::CudaBackend;
using cuda::DeviceBuffer;
using cuda::kDeviceReserveBytes;
using cuda::RankParts;
using cuda::sample_buffer_bytes;

// The device's multiprocessors, which choose_attention_kernel weighs the step's blocks against.
Result<int> multiprocessor_count(int device) {
    int count = 0;
    SLUICE_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
    return count;
}

Status check_options(const ModelConfig& config, const CudaBackendOptions& options) {
    if (options.weights == WeightFormat::kInt8) {
        return invalid_argument(
            "cuda backend: int8 weights are not supported; use stored, f32, bf16, fp8 or int4");
    }
    // Codes of one format are not requantised to the other: that would compound two roundings.
    if (config.quantization == CheckpointQuantization::kInt4Grouped &&
        options.weights == WeightFormat::kF8E4M3) {
        return invalid_argument(
            "cuda backend: an int4 checkpoint loads as stored, int4, bf16 or f32, not fp8");
    }
    if (config.quantization == CheckpointQuantization::kFp8PerChannel &&
        options.weights == WeightFormat::kInt4) {
        return invalid_argument(
            "cuda backend: an fp8 checkpoint loads as stored, fp8, bf16 or f32, not int4");
    }
    if (options.weights == WeightFormat::kInt4 &&
        config.quantization == CheckpointQuantization::kNone) {
        SLUICE_RETURN_IF_ERROR(
            check_int4_group_size(options.int4_group_size, config, "int4 group size"));
    }
    if (options.max_batch_tokens <= 0 || options.max_batch_tokens > 65535) {
        return invalid_argument("cuda backend: max_batch_tokens " +
                                std::to_string(options.max_batch_tokens) + " outside [1, 65535]");
    }
    if (options.max_sampled_rows <= 0) {
        return invalid_argument("cuda backend: max_sampled_rows " +
                                std::to_string(options.max_sampled_rows) + " must be positive");
    }
    for (const int64_t batch : options.decode_graph_batches) {
        if (batch < 1 || batch > cuda::kSkinnyExpertMaxTokens) {
            return invalid_argument("cuda backend: decode graph batch size " +
                                    std::to_string(batch) + " outside [1, " +
                                    std::to_string(cuda::kSkinnyExpertMaxTokens) + "]");
        }
    }
    if (config.n_expert > cuda::kMaxRouterExperts ||
        config.head_dim() > cuda::kMaxAttentionHeadDim || config.head_dim() % 2 != 0) {
        return invalid_argument("cuda backend: " + std::to_string(config.n_expert) +
                                " experts and head_dim " + std::to_string(config.head_dim()) +
                                "; supported up to " + std::to_string(cuda::kMaxRouterExperts) +
                                " experts and an even head_dim up to " +
                                std::to_string(cuda::kMaxAttentionHeadDim));
    }
    return Status::ok_status();
}

// Plans, checks and allocates everything but the weights, which `make_weights` places once the
// plan has been accepted.
Result<std::unique_ptr<Backend>> open_with_weights(
    ModelConfig config, const CudaBackendOptions& options, int64_t weight_bytes,
    const std::function<Result<cuda::DeviceWeights>()>& make_weights, RankParts rank) {
    SLUICE_RETURN_IF_ERROR(check_options(config, options));
    const std::string device = "cuda device " + std::to_string(options.device);
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || options.device < 0 ||
        options.device >= count) {
        return unavailable(device + " is not visible (" + std::to_string(count) + " GPUs)");
    }
    SLUICE_CUDA_CHECK(cudaSetDevice(options.device));
    size_t free_bytes = 0;
    size_t total_bytes = 0;
    SLUICE_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    // A step samples at most one row per entry, and has at most one entry per token.
    const int64_t max_sampled_rows = std::min(options.max_sampled_rows, options.max_batch_tokens);
    SLUICE_ASSIGN_OR_RETURN(const int64_t sampling_bytes,
                            sample_buffer_bytes(max_sampled_rows, config.n_vocab));
    GpuMemoryPlan plan = plan_gpu_memory(config, weight_bytes, options.max_batch_tokens,
                                         KvCacheSpec{16, 0}, sampling_bytes);
    // A rank's vocabulary gather (RankParts), counted with the activations.
    const int n_ranks = rank.comm == nullptr ? 1 : rank.comm->size();
    const int64_t padded = (config.n_vocab + n_ranks - 1) / n_ranks;
    const int64_t gather_floats = rank.comm == nullptr ? 0 : options.max_batch_tokens * padded;
    plan.activation_bytes += gather_floats * (1 + n_ranks) * 4;
    // The expert plan's exchange buffers, also activations.
    const Communicator* exchange_comm = rank.exchange_comm();
    const int n_groups = exchange_comm == nullptr ? 0 : exchange_comm->size();
    if (exchange_comm != nullptr) {
        plan.activation_bytes +=
            cuda::ExpertParallelBuffers::bytes(config, options.max_batch_tokens, n_groups);
    }
    log::info("inference", "cuda memory plan",
              {{"device", options.device},
               {"weights", format_bytes(plan.weight_bytes)},
               {"activations", format_bytes(plan.activation_bytes)},
               {"workspace", format_bytes(plan.workspace_bytes)},
               {"sampling", format_bytes(plan.sampling_bytes)},
               {"max_batch_tokens", options.max_batch_tokens},
               {"max_sampled_rows", max_sampled_rows},
               {"free", format_bytes(static_cast<int64_t>(free_bytes))},
               {"total", format_bytes(static_cast<int64_t>(total_bytes))}});
    SLUICE_RETURN_IF_ERROR(check_gpu_memory_plan(
        plan, static_cast<int64_t>(free_bytes) - kDeviceReserveBytes, device));

    SLUICE_ASSIGN_OR_RETURN(cuda::DeviceWeights weights, make_weights());
    cuda::StepBuffers buffers;
    SLUICE_RETURN_IF_ERROR(buffers.allocate(config, options.max_batch_tokens));
    SLUICE_RETURN_IF_ERROR(rank.vocab_local.allocate(gather_floats * 4));
    SLUICE_RETURN_IF_ERROR(rank.vocab_gathered.allocate(gather_floats * n_ranks * 4));
    if (exchange_comm != nullptr) {
        SLUICE_RETURN_IF_ERROR(rank.exchange.allocate(config, options.max_batch_tokens, n_groups));
    }
    // A rank computes on its communicator's stream, so that every collective sees its inputs
    // (staged_communicator.h, nccl_communicator.h); one rank alone has its own.
    cudaStream_t raw_stream =
        rank.comm == nullptr ? nullptr : cuda::communicator_stream(*rank.comm);
    cuda::StreamPtr stream;
    if (raw_stream == nullptr) {
        SLUICE_CUDA_CHECK(cudaStreamCreateWithFlags(&raw_stream, cudaStreamNonBlocking));
        stream.reset(raw_stream);
    }
    cublasHandle_t raw_cublas = nullptr;
    SLUICE_CUDA_CHECK(cublasCreate(&raw_cublas));
    cuda::CublasPtr cublas(raw_cublas);
    DeviceBuffer panel;
    DeviceBuffer workspace;
    SLUICE_RETURN_IF_ERROR(panel.allocate(kGpuWidenPanelBytes));
    SLUICE_RETURN_IF_ERROR(workspace.allocate(kGpuCublasWorkspaceBytes));
    DeviceBuffer sample_buffer;
    SLUICE_RETURN_IF_ERROR(sample_buffer.allocate(sampling_bytes));
    SLUICE_CUDA_CHECK(cublasSetStream(raw_cublas, raw_stream));
    SLUICE_CUDA_CHECK(
        cublasSetWorkspace(raw_cublas, workspace.get(), static_cast<size_t>(workspace.bytes())));
    // Pedantic: no TF32 or other reduced-precision substitutes, for parity with the CPU.
    SLUICE_CUDA_CHECK(cublasSetMathMode(raw_cublas, CUBLAS_PEDANTIC_MATH));
    SLUICE_CUDA_CHECK(cudaDeviceSynchronize());
    SLUICE_ASSIGN_OR_RETURN(const int n_sm, multiprocessor_count(options.device));
    log::info("inference", "cuda backend ready",
              {{"device", options.device},
               {"weights", format_bytes(weights.bytes())},
               {"decode_graphs", options.decode_graphs}});
    return std::unique_ptr<Backend>(std::make_unique<CudaBackend>(
        std::move(config), options.device, std::move(weights), std::move(buffers),
        std::move(stream), raw_stream, std::move(cublas), std::move(panel), std::move(workspace),
        std::move(sample_buffer), max_sampled_rows, n_sm, options, std::move(rank)));
}

RankParts whole_model(const ModelConfig& config) {
    RankParts parts;
    parts.shard = DbrxShard::whole(config);
    return parts;
}

// The CUDA backend behind `backend`, or null.
CudaBackend* as_cuda(Backend& backend) { return dynamic_cast<CudaBackend*>(&backend); }
const CudaBackend* as_cuda(const Backend& backend) {
    return dynamic_cast<const CudaBackend*>(&backend);
}

// The CUDA backend behind `backend`, or kInvalidArgument naming the setting `what`.
Result<CudaBackend*> cuda_for_setting(Backend& backend, const char* what) {
    CudaBackend* cuda = as_cuda(backend);
    if (cuda == nullptr) {
        return invalid_argument(std::string(what) + ": the " + backend.name() +
                                " backend is not a cuda backend");
    }
    return cuda;
}

}  // namespace

Status set_cuda_decode_graphs(Backend& backend, bool enabled) {
    SLUICE_ASSIGN_OR_RETURN(CudaBackend * cuda, cuda_for_setting(backend, "decode graphs"));
    cuda->set_decode_graphs(enabled);
    return Status::ok_status();
}

Status set_cuda_split_k_attention(Backend& backend, bool enabled) {
    SLUICE_ASSIGN_OR_RETURN(CudaBackend * cuda, cuda_for_setting(backend, "split-K attention"));
    cuda->set_split_k_attention(enabled);
    return Status::ok_status();
}

Status set_cuda_int4_mma_experts(Backend& backend, bool enabled) {
    SLUICE_ASSIGN_OR_RETURN(CudaBackend * cuda, cuda_for_setting(backend, "int4 mma experts"));
    cuda->set_int4_mma_experts(enabled);
    return Status::ok_status();
}

Result<CudaGraphCounts> cuda_decode_graph_counts(const Backend& backend) {
    const CudaBackend* cuda = as_cuda(backend);
    if (cuda == nullptr) {
        return invalid_argument("decode graphs: the " + backend.name() +
                                " backend is not a cuda backend");
    }
    const cuda::DecodeGraphCounts counts = cuda->graph_counts();
    return CudaGraphCounts{counts.captures, counts.steps, counts.held};
}

namespace {

// The model's config and its checked checkpoint, as every open below starts.
struct OpenedCheckpoint {
    ModelConfig config;
    std::unique_ptr<Checkpoint> checkpoint;
};

Result<OpenedCheckpoint> open_checked(const std::string& model_dir,
                                      const CudaBackendOptions& options) {
    SLUICE_ASSIGN_OR_RETURN(ModelConfig config, load_model_config(model_dir));
    SLUICE_RETURN_IF_ERROR(check_options(config, options));
    if (config.quantization == CheckpointQuantization::kNone) {
        config.int4_group_size = options.int4_group_size;  // used by kInt4 only
    }
    SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> checkpoint, Checkpoint::open(model_dir));
    SLUICE_RETURN_IF_ERROR(check_dbrx_checkpoint(*checkpoint, config));
    return OpenedCheckpoint{std::move(config), std::move(checkpoint)};
}

}  // namespace

Result<std::unique_ptr<StepFollower>> open_cuda_follower(const std::string& model_dir,
                                                         const CudaBackendOptions& options) {
    SLUICE_ASSIGN_OR_RETURN(OpenedCheckpoint opened, open_checked(model_dir, options));
    return cuda::open_parallel_cuda_follower(opened.config, std::move(opened.checkpoint), options);
}

Result<std::unique_ptr<Backend>> open_cuda_backend(const std::string& model_dir,
                                                   const CudaBackendOptions& options) {
    SLUICE_ASSIGN_OR_RETURN(OpenedCheckpoint opened, open_checked(model_dir, options));
    const ModelConfig& config = opened.config;
    std::unique_ptr<Checkpoint>& checkpoint = opened.checkpoint;
    if (options.parallel.parallel()) {
        return cuda::open_parallel_cuda_backend(config, std::move(checkpoint), options);
    }
    const int64_t weight_bytes = cuda::device_weight_bytes(*checkpoint, config, options.weights);
    return open_with_weights(
        config, options, weight_bytes,
        [&] { return cuda::upload_weights(*checkpoint, config, options.weights); },
        whole_model(config));
}

Result<std::unique_ptr<Backend>> cuda::open_cuda_rank(const ModelConfig& config,
                                                      const Checkpoint& checkpoint,
                                                      const CudaBackendOptions& options,
                                                      const DbrxShard& shard,
                                                      RankCommunicators comms) {
    // The ranks an expert's ffn columns are split over: the group's in a grid, all of them in
    // the tensor plan, none in the expert plan.
    int tensor_ranks = 1;
    if (comms.tensor != nullptr) {
        tensor_ranks = comms.tensor->size();
    } else if (!shard.expert_parallel && comms.all != nullptr) {
        tensor_ranks = comms.all->size();
    }
    SLUICE_RETURN_IF_ERROR(cuda::check_shard_weights(config, options.weights, shard, tensor_ranks));
    SLUICE_CUDA_CHECK(cudaSetDevice(options.device));
    const int64_t weight_bytes =
        cuda::device_weight_bytes(checkpoint, config, options.weights, shard);
    return open_with_weights(
        config, options, weight_bytes,
        [&] { return cuda::upload_weights(checkpoint, config, options.weights, shard); },
        [&] {
            RankParts parts;
            parts.shard = shard;
            parts.comm = std::move(comms.all);
            parts.tensor_comm = std::move(comms.tensor);
            parts.expert_comm = std::move(comms.expert);
            return parts;
        }());
}

Result<std::unique_ptr<Backend>> open_cuda_backend_random(const ModelConfig& config,
                                                          const CudaBackendOptions& options,
                                                          uint64_t seed) {
    // The config's own checks, as if it had been read from a config.json.
    SLUICE_RETURN_IF_ERROR(parse_model_config(model_config_to_json(config)).status());
    SLUICE_RETURN_IF_ERROR(check_options(config, options));
    ModelConfig sized = config;
    sized.int4_group_size = options.int4_group_size;  // used by kInt4 only
    if (options.parallel.parallel()) {
        return not_supported("cuda backend: random weights are for one rank; parallel: " +
                             std::to_string(options.parallel.n_ranks()) + " ranks");
    }
    return open_with_weights(
        sized, options, cuda::random_weight_bytes(sized, options.weights),
        [&] { return cuda::make_random_weights(sized, options.weights, seed); },
        whole_model(sized));
}

}  // namespace sluice::inference
