#include "inference/cuda/device_math.cuh"
#include "inference/cuda/rows.cuh"

namespace sluice::inference::cuda {

namespace {

template <typename T>
__global__ void embed_kernel(const T* __restrict__ table, const int32_t* __restrict__ tokens,
                             int64_t d, float* __restrict__ out) {
    const int64_t t = blockIdx.x;
    const T* row = table + static_cast<int64_t>(tokens[t]) * d;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
        out[t * d + j] = to_float(row[j]);
    }
}

// One block per row.
__global__ void layer_norm_kernel(const float* __restrict__ x, const int32_t* __restrict__ rows,
                                  const float* __restrict__ weight, int64_t d, float eps,
                                  float* out) {
    __shared__ float scratch[32];
    const int64_t i = blockIdx.x;
    const float* row = x + (rows != nullptr ? static_cast<int64_t>(rows[i]) : i) * d;
    float sum = 0;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
        sum += row[j];
    }
    const float mean = block_sum(sum, scratch) / static_cast<float>(d);
    float var = 0;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
        const float c = row[j] - mean;
        var += c * c;
    }
    var = block_sum(var, scratch) / static_cast<float>(d);
    const float inv_std = rsqrtf(var + eps);
    // When out aliases x every thread rewrites only the elements it alone read above.
    float* dst = out + i * d;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
        dst[j] = (row[j] - mean) * inv_std * weight[j];
    }
}

}  // namespace

Status embed_tokens(const void* table, DeviceDType type, const int32_t* tokens, int64_t n_tokens,
                    int64_t d, float* out, cudaStream_t stream) {
    if (n_tokens <= 0 || d <= 0) {
        return n_tokens == 0 ? Status::ok_status()
                             : invalid_argument("embed_tokens: non-positive shape");
    }
    if (type == DeviceDType::kF8E4M3) {
        return invalid_argument("embed_tokens: the embedding is kept in f32 or bf16, not fp8");
    }
    const dim3 grid(static_cast<unsigned>(n_tokens));
    if (type == DeviceDType::kF32) {
        embed_kernel<<<grid, 256, 0, stream>>>(static_cast<const float*>(table), tokens, d, out);
    } else {
        embed_kernel<<<grid, 256, 0, stream>>>(static_cast<const __nv_bfloat16*>(table), tokens, d,
                                               out);
    }
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

Status layer_norm(const float* x, const int32_t* rows, const float* weight, int64_t n, int64_t d,
                  float eps, float* out, cudaStream_t stream) {
    if (n == 0) {
        return Status::ok_status();
    }
    if (n < 0 || d <= 0) {
        return invalid_argument("layer_norm: shape [" + std::to_string(n) + ", " +
                                std::to_string(d) + "]");
    }
    layer_norm_kernel<<<static_cast<unsigned>(n), 256, 0, stream>>>(x, rows, weight, d, eps, out);
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

}  // namespace sluice::inference::cuda
