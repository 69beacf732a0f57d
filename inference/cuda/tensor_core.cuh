#pragma once
// Products of many tokens on the tensor cores, with fp32-grade results.
//
// Tensor cores multiply bf16 by bf16 and sum in fp32. The weights are bf16 already (fp8 widens to
// bf16 exactly, and its scale is applied to the output), but the activations are fp32: each is
// split into two bf16 terms, hi = bf16(x) and lo = bf16(x - hi), and x · Wᵀ is computed as
// hi · Wᵀ + lo · Wᵀ. hi + lo carries 16 bits of mantissa, so the product is within about 1e-5
// of the fp32 one (the parity tests hold the same 1e-4 as the fp32 path), for twice the
// arithmetic, which many-token steps have to spare: their time is still mostly weight bytes.
//
//   split_bf16          x (fp32) -> hi, lo (bf16)
//   TensorCoreGemm      y = beta · y + x · op(W), W bf16 in device memory, x given as hi/lo;
//                       fp8 weights are first widened, scale folded in, into a bf16 panel and
//                       multiplied panel by panel; int4 experts likewise (q · group scale,
//                       rounded to bf16: the values the CPU backend widens them to).
//   grouped_experts_tc  the experts of a many-token step (moe.cuh): one host read of the
//                       per-expert slot counts, then for each expert with slots the gate and up
//                       products, the GLU over all slots, and the down product.
//
// Thread safety: owned by the backend's thread; launches on the handle's stream.

#include <cstdint>

#include "inference/cuda/cuda_check.h"
#include "inference/cuda/dense.cuh"
#include "inference/cuda/moe.cuh"

namespace sluice::inference::cuda {

// hi[i] = bf16(x[i]), lo[i] = bf16(x[i] - hi[i]) (round to nearest even).
Status split_bf16(const float* x, int64_t count, void* hi, void* lo, cudaStream_t stream);

// The fewest tokens a step has for its expert products of `type` weights to go to the tensor
// cores (bf16 above 16, fp8 and int4 above 32 — int4's not yet measured; f32 never); dense fp8 products follow the same bound, dense
// bf16 ones take the tensor cores from 9 tokens (dense.cuh). Measured on an H200 at DBRX's sizes
// (docs/benchmarks.md): bf16 at 32 tokens 16.0 ms per 4-layer step on the tensor cores against
// 22.7 ms weight-streaming; fp8 at 32 tokens 25.5 ms streaming (experts) and widening to fp32
// (dense) against 99 ms on the tensor cores through bf16 panels, at 128 tokens 84 ms against
// 92 ms tiled.
int64_t tensor_core_min_tokens(DeviceDType type);

// Device scratch of the tensor-core path, sized by the memory plan.
struct TensorCoreScratch {
    void* x_hi = nullptr;  // bf16 [max_values]
    void* x_lo = nullptr;
    int64_t max_values = 0;
    void* panel = nullptr;  // bf16 [panel_values]: fp8 weights widened for one product
    int64_t panel_values = 0;
};

// What the grouped experts add: the up product of every slot ([n_slots, n_ff] fp32), the
// activation as hi/lo bf16 ([n_slots, n_ff] each), and the per-expert offsets on the host.
struct ExpertTcScratch {
    float* up = nullptr;
    void* act_hi = nullptr;
    void* act_lo = nullptr;
    int64_t max_act_values = 0;
    int32_t* host_offsets = nullptr;  // pinned, [n_expert + 1]
};

class TensorCoreGemm {
public:
    TensorCoreGemm(cublasHandle_t handle, const TensorCoreScratch& scratch)
        : handle_(handle), scratch_(scratch) {}

    // y[m, n] (+)= x[m, k] · W[rows]ᵀ for a dense weight (DenseJob's contract; job.x is split
    // here). bf16 or fp8 weights.
    Status dense(const DenseJob& job, cudaStream_t stream) const;

    // C[m, n] = beta · C + (hi + lo)[m, k] · op(W): W row-major bf16, either [n, k] (as x · Wᵀ)
    // or [k, n] (as x · W); x rows `ldx` values apart, C rows `ldc` apart.
    Status product(const void* w, bool w_is_n_by_k, int64_t n, int64_t k, const void* x_hi,
                   const void* x_lo, int64_t ldx, int64_t m, float* c, int64_t ldc,
                   float beta) const;

    const TensorCoreScratch& scratch() const { return scratch_; }

private:
    cublasHandle_t handle_;
    TensorCoreScratch scratch_;
};

// The grouped expert products of moe.cuh on the tensor cores: act = f(x·w1_eᵀ) ⊙ (x·v1_eᵀ),
// y = act · w2_e for each expert's slots. Synchronises the stream once, to read the offsets.
// `act` is [n_slots, n_ff] fp32 scratch, y [n_slots, d_model].
Status grouped_experts_tc(const TensorCoreGemm& gemm, const ExpertTcScratch& scratch,
                          const float* x_sorted, const int32_t* offsets,
                          const ExpertWeights& weights, const ExpertShape& shape,
                          GluActivation activation, float* act, float* y, cudaStream_t stream);

}  // namespace sluice::inference::cuda
