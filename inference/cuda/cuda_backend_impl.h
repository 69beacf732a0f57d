#pragma once
// The CUDA backend's class (cuda_backend.h is its public face), shared by its two source files:
// cuda_backend.cpp runs a step (the layers, attention, the experts, lm_head, sampling and the
// copies back); cuda_backend_open.cpp checks the options, plans the device memory, allocates and
// builds a backend, and holds the factories and switches of cuda_backend.h.
//
// Thread safety: see backend.h.

#include <cstdint>
#include <memory>
#include <set>
#include <string>

#include "inference/backend.h"
#include "inference/communicator.h"
#include "inference/cuda/attention_split_k.cuh"
#include "inference/cuda/cuda_check.h"
#include "inference/cuda/decode_graphs.h"
#include "inference/cuda/dense.cuh"
#include "inference/cuda/device_weights.h"
#include "inference/cuda/expert_parallel_moe.h"
#include "inference/cuda/moe.cuh"
#include "inference/cuda/step_buffers.h"
#include "inference/cuda/tensor_core.cuh"
#include "inference/cuda_backend.h"
#include "inference/dbrx_shard.h"

namespace sluice::inference::cuda {

// Memory the CUDA context, cuBLAS's kernels and the allocator keep beyond what we ask for.
inline constexpr int64_t kDeviceReserveBytes = 512LL << 20;

// The requests and results of `n` device-sampled rows, ahead of sample_rows' workspace.
size_t sample_header_bytes(int64_t n);

// The whole device-sampling buffer for `n` rows.
Result<int64_t> sample_buffer_bytes(int64_t n, int64_t n_vocab);

// How a step launches attention: the kernel, and for split-K the partitions launched (those the
// longest context needs, or for a graph those of max_seq_len, whatever the contexts).
struct AttentionLaunch {
    cuda::AttentionKernel kernel = cuda::AttentionKernel::kOnePass;
    int32_t n_partitions = 0;
};

// What makes a backend one rank of a parallel plan: its shard and its communicators (whose
// stream the rank's compute runs on). The whole model and no communicator: one rank alone.
struct RankParts {
    DbrxShard shard;
    std::unique_ptr<Communicator> comm;
    // The grid's row (the rank's expert group) and column (its tensor index in every group),
    // split from `comm`; null otherwise. The expert plan exchanges tokens over `comm`.
    std::unique_ptr<Communicator> tensor_comm;
    std::unique_ptr<Communicator> expert_comm;
    // The vocabulary gather of the lm_head (launch_step): the rank's padded slice and every
    // rank's, [max_batch_tokens, padded] and [n_ranks, max_batch_tokens, padded] floats.
    DeviceBuffer vocab_local;
    DeviceBuffer vocab_gathered;
    // The expert plan's token exchange (expert_parallel_moe.h); unallocated otherwise.
    cuda::ExpertParallelBuffers exchange;

    // The communicator the experts' tokens are exchanged over; null without expert parallelism.
    Communicator* exchange_comm() const {
        if (!shard.expert_parallel) {
            return nullptr;
        }
        return expert_comm != nullptr ? expert_comm.get() : comm.get();
    }
};

// 0 when the rank's query head i reads its KV head i / (n_head / n_head_kv), as the attention
// kernels assume for the whole model (always so when the split follows the KV groups: 2 or 4
// ranks over 8 heads and 2 KV heads); else the model's heads per KV head, which paged_attention
// maps through the shard's offsets (an uneven split, e.g. 3 ranks over 8 heads).
int64_t attention_rep(const ModelConfig& config, const DbrxShard& shard);

class CudaBackend final : public Backend {
public:
    CudaBackend(ModelConfig config, int device, cuda::DeviceWeights weights,
                cuda::StepBuffers buffers, cuda::StreamPtr stream, cudaStream_t raw_stream,
                cuda::CublasPtr cublas, DeviceBuffer panel, DeviceBuffer cublas_workspace,
                DeviceBuffer sample_buffer, int64_t max_sampled_rows, int n_sm,
                const CudaBackendOptions& options, RankParts rank)
        : comm_(std::move(rank.comm)),
          grid_tensor_comm_(std::move(rank.tensor_comm)),
          grid_expert_comm_(std::move(rank.expert_comm)),
          shard_(rank.shard),
          attention_rep_(attention_rep(config, rank.shard)),
          vocab_local_(std::move(rank.vocab_local)),
          vocab_gathered_(std::move(rank.vocab_gathered)),
          exchange_(std::move(rank.exchange)),
          config_(std::move(config)),
          device_(device),
          n_sm_(n_sm),
          split_k_enabled_(options.split_k_attention),
          int4_mma_enabled_(options.int4_mma_experts),
          graphs_enabled_(options.decode_graphs),
          graph_batches_(options.decode_graph_batches.begin(), options.decode_graph_batches.end()),
          weights_(std::move(weights)),
          buffers_(std::move(buffers)),
          stream_(std::move(stream)),
          raw_stream_(raw_stream),
          cublas_(std::move(cublas)),
          panel_(std::move(panel)),
          cublas_workspace_(std::move(cublas_workspace)),
          sample_buffer_(std::move(sample_buffer)),
          max_sampled_rows_(max_sampled_rows),
          tensor_cores_(cublas_.get(),
                        {buffers_.x_hi.get(), buffers_.x_lo.get(), buffers_.x_hi.bytes() / 2,
                         panel_.get(), panel_.bytes() / 2}),
          dense_(cublas_.get(), panel_.as<float>(), panel_.bytes() / 4, &tensor_cores_) {}

    std::string name() const override {
        return comm_ == nullptr ? "cuda" : "cuda-rank-" + std::to_string(comm_->rank());
    }
    const ModelConfig& config() const override { return config_; }
    BackendMemory memory() const override { return {weights_.bytes(), k_cache_.bytes() * 2}; }
    int64_t active_weight_bytes() const override { return weights_.active_bytes(config_); }

    Status configure_kv_cache(const KvCacheSpec& spec) override;
    KvCacheSpec kv_cache_spec() const override { return spec_; }
    bool samples_on_device() const override { return true; }
    int64_t device_sample_capacity() const override { return max_sampled_rows_; }
    Result<ForwardOutput> forward(const ForwardBatch& batch) override;
    Status copy_kv_block(int32_t src, int32_t dst) override;

    void set_split_k_attention(bool enabled) { split_k_enabled_ = enabled; }
    void set_int4_mma_experts(bool enabled) {
        int4_mma_enabled_ = enabled;
        graphs_.clear();
    }
    void set_decode_graphs(bool enabled) {
        graphs_enabled_ = enabled;
        graphs_.clear();
    }
    cuda::DecodeGraphCounts graph_counts() const { return graphs_.counts(); }

private:
    bool decode_graph_step(const cuda::StepIndex& index) const;
    // Every launch of a step from the embedding to lm_head, on stream(); nothing that waits.
    Status launch_step(const cuda::StepIndex& index, const AttentionLaunch& attention);
    Status run_layer(int64_t l, const cuda::StepIndex& index, const int32_t* dev_index,
                     const AttentionLaunch& attention_launch);
    Status run_moe(const cuda::DeviceLayer& layer, int64_t n_tokens);
    // The expert plan's and the grid's MoE (expert_parallel_moe.h).
    Status run_moe_expert_parallel(const cuda::DeviceLayer& layer, int64_t n_tokens);
    // y = the grouped expert products of the rows of x_sorted grouped by `offsets` (moe.cuh):
    // tensor cores from tensor_core_min_tokens (shape.n_tokens), else streamed or tiled.
    Status run_experts(const cuda::DeviceLayer& layer, const float* x_sorted,
                       const int32_t* offsets, const cuda::ExpertShape& shape, float* y);

    cudaStream_t stream() const { return raw_stream_; }
    // Columns of the rank's KV heads in its cache rows, and of its Wqkv product.
    int64_t kv_width() const { return shard_.n_head_kv * config_.head_dim(); }
    int64_t qkv_width() const {
        return (shard_.n_head + 2 * shard_.n_head_kv) * config_.head_dim();
    }
    // Row-parallel partial sums (out_proj, the experts' down product) are summed into the
    // residual stream x by an all-reduce of x itself: rank 0 adds its part to x, the others
    // start from zero, so the residual is counted once.
    bool adds_residual() const { return comm_ == nullptr || comm_->rank() == 0; }
    Status all_reduce_x(int64_t n_tokens) {
        if (comm_ == nullptr) {
            return Status::ok_status();
        }
        return comm_->all_reduce(f(buffers_.x), n_tokens * config_.d_model, DType::kF32,
                                 ReduceOp::kSum);
    }
    Status lm_head(int64_t n_rows);
    cuda::GluActivation glu_activation() const {
        return config_.activation == Activation::kSilu ? cuda::GluActivation::kSilu
                                                       : cuda::GluActivation::kGelu;
    }
    float* f(const DeviceBuffer& b) const { return b.as<float>(); }

    // First, so destroyed last: its stream may be the one everything below enqueues on.
    std::unique_ptr<Communicator> comm_;
    // The grid's row and column (RankParts), split from comm_ and so destroyed before it.
    std::unique_ptr<Communicator> grid_tensor_comm_;
    std::unique_ptr<Communicator> grid_expert_comm_;
    DbrxShard shard_;
    int64_t attention_rep_;  // attention_rep()
    DeviceBuffer vocab_local_;
    DeviceBuffer vocab_gathered_;
    cuda::ExpertParallelBuffers exchange_;
    ModelConfig config_;
    int device_;
    int n_sm_;
    bool split_k_enabled_;
    bool int4_mma_enabled_;
    bool graphs_enabled_;
    std::set<int64_t> graph_batches_;
    cuda::DeviceWeights weights_;
    cuda::StepBuffers buffers_;
    cuda::StreamPtr stream_;   // null when the stream is the communicator's
    cudaStream_t raw_stream_;  // the stream every launch and copy of a step goes to
    cuda::CublasPtr cublas_;
    DeviceBuffer panel_;
    DeviceBuffer cublas_workspace_;
    // Requests, results and workspace of device sampling for max_sampled_rows_ rows, allocated
    // at start-up with the memory plan (sample_buffer_bytes).
    DeviceBuffer sample_buffer_;
    int64_t max_sampled_rows_;
    cuda::TensorCoreGemm tensor_cores_;  // shares panel_ with dense_'s fp32 path
    cuda::DenseMatmul dense_;

    KvCacheSpec spec_{16, 0};
    DeviceBuffer k_cache_;  // [n_layer, n_blocks, block_size, n_embd_kv]
    DeviceBuffer v_cache_;
    DeviceBuffer index_;  // the packed step index, step_index_capacity int32s
    cuda::StepIndex host_index_;
    // Captured with pointers into the KV cache, index_, the step buffers and the weights:
    // cleared wherever one of them is reallocated (configure_kv_cache; the weights and step
    // buffers live as long as the backend).
    cuda::DecodeGraphs graphs_;

    // Chooses the tokens of the entries asking for device sampling (their rows are in
    // buffers_.logits) and copies the other logits rows back; fills out's rows and `sampled`.
    Status sample_and_copy_rows(const ForwardBatch& batch, ForwardOutput& out);
};

}  // namespace sluice::inference::cuda
