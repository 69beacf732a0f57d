// The CUDA implementation of Backend (cuda_backend.h): weights, step buffers and the paged KV
// cache on one device, and the DBRX forward pass as a sequence of launches on one stream.
//
// A step: upload the packed index arrays (one copy), embed, then per layer
//   LayerNorm_1 → Wqkv → clamp + RoPE + KV write → paged attention → out_proj with the residual
//   added (beta = 1) → LayerNorm_2 → router → top-k → permute → grouped gate/up → grouped down
//   → un-permute with the routing weights into the residual,
// then the final norm of the requested hidden and logits rows and lm_head, copied back, except
// the rows of entries sampled on the device (sample.cu), of which only the choice returns. The
// dense products are DenseMatmul's (streamed, tensor cores or fp32 cuBLAS by step size and
// weight type, dense.cuh); the experts stream, go to the tensor cores from
// tensor_core_min_tokens, or run tiled (moe.cuh). The stream is synchronised once, after the
// copies back, and once per layer on the tensor-core expert path (to read the slot counts).
// Under the expert plan and the grid the experts run on the tokens the ranks exchange
// (expert_parallel_moe.h), which reads the exchange's counts on the host once per layer.
//
// Attention takes the one-pass kernel or split-K by the step's shape (choose_attention_kernel,
// attention_split_k.cuh). Decode steps of the configured sizes replay a CUDA graph of everything
// from the embedding to lm_head (decode_graph_step says which; decode_graphs.h): the index
// upload before it and the sampling and copies back after it stay outside.
#include <algorithm>

#include "common/log.h"
#include "inference/cuda/attention.cuh"
#include "inference/cuda/cuda_backend_impl.h"
#include "inference/cuda/int4_mma.cuh"
#include "inference/cuda/qkv_rope.cuh"
#include "inference/cuda/rows.cuh"
#include "inference/cuda/sample.cuh"
#include "inference/detail/forward_validation.h"
#include "inference/gpu_memory_plan.h"

namespace sluice::inference::cuda {

// The requests and results of `n` device-sampled rows, ahead of sample_rows' workspace.
size_t sample_header_bytes(int64_t n) {
    const size_t bytes = static_cast<size_t>(n) *
                         (sizeof(cuda::DeviceSampleRequest) + sizeof(cuda::DeviceSampleResult));
    return (bytes + 255) / 256 * 256;
}

// The whole device-sampling buffer for `n` rows.
Result<int64_t> sample_buffer_bytes(int64_t n, int64_t n_vocab) {
    SLUICE_ASSIGN_OR_RETURN(const size_t workspace, cuda::sample_rows_workspace_bytes(n, n_vocab));
    return static_cast<int64_t>(sample_header_bytes(n) + workspace);
}

// 0 when the rank's query head i reads its KV head i / (n_head / n_head_kv), as the attention
// kernels assume for the whole model (always so when the split follows the KV groups: 2 or 4
// ranks over 8 heads and 2 KV heads); else the model's heads per KV head, which paged_attention
// maps through the shard's offsets (an uneven split, e.g. 3 ranks over 8 heads).
int64_t attention_rep(const ModelConfig& config, const DbrxShard& shard) {
    const int64_t n_rep = config.n_head / config.n_head_kv;
    if (shard.n_head % shard.n_head_kv != 0) {
        return n_rep;
    }
    const int64_t local_rep = shard.n_head / shard.n_head_kv;
    for (int64_t i = 0; i < shard.n_head; ++i) {
        if ((shard.head_begin + i) / n_rep - shard.kv_head_begin != i / local_rep) {
            return n_rep;
        }
    }
    return 0;
}

Status CudaBackend::configure_kv_cache(const KvCacheSpec& spec) {
    if (spec.block_size <= 0 || spec.n_blocks <= 0) {
        return invalid_argument("kv cache: block_size and n_blocks must be positive, found " +
                                std::to_string(spec.block_size) + " and " +
                                std::to_string(spec.n_blocks));
    }
    SLUICE_CUDA_CHECK(cudaSetDevice(device_));
    SLUICE_CUDA_CHECK(cudaStreamSynchronize(stream()));
    // The graphs point into the cache and index buffers about to be freed.
    graphs_.clear();
    // The old cache is dropped first, so its bytes count as available.
    spec_ = KvCacheSpec{spec.block_size, 0};
    k_cache_.reset();
    v_cache_.reset();
    index_.reset();
    // A rank holds its KV heads only.
    const int64_t kv_bytes = comm_ == nullptr ? gpu_kv_cache_bytes(config_, spec)
                                              : 2 * config_.n_layer * int64_t{spec.n_blocks} *
                                                    spec.block_size * kv_width() * 4;
    const int64_t index_bytes =
        cuda::step_index_capacity(buffers_.max_tokens, config_.max_seq_len, spec.block_size) * 4;
    size_t free_bytes = 0;
    size_t total_bytes = 0;
    SLUICE_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    const int64_t available = static_cast<int64_t>(free_bytes) - kDeviceReserveBytes;
    if (kv_bytes + index_bytes > available) {
        return Status(StatusCode::kResourceExhausted,
                      "cuda device " + std::to_string(device_) + ": kv cache of " +
                          std::to_string(spec.n_blocks) + " blocks of " +
                          std::to_string(spec.block_size) + " positions needs " +
                          format_bytes(kv_bytes + index_bytes) + ", " +
                          format_bytes(std::max<int64_t>(available, 0)) + " available");
    }
    SLUICE_RETURN_IF_ERROR(k_cache_.allocate(kv_bytes / 2));
    SLUICE_RETURN_IF_ERROR(v_cache_.allocate(kv_bytes / 2));
    SLUICE_RETURN_IF_ERROR(index_.allocate(index_bytes));
    // Zeroed like the CPU cache, so that a read of an unwritten slot is deterministic.
    SLUICE_CUDA_CHECK(
        cudaMemsetAsync(k_cache_.get(), 0, static_cast<size_t>(kv_bytes / 2), stream()));
    SLUICE_CUDA_CHECK(
        cudaMemsetAsync(v_cache_.get(), 0, static_cast<size_t>(kv_bytes / 2), stream()));
    SLUICE_CUDA_CHECK(cudaStreamSynchronize(stream()));
    spec_ = spec;
    log::info(
        "inference", "cuda kv cache configured",
        {{"device", device_},
         {"blocks", spec.n_blocks},
         {"block_size", spec.block_size},
         {"kv_cache", format_bytes(kv_bytes)},
         {"free_after", format_bytes(static_cast<int64_t>(free_bytes) - kv_bytes - index_bytes)}});
    return Status::ok_status();
}

Status CudaBackend::copy_kv_block(int32_t src, int32_t dst) {
    SLUICE_RETURN_IF_ERROR(detail::validate_kv_block_copy(src, dst, spec_));
    if (src == dst) {
        return Status::ok_status();
    }
    // The ranks of a parallel backend are called from one thread, each on its own device.
    SLUICE_CUDA_CHECK(cudaSetDevice(device_));
    const int64_t slab = static_cast<int64_t>(spec_.block_size) * kv_width();
    for (int64_t l = 0; l < config_.n_layer; ++l) {
        const int64_t layer = l * spec_.n_blocks * slab;
        for (const DeviceBuffer* cache : {&k_cache_, &v_cache_}) {
            float* base = cache->as<float>() + layer;
            SLUICE_CUDA_CHECK(cudaMemcpyAsync(base + dst * slab, base + src * slab,
                                              static_cast<size_t>(slab) * 4,
                                              cudaMemcpyDeviceToDevice, stream()));
        }
    }
    return Status::ok_status();
}

Result<ForwardOutput> CudaBackend::forward(const ForwardBatch& batch) {
    SLUICE_RETURN_IF_ERROR(
        detail::validate_forward_batch(batch, config_, spec_, samples_on_device()));
    const int64_t n_tokens = detail::batch_token_count(batch);
    if (n_tokens > buffers_.max_tokens) {
        return invalid_argument("forward: " + std::to_string(n_tokens) +
                                " new tokens in one step, the cuda backend holds " +
                                std::to_string(buffers_.max_tokens));
    }
    const auto n_sampled = std::ranges::count_if(
        batch.device_sample, [](const auto& sampling) { return sampling.has_value(); });
    if (n_sampled > max_sampled_rows_) {
        return invalid_argument("forward: " + std::to_string(n_sampled) +
                                " entries sampled on the device in one step, the cuda backend "
                                "samples at most " + std::to_string(max_sampled_rows_));
    }
    SLUICE_CUDA_CHECK(cudaSetDevice(device_));
    ForwardOutput out;
    host_index_.build(batch, spec_.block_size, &out);
    const cuda::StepIndex& index = host_index_;
    auto* dev_index = index_.as<int32_t>();
    SLUICE_CUDA_CHECK(cudaMemcpyAsync(dev_index, index.packed.data(), index.packed.size() * 4,
                                      cudaMemcpyHostToDevice, stream()));
    const int64_t d = config_.d_model;
    AttentionLaunch attention;
    // Split-K serves heads in the whole model's KV groups only (attention_rep).
    attention.kernel =
        split_k_enabled_ && attention_rep_ == 0
            ? cuda::choose_attention_kernel(n_tokens, shard_.n_head, index.max_context, n_sm_)
            : cuda::AttentionKernel::kOnePass;
    if (decode_graph_step(index)) {
        // A graph replays whatever the contexts, so it launches max_seq_len's partitions; the
        // blocks past a sequence's length return at once, with results identical to a launch of
        // just the partitions needed.
        attention.n_partitions = buffers_.attn_max_partitions;
        SLUICE_RETURN_IF_ERROR(graphs_.run({n_tokens, attention.kernel}, stream(),
                                           [&] { return launch_step(index, attention); }));
    } else {
        attention.n_partitions = cuda::attention_partitions(index.max_context);
        SLUICE_RETURN_IF_ERROR(launch_step(index, attention));
    }
    out.n_vocab = config_.n_vocab;
    out.n_embd = d;
    out.hidden.resize(static_cast<size_t>(index.n_hidden_rows * d));
    if (!out.hidden.empty()) {
        SLUICE_CUDA_CHECK(cudaMemcpyAsync(out.hidden.data(), buffers_.h.get(),
                                          out.hidden.size() * 4, cudaMemcpyDeviceToHost, stream()));
    }
    // Synchronises the stream, after every copy back.
    SLUICE_RETURN_IF_ERROR(sample_and_copy_rows(batch, out));
    return out;
}

Status CudaBackend::sample_and_copy_rows(const ForwardBatch& batch, ForwardOutput& out) {
    const int64_t n_vocab = config_.n_vocab;
    const size_t n_seq = batch.sequences.size();
    std::vector<cuda::DeviceSampleRequest> requests;
    bool any_sorted = false;
    for (size_t s = 0; s < n_seq; ++s) {
        const DeviceSampling* ds = batch.device_sample_of(s);
        if (ds != nullptr) {
            requests.push_back({static_cast<int32_t>(out.first_row[s]), ds->temperature,
                                ds->top_k, ds->top_p, ds->min_p, ds->u});
            const bool greedy = ds->temperature == 0.0f || ds->top_k == 1;
            any_sorted = any_sorted || (!greedy && (ds->top_k > 0 || ds->top_p < 1.0f));
        }
    }
    if (!batch.device_sample.empty()) {
        out.sampled.assign(n_seq, TokenLogprob{-1, 0.0f});
    }
    std::vector<cuda::DeviceSampleResult> results(requests.size());
    if (!requests.empty()) {
        const auto n = static_cast<int64_t>(requests.size());
        SLUICE_ASSIGN_OR_RETURN(const size_t workspace,
                                cuda::sample_rows_workspace_bytes(n, n_vocab));
        const size_t header = sample_header_bytes(n);
        if (sample_buffer_.bytes() < static_cast<int64_t>(header + workspace)) {
            // forward() refused more rows than the buffer was planned for, so this is a bug.
            return Status(StatusCode::kInternal,
                          "cuda backend: device sampling of " + std::to_string(n) +
                              " rows needs " + format_bytes(static_cast<int64_t>(header + workspace)) +
                              ", the start-up plan allocated " + format_bytes(sample_buffer_.bytes()));
        }
        auto* base = sample_buffer_.as<char>();
        auto* dev_requests = reinterpret_cast<cuda::DeviceSampleRequest*>(base);
        auto* dev_results = reinterpret_cast<cuda::DeviceSampleResult*>(
            base + static_cast<size_t>(n) * sizeof(cuda::DeviceSampleRequest));
        SLUICE_CUDA_CHECK(cudaMemcpyAsync(dev_requests, requests.data(),
                                          requests.size() * sizeof(requests[0]),
                                          cudaMemcpyHostToDevice, stream()));
        SLUICE_RETURN_IF_ERROR(cuda::sample_rows(f(buffers_.logits), n_vocab, dev_requests, n,
                                                 any_sorted, base + header, workspace,
                                                 dev_results, stream()));
        SLUICE_CUDA_CHECK(cudaMemcpyAsync(results.data(), dev_results,
                                          results.size() * sizeof(results[0]),
                                          cudaMemcpyDeviceToHost, stream()));
    }
    // The rows the host still needs, packed in batch order; runs of adjacent rows in one copy.
    int64_t host_rows = 0;
    for (size_t s = 0; s < n_seq; ++s) {
        if (batch.device_sample_of(s) == nullptr) {
            host_rows += out.n_rows[s];
        }
    }
    out.logits.resize(static_cast<size_t>(host_rows * n_vocab));
    int64_t next_row = 0;
    int64_t run_src = -1;
    int64_t run_dst = 0;
    int64_t run_len = 0;
    auto flush = [&]() -> Status {
        if (run_len > 0) {
            SLUICE_CUDA_CHECK(cudaMemcpyAsync(out.logits.data() + run_dst * n_vocab,
                                              f(buffers_.logits) + run_src * n_vocab,
                                              static_cast<size_t>(run_len * n_vocab) * 4,
                                              cudaMemcpyDeviceToHost, stream()));
        }
        run_len = 0;
        return Status::ok_status();
    };
    for (size_t s = 0; s < n_seq; ++s) {
        const int64_t src = out.first_row[s];
        const int64_t count = out.n_rows[s];
        if (batch.device_sample_of(s) != nullptr) {
            out.first_row[s] = next_row;
            out.n_rows[s] = 0;
            continue;
        }
        if (count > 0) {
            if (run_len == 0 || src != run_src + run_len) {
                SLUICE_RETURN_IF_ERROR(flush());
                run_src = src;
                run_dst = next_row;
            }
            run_len += count;
        }
        out.first_row[s] = next_row;
        next_row += count;
    }
    SLUICE_RETURN_IF_ERROR(flush());
    SLUICE_CUDA_CHECK(cudaStreamSynchronize(stream()));
    size_t r = 0;
    for (size_t s = 0; s < n_seq; ++s) {
        if (batch.device_sample_of(s) != nullptr) {
            out.sampled[s] = {results[r].id, results[r].logprob};
            ++r;
        }
    }
    return Status::ok_status();
}

bool CudaBackend::decode_graph_step(const cuda::StepIndex& index) const {
    // A decode step: one token per entry (entries have at least one), one logits row each and
    // no hidden rows, so that every launch's shape follows from the token count alone.
    const int64_t n = index.n_tokens;
    // Never on a rank of a parallel plan: the staged communicator waits for the stream inside
    // every collective, which a capture cannot hold. NCCL's calls could be captured, but one
    // rule for every communicator is the simple correct one; graphs for NCCL ranks are open.
    if (comm_ != nullptr) {
        return false;
    }
    if (!graphs_enabled_ || n != index.n_seq || index.n_logit_rows != n ||
        index.n_hidden_rows != 0 || !graph_batches_.contains(n)) {
        return false;
    }
    // The tensor-core expert path synchronises inside the step to read the per-expert slot
    // counts on the host, which a capture cannot hold; graphs serve the weight-streaming path
    // (run_moe takes it below tensor_core_min_tokens, and the streaming kernels up to
    // kSkinnyExpertMaxTokens tokens), whose launches depend on the token count only.
    if (weights_.layers.empty()) {
        return false;
    }
    const cuda::DeviceDType experts = weights_.layers.front().w1.type;
    return n <= cuda::kSkinnyExpertMaxTokens && n < cuda::tensor_core_min_tokens(experts);
}

Status CudaBackend::launch_step(const cuda::StepIndex& index, const AttentionLaunch& attention) {
    const int64_t d = config_.d_model;
    const int32_t* dev_index = index_.as<int32_t>();
    SLUICE_RETURN_IF_ERROR(cuda::embed_tokens(weights_.embedding.buffer.get(),
                                              weights_.embedding.type, dev_index + index.tokens(),
                                              index.n_tokens, d, f(buffers_.x), stream()));
    for (int64_t l = 0; l < config_.n_layer; ++l) {
        SLUICE_RETURN_IF_ERROR(run_layer(l, index, dev_index, attention));
    }
    // Final norm of the requested rows: hidden rows into h, logits rows into attn, then lm_head.
    const float* norm_f = f(weights_.norm_f);
    SLUICE_RETURN_IF_ERROR(cuda::layer_norm(f(buffers_.x), dev_index + index.hidden_rows(), norm_f,
                                            index.n_hidden_rows, d, config_.norm_eps, f(buffers_.h),
                                            stream()));
    SLUICE_RETURN_IF_ERROR(cuda::layer_norm(f(buffers_.x), dev_index + index.logit_rows(), norm_f,
                                            index.n_logit_rows, d, config_.norm_eps,
                                            f(buffers_.attn), stream()));
    return lm_head(index.n_logit_rows);
}

Status CudaBackend::lm_head(int64_t n_rows) {
    const int64_t n_vocab = config_.n_vocab;
    if (comm_ == nullptr) {
        return dense_.run({weights_.lm_head.view(), 0, n_vocab, f(buffers_.attn), n_rows,
                           f(buffers_.logits), n_vocab, 0.0f},
                          stream());
    }
    if (n_rows == 0) {
        return Status::ok_status();  // the same on every rank: the step's rows are shared
    }
    // Vocabulary-parallel, as the CPU plan: each rank projects onto its rows, padded to the
    // largest share so the all-gather moves equal blocks [n_rows, padded]; every rank then lays
    // the blocks side by side into the full logits rows.
    const int n_ranks = comm_->size();
    const int64_t padded = (n_vocab + n_ranks - 1) / n_ranks;
    SLUICE_RETURN_IF_ERROR(dense_.run({weights_.lm_head.view(), 0, shard_.n_vocab, f(buffers_.attn),
                                       n_rows, f(vocab_local_), padded, 0.0f},
                                      stream()));
    SLUICE_RETURN_IF_ERROR(
        comm_->all_gather(f(vocab_local_), f(vocab_gathered_), n_rows * padded, DType::kF32));
    for (int r = 0; r < n_ranks; ++r) {
        const Split vocab = split_evenly(n_vocab, r, n_ranks);
        if (vocab.count == 0) {
            continue;
        }
        SLUICE_CUDA_CHECK(
            cudaMemcpy2DAsync(f(buffers_.logits) + vocab.begin, static_cast<size_t>(n_vocab) * 4,
                              f(vocab_gathered_) + r * n_rows * padded,
                              static_cast<size_t>(padded) * 4, static_cast<size_t>(vocab.count) * 4,
                              static_cast<size_t>(n_rows), cudaMemcpyDeviceToDevice, stream()));
    }
    return Status::ok_status();
}

Status CudaBackend::run_layer(int64_t l, const cuda::StepIndex& index, const int32_t* dev_index,
                              const AttentionLaunch& attention_launch) {
    const cuda::DeviceLayer& layer = weights_.layers[static_cast<size_t>(l)];
    const int64_t d = config_.d_model;
    const int64_t n_tokens = index.n_tokens;
    const int64_t layer_offset =
        l * static_cast<int64_t>(spec_.n_blocks) * spec_.block_size * kv_width();
    SLUICE_RETURN_IF_ERROR(cuda::layer_norm(f(buffers_.x), nullptr, f(layer.norm_1), n_tokens, d,
                                            config_.norm_eps, f(buffers_.h), stream()));
    SLUICE_RETURN_IF_ERROR(dense_.run({layer.wqkv.view(), 0, qkv_width(), f(buffers_.h), n_tokens,
                                       f(buffers_.qkv), qkv_width(), 0.0f},
                                      stream()));
    cuda::QkvRopeArgs rope;
    rope.qkv = f(buffers_.qkv);
    rope.positions = dev_index + index.positions();
    rope.token_seq = dev_index + index.token_seq();
    rope.table_offset = dev_index + index.table_offset();
    rope.block_tables = dev_index + index.block_tables();
    rope.inv_freq = f(buffers_.inv_freq);
    rope.k_cache = k_cache_.as<float>() + layer_offset;
    rope.v_cache = v_cache_.as<float>() + layer_offset;
    rope.n_tokens = n_tokens;
    rope.n_head = shard_.n_head;
    rope.n_head_kv = shard_.n_head_kv;
    rope.head_dim = config_.head_dim();
    rope.block_size = spec_.block_size;
    rope.clip = config_.clip_qkv.has_value();
    rope.clip_value = config_.clip_qkv.value_or(0.0f);
    SLUICE_RETURN_IF_ERROR(cuda::qkv_clamp_rope_kv_write(rope, stream()));

    cuda::AttentionArgs attention;
    attention.qkv = f(buffers_.qkv);
    attention.k_cache = rope.k_cache;
    attention.v_cache = rope.v_cache;
    attention.positions = rope.positions;
    attention.token_seq = rope.token_seq;
    attention.table_offset = rope.table_offset;
    attention.block_tables = rope.block_tables;
    attention.out = f(buffers_.attn);
    attention.n_tokens = n_tokens;
    attention.n_head = shard_.n_head;
    attention.n_head_kv = shard_.n_head_kv;
    attention.head_dim = config_.head_dim();
    attention.block_size = spec_.block_size;
    if (attention_rep_ != 0) {
        attention.head_begin = shard_.head_begin;
        attention.kv_head_begin = shard_.kv_head_begin;
        attention.n_rep = attention_rep_;
    }
    if (attention_launch.kernel == cuda::AttentionKernel::kSplitK) {
        const cuda::SplitKWorkspace workspace{f(buffers_.attn_partials),
                                              buffers_.attn_partials.bytes() / 4};
        SLUICE_RETURN_IF_ERROR(cuda::paged_attention_split_k(
            attention, attention_launch.n_partitions, workspace, stream()));
    } else {
        SLUICE_RETURN_IF_ERROR(cuda::paged_attention(attention, stream()));
    }
    // x += attn · out_projᵀ; on a rank, its heads' partial sum, summed over the ranks.
    SLUICE_RETURN_IF_ERROR(dense_.run({layer.out_proj.view(), 0, d, f(buffers_.attn), n_tokens,
                                       f(buffers_.x), d, adds_residual() ? 1.0f : 0.0f},
                                      stream()));
    SLUICE_RETURN_IF_ERROR(all_reduce_x(n_tokens));
    SLUICE_RETURN_IF_ERROR(cuda::layer_norm(f(buffers_.x), nullptr, f(layer.norm_2), n_tokens, d,
                                            config_.norm_eps, f(buffers_.h), stream()));
    return run_moe(layer, n_tokens);
}

Status CudaBackend::run_moe(const cuda::DeviceLayer& layer, int64_t n_tokens) {
    const int64_t d = config_.d_model;
    const int64_t k = config_.n_expert_used;
    const int64_t n_expert = config_.n_expert;
    SLUICE_RETURN_IF_ERROR(dense_.run({layer.router.view(), 0, n_expert, f(buffers_.h), n_tokens,
                                       f(buffers_.router_logits), n_expert, 0.0f},
                                      stream()));
    if (shard_.expert_parallel) {
        return run_moe_expert_parallel(layer, n_tokens);
    }
    auto* experts = buffers_.route_experts.as<int32_t>();
    SLUICE_RETURN_IF_ERROR(cuda::route_top_k(f(buffers_.router_logits), n_tokens, n_expert, k,
                                             config_.expert_weights_norm_p, experts,
                                             f(buffers_.route_weights), stream()));
    const cuda::Permutation perm{buffers_.offsets.as<int32_t>(), buffers_.pair_slot.as<int32_t>(),
                                 buffers_.slot_token.as<int32_t>()};
    SLUICE_RETURN_IF_ERROR(cuda::permute_by_expert(
        experts, n_tokens, k, n_expert, perm, f(buffers_.h), d, f(buffers_.x_sorted), stream()));
    const cuda::ExpertShape shape{n_expert, d, shard_.n_ff, n_tokens * k, n_tokens};
    // The norm above was the last reader of x: a rank other than 0 now gathers only its
    // experts' partial sums there (adds_residual).
    if (!adds_residual()) {
        SLUICE_CUDA_CHECK(
            cudaMemsetAsync(f(buffers_.x), 0, static_cast<size_t>(n_tokens * d) * 4, stream()));
    }
    SLUICE_RETURN_IF_ERROR(
        run_experts(layer, f(buffers_.x_sorted), perm.offsets, shape, f(buffers_.expert_out)));
    SLUICE_RETURN_IF_ERROR(cuda::unpermute_add(f(buffers_.expert_out), perm.pair_slot, experts,
                                               f(buffers_.route_weights), n_tokens, k, d,
                                               f(buffers_.x), stream()));
    return all_reduce_x(n_tokens);
}

Status CudaBackend::run_experts(const cuda::DeviceLayer& layer, const float* x_sorted,
                                const int32_t* offsets, const cuda::ExpertShape& shape, float* y) {
    const bool int4 = layer.w1.type == cuda::DeviceDType::kInt4;
    const cuda::ExpertWeights weights{layer.w1.buffer.get(),
                                      layer.v1.buffer.get(),
                                      layer.w2.buffer.get(),
                                      int4 ? nullptr : layer.w1.scale_data(),
                                      int4 ? nullptr : layer.v1.scale_data(),
                                      int4 ? nullptr : layer.w2.scale_data(),
                                      layer.w1.type,
                                      int4 ? layer.w1.scales.as<uint16_t>() : nullptr,
                                      int4 ? layer.v1.scales.as<uint16_t>() : nullptr,
                                      int4 ? layer.w2.scales.as<uint16_t>() : nullptr,
                                      layer.w1.group_size};
    const cuda::Int4MmaStaging staging{buffers_.int4_staging.as<uint32_t>(),
                                       buffers_.int4_staging_words};
    if (int4 && int4_mma_enabled_ && cuda::int4_mma_fits(weights, shape, staging)) {
        SLUICE_RETURN_IF_ERROR(cuda::int4_mma_gate_up(x_sorted, offsets, weights, shape,
                                                      glu_activation(), staging, f(buffers_.act),
                                                      stream()));
        return cuda::int4_mma_down(f(buffers_.act), offsets, weights, shape, staging, y, stream());
    }
    if (shape.n_tokens >= cuda::tensor_core_min_tokens(weights.type)) {
        const cuda::ExpertTcScratch scratch{f(buffers_.up), buffers_.act_hi.get(),
                                            buffers_.act_lo.get(), buffers_.act_hi.bytes() / 2,
                                            buffers_.host_offsets.get()};
        return cuda::grouped_experts_tc(tensor_cores_, scratch, x_sorted, offsets, weights, shape,
                                        glu_activation(), f(buffers_.act), y, stream());
    }
    SLUICE_RETURN_IF_ERROR(cuda::expert_gate_up(x_sorted, offsets, weights, shape, glu_activation(),
                                                f(buffers_.act), stream()));
    const cuda::DownSplit split{f(buffers_.down_partial), buffers_.down_partial_slots};
    return cuda::expert_down(f(buffers_.act), offsets, weights, shape, split, y, stream());
}

Status CudaBackend::run_moe_expert_parallel(const cuda::DeviceLayer& layer, int64_t n_tokens) {
    cuda::ExpertParallelLayer step;
    step.config = &config_;
    step.shard = &shard_;
    step.expert_comm = grid_expert_comm_ != nullptr ? grid_expert_comm_.get() : comm_.get();
    step.tensor_comm = grid_tensor_comm_.get();
    step.buffers = &buffers_;
    step.exchange = &exchange_;
    step.run_experts = [this, &layer](const float* x_sorted, const int32_t* offsets,
                                      const cuda::ExpertShape& shape, float* y) {
        return run_experts(layer, x_sorted, offsets, shape, y);
    };
    step.stream = stream();
    return cuda::expert_parallel_moe(step, n_tokens);
}

}  // namespace sluice::inference::cuda
