#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "inference/cuda/device_math.cuh"
#include "inference/cuda/tensor_core.cuh"

namespace sluice::inference::cuda {

namespace {

unsigned grid_for(int64_t count) {
    return static_cast<unsigned>(std::min<int64_t>((count + 255) / 256, 65535));
}

__global__ void split_kernel(const float* __restrict__ x, int64_t count,
                             __nv_bfloat16* __restrict__ hi, __nv_bfloat16* __restrict__ lo) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
         i += stride) {
        const float v = x[i];
        const __nv_bfloat16 h = __float2bfloat16_rn(v);
        hi[i] = h;
        lo[i] = __float2bfloat16_rn(v - __bfloat162float(h));
    }
}

// dst[r][c] = bf16(q[r][c] · scale), the scale per row (row_scales) or per column.
__global__ void widen_fp8_bf16_kernel(const __nv_fp8_e4m3* __restrict__ src,
                                      const float* __restrict__ row_scales,
                                      const float* __restrict__ col_scales, int64_t count,
                                      int64_t cols, __nv_bfloat16* __restrict__ dst) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
         i += stride) {
        const float scale = row_scales != nullptr ? row_scales[i / cols] : col_scales[i % cols];
        dst[i] = __float2bfloat16_rn(static_cast<float>(src[i]) * scale);
    }
}

// dst[r][2j], dst[r][2j + 1] = bf16(q · scale) of byte j of row r of int4 codes, the scale of the
// value's group (inference/int4_weights.h): the values the CPU backend widens a checkpoint to.
__global__ void widen_int4_bf16_kernel(const uint8_t* __restrict__ codes,
                                       const __half* __restrict__ scales, int64_t n_bytes,
                                       int64_t cols, int64_t group,
                                       __nv_bfloat16* __restrict__ dst) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n_bytes;
         i += stride) {
        const int64_t value = 2 * i;
        const int64_t r = value / cols;
        const float scale = __half2float(scales[r * (cols / group) + (value % cols) / group]);
        const uint32_t byte = codes[i];
        dst[value] = __float2bfloat16_rn(static_cast<float>(static_cast<int>(byte & 0xfu) - 8) *
                                         scale);
        dst[value + 1] = __float2bfloat16_rn(static_cast<float>(static_cast<int>(byte >> 4) - 8) *
                                             scale);
    }
}

__global__ void glu_kernel(float* __restrict__ act, const float* __restrict__ up, int64_t count,
                           GluActivation activation) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
         i += stride) {
        act[i] = activate(act[i], activation) * up[i];
    }
}

// The same, 8 values per thread (8 bytes in, 16 out) on a 2-d grid (no index division):
// blockIdx.y walks the rows; cols is a multiple of 8.
__global__ void widen_fp8_bf16_rows_kernel(const __nv_fp8_e4m3* __restrict__ src,
                                           const float* __restrict__ row_scales,
                                           const float* __restrict__ col_scales, int64_t rows,
                                           int64_t cols, __nv_bfloat16* __restrict__ dst) {
    const int64_t c = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) * 8;
    if (c >= cols) {
        return;
    }
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
        float v[8];
        load8(src + r * cols + c, v);
        __align__(16) __nv_bfloat16 out[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            const float scale = row_scales != nullptr ? row_scales[r] : col_scales[c + i];
            out[i] = __float2bfloat16_rn(v[i] * scale);
        }
        *reinterpret_cast<uint4*>(dst + r * cols + c) = *reinterpret_cast<const uint4*>(out);
    }
}

Status widen_fp8_bf16(const void* src, const float* row_scales, const float* col_scales,
                      int64_t rows, int64_t cols, void* dst, cudaStream_t stream) {
    const int64_t count = rows * cols;
    const bool vectors = cols % 8 == 0 && reinterpret_cast<uintptr_t>(src) % 8 == 0 &&
                         reinterpret_cast<uintptr_t>(dst) % 16 == 0;
    if (vectors && count > 0) {
        const dim3 grid(static_cast<unsigned>((cols / 8 + 255) / 256),
                        static_cast<unsigned>(std::min<int64_t>(rows, 65535)));
        widen_fp8_bf16_rows_kernel<<<grid, 256, 0, stream>>>(
            static_cast<const __nv_fp8_e4m3*>(src), row_scales, col_scales, rows, cols,
            static_cast<__nv_bfloat16*>(dst));
    } else if (count > 0) {
        widen_fp8_bf16_kernel<<<grid_for(count), 256, 0, stream>>>(
            static_cast<const __nv_fp8_e4m3*>(src), row_scales, col_scales, count, cols,
            static_cast<__nv_bfloat16*>(dst));
    }
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

// rows × cols int4 values (cols a multiple of the group, so a byte's two values share a scale).
Status widen_int4_bf16(const void* codes, const uint16_t* scales, int64_t rows, int64_t cols,
                       int64_t group, void* dst, cudaStream_t stream) {
    const int64_t n_bytes = rows * cols / 2;
    if (n_bytes > 0) {
        widen_int4_bf16_kernel<<<grid_for(n_bytes), 256, 0, stream>>>(
            static_cast<const uint8_t*>(codes), reinterpret_cast<const __half*>(scales), n_bytes,
            cols, group, static_cast<__nv_bfloat16*>(dst));
    }
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

// The handle's math mode for the bf16 products: the backend keeps it pedantic (no TF32 for its
// fp32 products); bf16 inputs with fp32 sums need the default mode to reach the tensor cores.
class DefaultMathScope {
public:
    explicit DefaultMathScope(cublasHandle_t handle) : handle_(handle) {
        ok_ = cublasGetMathMode(handle_, &saved_) == CUBLAS_STATUS_SUCCESS &&
              cublasSetMathMode(handle_, CUBLAS_DEFAULT_MATH) == CUBLAS_STATUS_SUCCESS;
    }
    ~DefaultMathScope() {
        if (ok_) {
            (void)cublasSetMathMode(handle_, saved_);
        }
    }
    DefaultMathScope(const DefaultMathScope&) = delete;
    DefaultMathScope& operator=(const DefaultMathScope&) = delete;
    bool ok() const { return ok_; }

private:
    cublasHandle_t handle_;
    cublasMath_t saved_ = CUBLAS_DEFAULT_MATH;
    bool ok_ = false;
};

const char* bf16_at(const void* base, int64_t values) {
    return static_cast<const char*>(base) + values * 2;
}

}  // namespace

int64_t tensor_core_min_tokens(DeviceDType type) {
    switch (type) {
        case DeviceDType::kBF16: return 17;
        case DeviceDType::kF8E4M3: return 33;
        // Widened through bf16 panels as fp8 is; fp8's bound, not yet measured for int4.
        case DeviceDType::kInt4: return 33;
        case DeviceDType::kF32: break;
    }
    return INT64_MAX;
}

Status split_bf16(const float* x, int64_t count, void* hi, void* lo, cudaStream_t stream) {
    if (count <= 0) {
        return Status::ok_status();
    }
    split_kernel<<<grid_for(count), 256, 0, stream>>>(x, count, static_cast<__nv_bfloat16*>(hi),
                                                       static_cast<__nv_bfloat16*>(lo));
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

Status TensorCoreGemm::product(const void* w, bool w_is_n_by_k, int64_t n, int64_t k,
                               const void* x_hi, const void* x_lo, int64_t ldx, int64_t m,
                               float* c, int64_t ldc, float beta) const {
    if (m == 0 || n == 0) {
        return Status::ok_status();
    }
    DefaultMathScope math(handle_);
    if (!math.ok()) {
        return internal_error("tensor-core product: cannot set cuBLAS's math mode");
    }
    // Column-major view of the row-major product: Cᵀ[n, m] = op(W)[n, k] · xᵀ[k, m].
    const cublasOperation_t op = w_is_n_by_k ? CUBLAS_OP_T : CUBLAS_OP_N;
    const auto lda = static_cast<int>(w_is_n_by_k ? k : n);
    const float one = 1.0f;
    for (int term = 0; term < 2; ++term) {
        const float b = term == 0 ? beta : 1.0f;
        SLUICE_CUDA_CHECK(cublasGemmEx(handle_, op, CUBLAS_OP_N, static_cast<int>(n),
                                       static_cast<int>(m), static_cast<int>(k), &one, w,
                                       CUDA_R_16BF, lda, term == 0 ? x_hi : x_lo, CUDA_R_16BF,
                                       static_cast<int>(ldx), &b, c, CUDA_R_32F,
                                       static_cast<int>(ldc), CUBLAS_COMPUTE_32F,
                                       CUBLAS_GEMM_DEFAULT));
    }
    return Status::ok_status();
}

Status TensorCoreGemm::dense(const DenseJob& job, cudaStream_t stream) const {
    const DenseWeight& w = job.weight;
    const int64_t k = w.cols;
    if (w.type == DeviceDType::kF32 || job.m * k > scratch_.max_values) {
        return invalid_argument("tensor-core dense product: bf16 or fp8 weights and at most " +
                                std::to_string(scratch_.max_values) + " input values");
    }
    SLUICE_RETURN_IF_ERROR(split_bf16(job.x, job.m * k, scratch_.x_hi, scratch_.x_lo, stream));
    if (w.type == DeviceDType::kBF16) {
        return product(bf16_at(w.data, job.row_begin * k), true, job.n_rows, k, scratch_.x_hi,
                       scratch_.x_lo, k, job.m, job.y, job.ldy, job.beta);
    }
    const int64_t panel_rows = std::min(job.n_rows, scratch_.panel_values / k);
    if (panel_rows <= 0) {
        return invalid_argument("tensor-core dense product: a row of " + std::to_string(k) +
                                " values does not fit the panel");
    }
    for (int64_t r = 0; r < job.n_rows; r += panel_rows) {
        const int64_t rows = std::min(panel_rows, job.n_rows - r);
        const int64_t first = job.row_begin + r;
        SLUICE_RETURN_IF_ERROR(widen_fp8_bf16(static_cast<const char*>(w.data) + first * k,
                                              w.scales + first, nullptr, rows, k, scratch_.panel,
                                              stream));
        SLUICE_RETURN_IF_ERROR(product(scratch_.panel, true, rows, k, scratch_.x_hi,
                                       scratch_.x_lo, k, job.m, job.y + r, job.ldy, job.beta));
    }
    return Status::ok_status();
}

namespace {

// int4 codes with their fp16 group scales (ExpertWeights' int4 fields).
struct Int4Rows {
    const uint16_t* groups = nullptr;
    int64_t group_size = 0;
};

// out[slots, n_out] = x[slots, k] · W_eᵀ for W_e = rows [e * n_out, (e + 1) * n_out) of a
// [n_expert * n_out, k] weight (w1, v1; int4's transposed w2); fp8 and int4 widened in row
// panels with their scales.
Status expert_rows_product(const TensorCoreGemm& gemm, const void* w, const float* scales,
                           DeviceDType type, int64_t e, int64_t n_out, int64_t k,
                           const void* x_hi, const void* x_lo, int64_t slots, float* out,
                           cudaStream_t stream, const Int4Rows& int4 = {}) {
    const int64_t first_row = e * n_out;
    if (type == DeviceDType::kBF16) {
        return gemm.product(bf16_at(w, first_row * k), true, n_out, k, x_hi, x_lo, k, slots, out,
                            n_out, 0.0f);
    }
    const TensorCoreScratch& s = gemm.scratch();
    const int64_t panel_rows = std::min(n_out, s.panel_values / k);
    for (int64_t r = 0; r < n_out; r += panel_rows) {
        const int64_t rows = std::min(panel_rows, n_out - r);
        if (type == DeviceDType::kInt4) {
            SLUICE_RETURN_IF_ERROR(widen_int4_bf16(
                static_cast<const char*>(w) + (first_row + r) * k / 2,
                int4.groups + (first_row + r) * (k / int4.group_size), rows, k, int4.group_size,
                s.panel, stream));
        } else {
            SLUICE_RETURN_IF_ERROR(widen_fp8_bf16(static_cast<const char*>(w) + (first_row + r) * k,
                                                  scales + first_row + r, nullptr, rows, k,
                                                  s.panel, stream));
        }
        SLUICE_RETURN_IF_ERROR(
            gemm.product(s.panel, true, rows, k, x_hi, x_lo, k, slots, out + r, n_out, 0.0f));
    }
    return Status::ok_status();
}

// y[slots, d] = act[slots, n_ff] · w2_e; fp8 widened in panels of w2_e's rows (the sum's
// dimension), each panel's product added to the last, with the expert's column scales.
Status expert_down_product(const TensorCoreGemm& gemm, const ExpertWeights& weights, int64_t e,
                           int64_t n_ff, int64_t d, const void* act_hi, const void* act_lo,
                           int64_t slots, float* y, cudaStream_t stream) {
    const int64_t first_row = e * n_ff;
    if (weights.type == DeviceDType::kBF16) {
        return gemm.product(bf16_at(weights.w2, first_row * d), false, d, n_ff, act_hi, act_lo,
                            n_ff, slots, y, d, 0.0f);
    }
    const TensorCoreScratch& s = gemm.scratch();
    const int64_t panel_rows = std::min(n_ff, s.panel_values / d);
    for (int64_t r = 0; r < n_ff; r += panel_rows) {
        const int64_t rows = std::min(panel_rows, n_ff - r);
        SLUICE_RETURN_IF_ERROR(widen_fp8_bf16(
            static_cast<const char*>(weights.w2) + (first_row + r) * d, nullptr,
            weights.w2_scales + e * d, rows, d, s.panel, stream));
        SLUICE_RETURN_IF_ERROR(gemm.product(s.panel, false, d, rows, bf16_at(act_hi, r),
                                            bf16_at(act_lo, r), n_ff, slots, y, d,
                                            r == 0 ? 0.0f : 1.0f));
    }
    return Status::ok_status();
}

}  // namespace

Status grouped_experts_tc(const TensorCoreGemm& gemm, const ExpertTcScratch& scratch,
                          const float* x_sorted, const int32_t* offsets,
                          const ExpertWeights& weights, const ExpertShape& shape,
                          GluActivation activation, float* act, float* y, cudaStream_t stream) {
    const int64_t d = shape.d_model;
    const int64_t n_ff = shape.n_ff;
    const TensorCoreScratch& s = gemm.scratch();
    if (shape.n_slots == 0) {
        return Status::ok_status();
    }
    const bool widened = weights.type == DeviceDType::kF8E4M3 || weights.type == DeviceDType::kInt4;
    if (weights.type == DeviceDType::kF32 || shape.n_slots * d > s.max_values ||
        shape.n_slots * n_ff > scratch.max_act_values ||
        (widened && (s.panel_values < d || s.panel_values < n_ff)) ||
        (weights.type == DeviceDType::kInt4 &&
         (weights.group_size <= 0 || d % weights.group_size != 0 ||
          n_ff % weights.group_size != 0))) {
        return invalid_argument("grouped_experts_tc: bf16, fp8 or int4 weights, and " +
                                std::to_string(shape.n_slots) + " slots within the scratch");
    }
    SLUICE_CUDA_CHECK(cudaMemcpyAsync(scratch.host_offsets, offsets,
                                      static_cast<size_t>(shape.n_expert + 1) * sizeof(int32_t),
                                      cudaMemcpyDeviceToHost, stream));
    SLUICE_RETURN_IF_ERROR(split_bf16(x_sorted, shape.n_slots * d, s.x_hi, s.x_lo, stream));
    SLUICE_CUDA_CHECK(cudaStreamSynchronize(stream));
    const std::vector<int32_t> off(scratch.host_offsets, scratch.host_offsets + shape.n_expert + 1);
    for (int64_t e = 0; e < shape.n_expert; ++e) {
        const int64_t start = off[static_cast<size_t>(e)];
        const int64_t count = off[static_cast<size_t>(e) + 1] - start;
        if (count == 0) {
            continue;
        }
        const char* hi = bf16_at(s.x_hi, start * d);
        const char* lo = bf16_at(s.x_lo, start * d);
        SLUICE_RETURN_IF_ERROR(expert_rows_product(
            gemm, weights.w1, weights.w1_scales, weights.type, e, n_ff, d, hi, lo, count,
            act + start * n_ff, stream, {weights.w1_groups, weights.group_size}));
        SLUICE_RETURN_IF_ERROR(expert_rows_product(
            gemm, weights.v1, weights.v1_scales, weights.type, e, n_ff, d, hi, lo, count,
            scratch.up + start * n_ff, stream, {weights.v1_groups, weights.group_size}));
    }
    const int64_t n_act = shape.n_slots * n_ff;
    glu_kernel<<<grid_for(n_act), 256, 0, stream>>>(act, scratch.up, n_act, activation);
    SLUICE_CUDA_CHECK(cudaGetLastError());
    SLUICE_RETURN_IF_ERROR(split_bf16(act, n_act, scratch.act_hi, scratch.act_lo, stream));
    for (int64_t e = 0; e < shape.n_expert; ++e) {
        const int64_t start = off[static_cast<size_t>(e)];
        const int64_t count = off[static_cast<size_t>(e) + 1] - start;
        if (count == 0) {
            continue;
        }
        const char* hi = bf16_at(scratch.act_hi, start * n_ff);
        const char* lo = bf16_at(scratch.act_lo, start * n_ff);
        if (weights.type == DeviceDType::kInt4) {
            // w2 is stored transposed, a row per output column: the rows product again.
            SLUICE_RETURN_IF_ERROR(expert_rows_product(
                gemm, weights.w2, nullptr, weights.type, e, d, n_ff, hi, lo, count,
                y + start * d, stream, {weights.w2_groups, weights.group_size}));
            continue;
        }
        SLUICE_RETURN_IF_ERROR(
            expert_down_product(gemm, weights, e, n_ff, d, hi, lo, count, y + start * d, stream));
    }
    return Status::ok_status();
}

}  // namespace sluice::inference::cuda
