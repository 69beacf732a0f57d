#pragma once
// The CUDA backend: DBRX on one NVIDIA GPU, the same Backend contract and results as the CPU
// backend (backend.h, cpu_backend.h).
//
// Weights live on the device as bf16, f32 or fp8 E4M3 with per-channel scales (quantised at
// load; int8 is the CPU backend's only); all math is fp32. Steps of few tokens (decode) stream
// every weight once through the backend's own products (cuda/skinny.cuh); larger ones go to
// cuBLAS in fp32 (bf16 and fp8 weights are widened panel by panel into an fp32 workspace first,
// as the CPU backend's sgemm path does) and to tiled expert kernels. LayerNorm, the fused QKV
// clamp + RoPE + KV-cache write, routing, the permutation by expert and attention are the
// backend's own kernels (inference/cuda/); attention switches to split-K for few tokens over long
// contexts (cuda/attention_split_k.cuh). One stream carries a step; the only host wait is the copy
// of its results. Decode steps of common sizes replay CUDA graphs (decode_graphs below).
//
// Memory plan: open_cuda_backend computes the bytes of weights, activations for
// `max_batch_tokens` tokens, workspace and the device-sampling workspace for `max_sampled_rows`
// rows, logs them, and refuses with kResourceExhausted before allocating when they exceed the
// device's free memory; it then allocates all of them, so that no step allocates.
// configure_kv_cache does the same for the KV cache's blocks.
//
// Errors: those of load_model_config, Checkpoint::open and check_dbrx_checkpoint;
// kInvalidArgument for int8 weights or a non-positive max_batch_tokens or max_sampled_rows;
// kUnavailable when the
// device cannot be used; kNotSupported in a build without CUDA; kResourceExhausted as above.
// forward() also returns kInvalidArgument for a batch of more than max_batch_tokens tokens or
// more than max_sampled_rows entries sampled on the device (device_sample_capacity()).
// Thread safety: see backend.h (owned by one thread).

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "inference/backend.h"
#include "inference/parallel_config.h"
#include "inference/step_relay.h"

namespace sluice::inference {

struct CudaBackendOptions {
    WeightFormat weights = WeightFormat::kAsStored;  // kAsStored, kF32, kBF16, kF8E4M3, kInt4
    int device = 0;
    int64_t max_batch_tokens = 2048;  // new tokens per step the activation buffers hold
    // Rows one step may sample on the device (backend.h): the sampling workspace is sized for
    // this many at start-up. The scheduler's max_running is the natural value; clamped to
    // max_batch_tokens, since a step has at most one sampled row per token.
    int64_t max_sampled_rows = 64;
    // kInt4 quantising at load: values per fp16 scale along the reduction dimension (a multiple
    // of 32 dividing d_model and ffn_hidden_size). An int4 checkpoint keeps its own.
    int64_t int4_group_size = 128;
    // CUDA graphs for decode steps (cuda/decode_graphs.h): a step whose entries each add one
    // token, ask for their last logits row and no hidden states, and whose token count is in
    // decode_graph_batches replays a graph (captured on that shape's second step, after one
    // eager step has loaded its kernels) instead of launching every kernel from the host. Only
    // steps on the weight-streaming expert path (at most 32 tokens, and fewer than the tensor-core
    // threshold of the expert weights) are captured: the tensor-core path reads slot counts on the
    // host inside the step. Results are bit-identical with and without graphs. Sizes outside 1 ..
    // 32 are kInvalidArgument.
    bool decode_graphs = true;
    std::vector<int64_t> decode_graph_batches = {1, 2, 4, 8, 16, 32};
    // Split-K attention where choose_attention_kernel (cuda/attention_split_k.cuh) picks it;
    // false: always the one-pass kernel, for comparisons.
    bool split_k_attention = true;
    // int4 experts of steps of at most 128 tokens on the tensor cores through mma.sync
    // (cuda/int4_mma.cuh) where their group size is a multiple of 128; otherwise, and when
    // false, on the CUDA-core kernels (cuda/int4_experts.cuh) up to 32 tokens and bf16 panels
    // on cuBLAS beyond. Off by default: the other kernels are the ones measured on a GPU
    // (docs/benchmarks.md).
    bool int4_mma_experts = false;
    // The parallel plan over `parallel` (docs/parallel.md): the tensor plan, the expert plan or
    // the tensor x expert grid, one worker thread and one backend per rank, each holding its
    // shard (device_weights.h); this node's rank i runs on visible GPU i (`device` is then
    // unused) and the ranks of every node are joined by NCCL. Across nodes, node 0 runs the
    // engine (open_cuda_backend) and the others follow it (open_cuda_follower). Refused: fewer
    // visible GPUs than this node's ranks (kUnavailable). Decode graphs are off on parallel
    // ranks.
    ParallelConfig parallel{};
    // Tests and debugging only: every rank on `device`, joined by the staging communicator
    // (cuda/staged_communicator.h), since NCCL cannot put two ranks on one GPU. Every collective
    // then waits for the device and crosses host memory: correct, and slow.
    bool ranks_share_device = false;
};

// What the decode graphs of a CUDA backend have done.
struct CudaGraphCounts {
    int64_t captures = 0;  // graphs captured since the backend opened
    int64_t steps = 0;     // steps run through a graph
    int64_t held = 0;      // graphs held now
};

Result<std::unique_ptr<Backend>> open_cuda_backend(const std::string& model_dir,
                                                   const CudaBackendOptions& options = {});

// Node k > 0 of an engine spanning several nodes (options.parallel.nodes, .node): loads this
// node's shards and joins the group; run() then follows node 0's steps (step_relay.h).
// kFailedPrecondition on node 0 or a single node; open_cuda_backend's other errors.
Result<std::unique_ptr<StepFollower>> open_cuda_follower(const std::string& model_dir,
                                                         const CudaBackendOptions& options);

// The same backend over random weights of `config`'s shapes made on the device (uniform,
// standard deviation 0.02, norms 1; bf16 unless options.weights says f32 or fp8), for
// benchmarks at sizes no checkpoint at hand has. kInvalidArgument for a config that
// parse_model_config would refuse.
Result<std::unique_ptr<Backend>> open_cuda_backend_random(const ModelConfig& config,
                                                          const CudaBackendOptions& options,
                                                          uint64_t seed);

// Turns decode graphs on or off on a backend from open_cuda_backend*; off drops the graphs held.
// kInvalidArgument for another backend, kNotSupported in a build without CUDA.
Status set_cuda_decode_graphs(Backend& backend, bool enabled);

// Sets CudaBackendOptions::split_k_attention on a backend from open_cuda_backend*; errors as
// above.
Status set_cuda_split_k_attention(Backend& backend, bool enabled);

// Sets CudaBackendOptions::int4_mma_experts on a backend from open_cuda_backend* (dropping its
// decode graphs, which hold the kernels chosen); errors as above.
Status set_cuda_int4_mma_experts(Backend& backend, bool enabled);

// The decode-graph counts of a backend from open_cuda_backend*; errors as above.
Result<CudaGraphCounts> cuda_decode_graph_counts(const Backend& backend);

}  // namespace sluice::inference
