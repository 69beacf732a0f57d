#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <algorithm>

#include "inference/cuda/dense.cuh"
#include "inference/cuda/skinny.cuh"
#include "inference/cuda/tensor_core.cuh"

namespace sluice::inference::cuda {

namespace {

__global__ void widen_kernel(const __nv_bfloat16* __restrict__ src, int64_t count,
                             float* __restrict__ dst) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
         i += stride) {
        dst[i] = __bfloat162float(src[i]);
    }
}

__global__ void widen_fp8_kernel(const __nv_fp8_e4m3* __restrict__ src,
                                 const float* __restrict__ scales, int64_t count, int64_t cols,
                                 float* __restrict__ dst) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
         i += stride) {
        dst[i] = static_cast<float>(src[i]) * scales[i / cols];
    }
}

// Column-major view of the row-major product: yᵀ[n, m] = W[n, k] · xᵀ[k, m], so cuBLAS sees W
// as a transposed [k, n] matrix and x and y as they lie.
Status sgemm(cublasHandle_t handle, const float* w, int64_t n, int64_t k, const float* x, int64_t m,
             float* y, int64_t ldy, float beta) {
    const float alpha = 1.0f;
    SLUICE_CUDA_CHECK(cublasSgemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n),
                                  static_cast<int>(m), static_cast<int>(k), &alpha, w,
                                  static_cast<int>(k), x, static_cast<int>(k), &beta, y,
                                  static_cast<int>(ldy)));
    return Status::ok_status();
}

}  // namespace

Status widen_bf16(const void* src, int64_t count, float* dst, cudaStream_t stream) {
    if (count <= 0) {
        return Status::ok_status();
    }
    const auto blocks = static_cast<unsigned>(std::min<int64_t>((count + 255) / 256, 65535));
    widen_kernel<<<blocks, 256, 0, stream>>>(static_cast<const __nv_bfloat16*>(src), count, dst);
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

Status widen_fp8_rows(const void* src, const float* scales, int64_t rows, int64_t cols, float* dst,
                      cudaStream_t stream) {
    const int64_t count = rows * cols;
    if (count <= 0) {
        return Status::ok_status();
    }
    const auto blocks = static_cast<unsigned>(std::min<int64_t>((count + 255) / 256, 65535));
    widen_fp8_kernel<<<blocks, 256, 0, stream>>>(static_cast<const __nv_fp8_e4m3*>(src), scales,
                                                 count, cols, dst);
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

Status DenseMatmul::run(const DenseJob& job, cudaStream_t stream) {
    const DenseWeight& w = job.weight;
    if (job.m == 0 || job.n_rows == 0) {
        return Status::ok_status();
    }
    if (job.row_begin < 0 || job.row_begin + job.n_rows > w.rows || job.ldy < job.n_rows ||
        job.m < 0) {
        return invalid_argument("dense matmul: rows [" + std::to_string(job.row_begin) + ", " +
                                std::to_string(job.row_begin + job.n_rows) + ") of " +
                                std::to_string(w.rows));
    }
    const int64_t k = w.cols;
    if (w.type == DeviceDType::kF8E4M3 && w.scales == nullptr) {
        return invalid_argument("dense matmul: an fp8 weight without its row scales");
    }
    if (skinny_row_fits(w.data, w.type, k) && reinterpret_cast<uintptr_t>(job.x) % 16 == 0) {
        if (job.m <= kSkinnyMaxTokens) {
            return skinny_dense(job, stream);
        }
        // fp8 below its tensor-core threshold streams its weights once per kSkinnyMaxTokens
        // tokens: at most 4 bytes read per weight for 32 tokens, where widening to an fp32 panel
        // for SGEMM reads and writes 9 and multiplies in fp32.
        if (w.type == DeviceDType::kF8E4M3 && job.m < tensor_core_min_tokens(w.type)) {
            for (int64_t first = 0; first < job.m; first += kSkinnyMaxTokens) {
                DenseJob part = job;
                part.x = job.x + first * k;
                part.m = std::min(kSkinnyMaxTokens, job.m - first);
                part.y = job.y + first * job.ldy;
                SLUICE_RETURN_IF_ERROR(skinny_dense(part, stream));
            }
            return Status::ok_status();
        }
    }
    // Past the skinny kernels, bf16 weights always gain on the tensor cores (4 bytes read per
    // weight for hi and lo against 10 through an fp32 panel); fp8 only from its threshold.
    const bool tensor_core_step =
        w.type == DeviceDType::kBF16 ||
        (w.type == DeviceDType::kF8E4M3 && job.m >= tensor_core_min_tokens(w.type));
    if (tensor_cores_ != nullptr && tensor_core_step &&
        job.m * k <= tensor_cores_->scratch().max_values) {
        return tensor_cores_->dense(job, stream);
    }
    if (w.type == DeviceDType::kF32) {
        return sgemm(handle_, static_cast<const float*>(w.data) + job.row_begin * k, job.n_rows, k,
                     job.x, job.m, job.y, job.ldy, job.beta);
    }
    const int64_t panel_rows = std::min(job.n_rows, panel_floats_ / k);
    if (panel_rows <= 0) {
        return invalid_argument("dense matmul: a weight row of " + std::to_string(k) +
                                " values does not fit the widening panel");
    }
    const auto* base = static_cast<const char*>(w.data);
    const int64_t element = device_dtype_size(w.type);
    for (int64_t r = 0; r < job.n_rows; r += panel_rows) {
        const int64_t rows = std::min(panel_rows, job.n_rows - r);
        const int64_t first = job.row_begin + r;
        if (w.type == DeviceDType::kF8E4M3) {
            SLUICE_RETURN_IF_ERROR(widen_fp8_rows(base + first * k * element, w.scales + first,
                                                  rows, k, panel_, stream));
        } else {
            SLUICE_RETURN_IF_ERROR(
                widen_bf16(base + first * k * element, rows * k, panel_, stream));
        }
        SLUICE_RETURN_IF_ERROR(
            sgemm(handle_, panel_, rows, k, job.x, job.m, job.y + r, job.ldy, job.beta));
    }
    return Status::ok_status();
}

}  // namespace sluice::inference::cuda
