#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>

#include "inference/cuda/device_math.cuh"
#include "inference/cuda/quantize.cuh"

namespace sluice::inference::cuda {

namespace {

template <typename T>
__device__ __forceinline__ float value_at(const void* src, int64_t i) {
    return to_float(static_cast<const T*>(src)[i]);
}

__device__ __forceinline__ float scale_for(float max_abs) {
    return max_abs > 0.0f ? max_abs / kFp8E4M3Max : 1.0f;
}

// One block per row: the row's largest magnitude, then the rounded values.
template <typename T>
__global__ void quantize_rows_kernel(const void* __restrict__ src, int64_t cols,
                                     __nv_fp8_e4m3* __restrict__ dst, float* __restrict__ scales) {
    __shared__ float scratch[32];
    const int64_t row = blockIdx.x;
    float max_abs = 0.0f;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        max_abs = fmaxf(max_abs, fabsf(value_at<T>(src, row * cols + c)));
    }
    max_abs = warp_max(max_abs);
    __syncthreads();
    if (threadIdx.x % 32 == 0) {
        scratch[threadIdx.x / 32] = max_abs;
    }
    __syncthreads();
    // Every warp reduces the per-warp maxima, so every thread gets the row's.
    const unsigned lane = threadIdx.x % 32;
    max_abs = lane < blockDim.x / 32 ? scratch[lane] : 0.0f;
    max_abs = warp_max(max_abs);
    const float scale = scale_for(max_abs);
    const float inv = 1.0f / scale;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        dst[row * cols + c] = __nv_fp8_e4m3(value_at<T>(src, row * cols + c) * inv);
    }
    if (threadIdx.x == 0) {
        scales[row] = scale;
    }
}

// One thread per column, walking down the rows (coalesced across the warp).
template <typename T>
__global__ void quantize_cols_kernel(const void* __restrict__ src, int64_t rows, int64_t cols,
                                     __nv_fp8_e4m3* __restrict__ dst, float* __restrict__ scales) {
    const int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (c >= cols) {
        return;
    }
    float max_abs = 0.0f;
    for (int64_t r = 0; r < rows; ++r) {
        max_abs = fmaxf(max_abs, fabsf(value_at<T>(src, r * cols + c)));
    }
    const float scale = scale_for(max_abs);
    const float inv = 1.0f / scale;
    for (int64_t r = 0; r < rows; ++r) {
        dst[r * cols + c] = __nv_fp8_e4m3(value_at<T>(src, r * cols + c) * inv);
    }
    scales[c] = scale;
}

// The fp16 scale of an int4 group, as int4_group_scale (inference/int4_weights.h) computes it:
// correctly rounded quotients (no fast math), rounded up to fp16, 1 for an all-zero group.
__device__ __forceinline__ __half int4_scale(float max_positive, float min_negative) {
    const float scale = fmaxf(max_positive / 7.0f, -min_negative / 8.0f);
    return scale == 0.0f ? __float2half_rn(1.0f) : __float2half_ru(scale);
}

// One thread per (output row, group); rows vary fastest, so the transposed source (w2's block,
// where a row's values lie `col_stride` apart and neighbouring rows next to each other) is read
// coalesced. Value i of row r is src[r * row_stride + i * col_stride]. The arithmetic is
// quantize_int4_rows's: q = rint(x / scale) clamped to [-8, 7], stored as the nibble q + 8.
template <typename T>
__global__ void quantize_int4_kernel(const void* __restrict__ src, int64_t rows, int64_t cols,
                                     int64_t row_stride, int64_t col_stride, int64_t group,
                                     uint8_t* __restrict__ codes, __half* __restrict__ scales) {
    const int64_t n_groups = cols / group;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t item = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
         item < rows * n_groups; item += stride) {
        const int64_t r = item % rows;
        const int64_t g = item / rows;
        const int64_t first = r * row_stride + g * group * col_stride;
        float max_positive = 0.0f;
        float min_negative = 0.0f;
        for (int64_t i = 0; i < group; ++i) {
            const float x = value_at<T>(src, first + i * col_stride);
            max_positive = fmaxf(max_positive, x);
            min_negative = fminf(min_negative, x);
        }
        const __half scale_bits = int4_scale(max_positive, min_negative);
        const float scale = __half2float(scale_bits);
        scales[r * n_groups + g] = scale_bits;
        uint8_t* out = codes + (r * cols + g * group) / 2;
        for (int64_t i = 0; i < group; i += 2) {
            uint32_t byte = 0;
#pragma unroll
            for (int half = 0; half < 2; ++half) {
                const float x = value_at<T>(src, first + (i + half) * col_stride);
                const float q = fminf(fmaxf(rintf(__fdiv_rn(x, scale)), -8.0f), 7.0f);
                byte |= static_cast<uint32_t>(static_cast<int>(q) + 8) << (4 * half);
            }
            out[i / 2] = static_cast<uint8_t>(byte);
        }
    }
}

// splitmix64: a well-mixed 64-bit hash of the index.
__device__ __forceinline__ uint64_t mix(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

template <typename T>
__global__ void fill_random_kernel(T* __restrict__ dst, int64_t count, uint64_t seed,
                                   float bound) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    const uint64_t key = mix(seed);
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
         i += stride) {
        const float u = static_cast<float>(mix(key ^ static_cast<uint64_t>(i)) >> 40) *
                        (1.0f / 16777216.0f);  // 24 bits: [0, 1)
        dst[i] = static_cast<T>(bound * (2.0f * u - 1.0f));
    }
}

__global__ void fill_constant_kernel(float* __restrict__ dst, int64_t count, float value) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
         i += stride) {
        dst[i] = value;
    }
}

unsigned grid_for(int64_t count) {
    return static_cast<unsigned>(std::min<int64_t>((count + 255) / 256, 65535));
}

Status check_source(const char* what, DeviceDType type, int64_t rows, int64_t cols) {
    if (type != DeviceDType::kF32 && type != DeviceDType::kBF16) {
        return invalid_argument(std::string(what) + ": the source must be f32 or bf16");
    }
    if (rows < 0 || cols <= 0) {
        return invalid_argument(std::string(what) + ": bad shape");
    }
    return Status::ok_status();
}

}  // namespace

Status quantize_rows_fp8(const void* src, DeviceDType src_type, int64_t rows, int64_t cols,
                         void* dst, float* scales, cudaStream_t stream) {
    SLUICE_RETURN_IF_ERROR(check_source("quantize_rows_fp8", src_type, rows, cols));
    if (rows == 0) {
        return Status::ok_status();
    }
    auto* out = static_cast<__nv_fp8_e4m3*>(dst);
    if (src_type == DeviceDType::kF32) {
        quantize_rows_kernel<float>
            <<<static_cast<unsigned>(rows), 256, 0, stream>>>(src, cols, out, scales);
    } else {
        quantize_rows_kernel<__nv_bfloat16>
            <<<static_cast<unsigned>(rows), 256, 0, stream>>>(src, cols, out, scales);
    }
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

Status quantize_cols_fp8(const void* src, DeviceDType src_type, int64_t rows, int64_t cols,
                         void* dst, float* scales, cudaStream_t stream) {
    SLUICE_RETURN_IF_ERROR(check_source("quantize_cols_fp8", src_type, rows, cols));
    if (rows == 0) {
        return Status::ok_status();
    }
    auto* out = static_cast<__nv_fp8_e4m3*>(dst);
    const auto blocks = static_cast<unsigned>((cols + 127) / 128);
    if (src_type == DeviceDType::kF32) {
        quantize_cols_kernel<float><<<blocks, 128, 0, stream>>>(src, rows, cols, out, scales);
    } else {
        quantize_cols_kernel<__nv_bfloat16>
            <<<blocks, 128, 0, stream>>>(src, rows, cols, out, scales);
    }
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

Status quantize_int4(const void* src, DeviceDType src_type, int64_t rows, int64_t cols,
                     int64_t group_size, bool transposed, void* codes, uint16_t* scales,
                     cudaStream_t stream) {
    SLUICE_RETURN_IF_ERROR(check_source("quantize_int4", src_type, rows, cols));
    if (group_size <= 0 || group_size % 32 != 0 || cols % group_size != 0) {
        return invalid_argument("quantize_int4: rows of " + std::to_string(cols) +
                                " values in groups of " + std::to_string(group_size) +
                                ", expected a multiple of 32 dividing the row");
    }
    if (rows == 0) {
        return Status::ok_status();
    }
    // Source [rows, cols], or [cols, rows] read down its columns.
    const int64_t row_stride = transposed ? 1 : cols;
    const int64_t col_stride = transposed ? rows : 1;
    const int64_t items = rows * (cols / group_size);
    auto* out = static_cast<uint8_t*>(codes);
    auto* s = reinterpret_cast<__half*>(scales);
    if (src_type == DeviceDType::kF32) {
        quantize_int4_kernel<float><<<grid_for(items), 256, 0, stream>>>(
            src, rows, cols, row_stride, col_stride, group_size, out, s);
    } else {
        quantize_int4_kernel<__nv_bfloat16><<<grid_for(items), 256, 0, stream>>>(
            src, rows, cols, row_stride, col_stride, group_size, out, s);
    }
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

Status fill_random(void* dst, DeviceDType type, int64_t count, uint64_t seed, float bound,
                   cudaStream_t stream) {
    if (count <= 0) {
        return Status::ok_status();
    }
    if (type == DeviceDType::kF32) {
        fill_random_kernel<<<grid_for(count), 256, 0, stream>>>(static_cast<float*>(dst), count,
                                                                seed, bound);
    } else if (type == DeviceDType::kBF16) {
        fill_random_kernel<<<grid_for(count), 256, 0, stream>>>(
            static_cast<__nv_bfloat16*>(dst), count, seed, bound);
    } else {
        return invalid_argument("fill_random: f32 or bf16 only; quantise to fp8 afterwards");
    }
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

Status fill_constant(float* dst, int64_t count, float value, cudaStream_t stream) {
    if (count <= 0) {
        return Status::ok_status();
    }
    fill_constant_kernel<<<grid_for(count), 256, 0, stream>>>(dst, count, value);
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

}  // namespace sluice::inference::cuda
