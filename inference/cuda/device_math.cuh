#pragma once
// Device-side helpers shared by the backend's kernels (included by .cu files only): reading a
// weight of any device type as fp32, one at a time or 16 bytes at a time, the GLU activations,
// and warp/block reductions.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

#include "inference/cuda/moe.cuh"

namespace sluice::inference::cuda {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_float(__nv_fp8_e4m3 v) { return static_cast<float>(v); }

// Two fp8 E4M3 values packed in the low 16 bits of `bits` (the first in the low byte).
__device__ __forceinline__ float2 fp8x2_to_float2(uint32_t bits) {
    const __half2_raw raw =
        __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(bits & 0xffffu), __NV_E4M3);
    return __half22float2(__half2(raw));
}

// Weights streamed 16 bytes per load (read once per step, so the load skips the L1 and marks the
// line evict-first), kept raw until used so that the next loads can be in flight meanwhile, then
// widened: kN values of W as fp32. The pointer is 16-byte aligned.
__device__ __forceinline__ uint4 load_stream16(const void* p) {
    return __ldcs(static_cast<const uint4*>(p));
}

template <typename W>
struct WeightVec;

template <>
struct WeightVec<float> {
    static constexpr int kN = 4;
    __device__ __forceinline__ static void widen(uint4 v, float* out) {
        out[0] = __uint_as_float(v.x);
        out[1] = __uint_as_float(v.y);
        out[2] = __uint_as_float(v.z);
        out[3] = __uint_as_float(v.w);
    }
    __device__ __forceinline__ static void load(const float* p, float* out) {
        widen(load_stream16(p), out);
    }
};

template <>
struct WeightVec<__nv_bfloat16> {
    static constexpr int kN = 8;
    __device__ __forceinline__ static void widen(uint4 v, float* out) {
        const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {  // little-endian: the first value is the low half
            out[2 * i] = __uint_as_float(words[i] << 16);
            out[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
        }
    }
    __device__ __forceinline__ static void load(const __nv_bfloat16* p, float* out) {
        widen(load_stream16(p), out);
    }
};

template <>
struct WeightVec<__nv_fp8_e4m3> {
    static constexpr int kN = 16;
    __device__ __forceinline__ static void widen(uint4 v, float* out) {
        const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const float2 lo = fp8x2_to_float2(words[i]);
            const float2 hi = fp8x2_to_float2(words[i] >> 16);
            out[4 * i] = lo.x;
            out[4 * i + 1] = lo.y;
            out[4 * i + 2] = hi.x;
            out[4 * i + 3] = hi.y;
        }
    }
    __device__ __forceinline__ static void load(const __nv_fp8_e4m3* p, float* out) {
        widen(load_stream16(p), out);
    }
};

// Eight consecutive weights widened to fp32 (8 bytes for fp8, 16 for bf16, 32 for f32); the
// pointer is aligned to that size.
template <typename W>
__device__ __forceinline__ void load8(const W* p, float* out);

template <>
__device__ __forceinline__ void load8(const float* p, float* out) {
    WeightVec<float>::load(p, out);
    WeightVec<float>::load(p + 4, out + 4);
}

template <>
__device__ __forceinline__ void load8(const __nv_bfloat16* p, float* out) {
    WeightVec<__nv_bfloat16>::load(p, out);
}

template <>
__device__ __forceinline__ void load8(const __nv_fp8_e4m3* p, float* out) {
    const uint2 v = __ldcs(reinterpret_cast<const uint2*>(p));
    const uint32_t words[2] = {v.x, v.y};
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        const float2 lo = fp8x2_to_float2(words[i]);
        const float2 hi = fp8x2_to_float2(words[i] >> 16);
        out[4 * i] = lo.x;
        out[4 * i + 1] = lo.y;
        out[4 * i + 2] = hi.x;
        out[4 * i + 3] = hi.y;
    }
}

// Host side: calls f(W{}) with the element type of a weight of device type `type`, so that a
// launcher picks its kernel template once.
template <typename F>
void with_weight_type(DeviceDType type, F&& f) {
    switch (type) {
        case DeviceDType::kF32: f(float{}); break;
        case DeviceDType::kBF16: f(__nv_bfloat16{}); break;
        case DeviceDType::kF8E4M3: f(__nv_fp8_e4m3{}); break;
        case DeviceDType::kInt4: break;  // never asked: int4 weights have kernels of their own
    }
}

__device__ __forceinline__ float activate(float g, GluActivation activation) {
    if (activation == GluActivation::kSilu) {
        return g / (1.0f + expf(-g));
    }
    return 0.5f * g * (1.0f + erff(g * 0.70710678118654752f));  // exact GELU, as nn.GELU
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset /= 2) {
        v += __shfl_xor_sync(0xffffffffu, v, offset);
    }
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int offset = 16; offset > 0; offset /= 2) {
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    }
    return v;
}

// Sum over the block; every thread gets the result. `scratch` holds 32 floats. blockDim.x is a
// multiple of 32.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
    const int lane = threadIdx.x % 32;
    const int warp = threadIdx.x / 32;
    const int n_warps = blockDim.x / 32;
    v = warp_sum(v);
    __syncthreads();  // scratch may still be read by a previous call
    if (lane == 0) {
        scratch[warp] = v;
    }
    __syncthreads();
    v = lane < n_warps ? scratch[lane] : 0.0f;
    return warp_sum(v);
}

}  // namespace sluice::inference::cuda
