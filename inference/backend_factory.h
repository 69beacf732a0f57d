#pragma once
// Choosing and opening a backend: `cpu`, `cuda`, or `auto` (CUDA when this build has it and a
// GPU is visible, else the CPU).
//
// A request for `cuda` on a machine (or build) without a visible GPU falls back to the CPU
// backend and logs why; it never fails for that reason alone. A GPU that is there but cannot
// hold the model is an error (kResourceExhausted from open_cuda_backend), not a fallback: the
// operator asked for the GPU and should learn that it is too small.
//
// `parallel` selects the parallel plan (parallel_config.h); it is validated before anything is
// opened.
//
// Thread safety: free functions.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/result.h"
#include "inference/backend.h"
#include "inference/parallel_config.h"
#include "inference/step_relay.h"

namespace sluice::inference {

enum class BackendKind { kAuto, kCpu, kCuda };

// "auto" | "cpu" | "cuda"; nullopt otherwise.
std::optional<BackendKind> parse_backend_kind(const std::string& name);

struct BackendOptions {
    BackendKind kind = BackendKind::kAuto;
    WeightFormat weights = WeightFormat::kAsStored;
    int n_threads = 0;                // CPU backend threads; 0: every hardware thread
    int64_t max_batch_tokens = 2048;  // CUDA backend: tokens per step
    int64_t max_sequences = 64;       // CUDA backend: rows sampled on the device per step (the
                                      // scheduler's max_running)
    // More than one rank: the parallel plans (docs/parallel.md), on the CPU in one process, on
    // the CUDA backend over the GPUs of one or several nodes.
    ParallelConfig parallel{};
    bool cuda_graphs = true;  // CUDA backend: CudaBackendOptions::decode_graphs
};

// The backend `options.kind` resolves to on this machine: kCpu or kCuda, never kAuto.
BackendKind resolve_backend_kind(BackendKind kind);

Result<std::unique_ptr<Backend>> open_backend(const std::string& model_dir,
                                              const BackendOptions& options);

// Node k > 0 of an engine spanning several nodes (options.parallel.nodes and .node): this node's
// ranks, which follow node 0's steps once run() (step_relay.h). open_cuda_follower's or
// open_cpu_follower's errors.
Result<std::unique_ptr<StepFollower>> open_follower(const std::string& model_dir,
                                                    const BackendOptions& options);

}  // namespace sluice::inference
