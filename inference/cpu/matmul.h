#pragma once
// Matrix products of activations with weight matrices: y = x · W[rows]ᵀ.
//
// Few tokens (decode batches, and the token groups routed to one expert) take the row-dot
// kernels (kernels.h) spread over the thread pool by blocks of weight rows, so weights stream
// from memory once and bf16/int8 are widened in registers. Many tokens (prefill) take OpenBLAS
// sgemm, one single-threaded call per panel of weight rows spread over the same pool: directly
// on f32 weights, and on panels of bf16/int8 weights widened to fp32 first, so the widening
// cost is shared by all tokens of the step.
//
// matmul_grouped runs several independent products (one per expert) as one parallel loop, so
// that a decode step's experts do not each pay a thread wake-up.
//
// Thread safety: a Matmul is owned by the backend's thread; it uses the pool inside calls.

#include <cstdint>
#include <span>
#include <vector>

#include "inference/cpu/thread_pool.h"
#include "inference/cpu/weights.h"

namespace sluice::inference::cpu {

struct MatmulJob {
    const WeightMatrix* weights = nullptr;
    int64_t row_begin = 0;  // first weight row (output channel) used
    int64_t n_rows = 0;     // output channels
    const float* x = nullptr;  // [m, weights->cols()]
    int64_t m = 0;
    float* y = nullptr;  // [m, n_rows], row stride n_rows
};

class Matmul {
public:
    // Sets OpenBLAS to one thread for the whole process: the pool parallelises sgemm by panels.
    explicit Matmul(ThreadPool* pool);

    // From this many tokens on, a product goes to sgemm.
    static constexpr int64_t kBlasMinTokens = 64;

    void run(const MatmulJob& job);
    void run_grouped(std::span<const MatmulJob> jobs);

private:
    void run_blas(const MatmulJob& job);

    ThreadPool* pool_;
};

}  // namespace sluice::inference::cpu
