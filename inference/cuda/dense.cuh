#pragma once
// Dense products with weight matrices, fp32 math: y = x · W[rows]ᵀ (+ beta · y).
//
// Steps of at most kSkinnyMaxTokens tokens stream the weight once through skinny_dense
// (skinny.cuh); fp8 weights below their tensor-core threshold stream it once per
// kSkinnyMaxTokens tokens. Larger ones with bf16 or fp8 weights go to the tensor cores with the
// activations split into two bf16 terms (tensor_core.cuh) when the object has a TensorCoreGemm.
// Otherwise
// cuBLAS in fp32: it multiplies only matching input types, and the activations stay fp32 for
// parity with the CPU backend; so a bf16 or fp8 weight is widened (fp8 times its row scale) into
// an fp32 panel of rows first and multiplied panel by panel (the CPU backend's sgemm path does
// the same). The pedantic math mode keeps cuBLAS from substituting TF32.
//
// Thread safety: owned by the backend's thread.

#include <cstdint>

#include "inference/cuda/cuda_check.h"

namespace sluice::inference::cuda {

struct DenseWeight {
    const void* data = nullptr;  // [rows, cols] row-major
    DeviceDType type = DeviceDType::kF32;
    int64_t rows = 0;
    int64_t cols = 0;
    const float* scales = nullptr;  // [rows]: fp8's scale per row (output channel); else null
};

struct DenseJob {
    DenseWeight weight;
    int64_t row_begin = 0;     // first weight row (output channel) used
    int64_t n_rows = 0;        // output channels
    const float* x = nullptr;  // [m, cols]
    int64_t m = 0;
    float* y = nullptr;  // [m, ldy], columns 0 .. n_rows written
    int64_t ldy = 0;
    float beta = 0.0f;  // 1: accumulate into y (a residual add)
};

class TensorCoreGemm;

class DenseMatmul {
public:
    // `panel` holds `panel_floats` fp32 values of device memory the object may overwrite;
    // `tensor_cores`, when given, takes the many-token products of bf16 and fp8 weights.
    DenseMatmul(cublasHandle_t handle, float* panel, int64_t panel_floats,
                const TensorCoreGemm* tensor_cores = nullptr)
        : handle_(handle), panel_(panel), panel_floats_(panel_floats),
          tensor_cores_(tensor_cores) {}

    // Runs on the stream `handle` is bound to.
    Status run(const DenseJob& job, cudaStream_t stream);

private:
    cublasHandle_t handle_;
    float* panel_;
    int64_t panel_floats_;
    const TensorCoreGemm* tensor_cores_;
};

// Widens `count` bf16 values to fp32 (device pointers).
Status widen_bf16(const void* src, int64_t count, float* dst, cudaStream_t stream);

// Widens `rows` rows of `cols` fp8 E4M3 values to fp32, each row times its scale.
Status widen_fp8_rows(const void* src, const float* scales, int64_t rows, int64_t cols, float* dst,
                      cudaStream_t stream);

}  // namespace sluice::inference::cuda
