#include <cuda_fp16.h>

#include <type_traits>

#include "inference/cuda/device_math.cuh"
#include "inference/cuda/int4_experts.cuh"

namespace sluice::inference::cuda {

namespace {

constexpr int kThreads = 256;  // 8 warps
constexpr int kWarps = kThreads / 32;
constexpr int kCodesPerLoad = 32;  // 16 bytes
constexpr int kGateUpRows = 2;     // rows of w1 (and the same of v1) per warp
constexpr int kDownRows = 4;       // rows of w2ᵀ (output columns) per warp

__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// The 32 codes of `raw` as floats (8 per word, value 8w + i in bits 4i..4i+3): 2^23 + n is the
// float with bits 0x4b000000 | n, exactly, so subtracting 2^23 + 8 leaves the code n - 8.
__device__ __forceinline__ void dequantize32(uint4 raw, float (&q)[kCodesPerLoad]) {
    const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int w = 0; w < 4; ++w) {
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            q[8 * w + i] =
                __uint_as_float(0x4b000000u | ((words[w] >> (4 * i)) & 0xfu)) - 8388616.0f;
        }
    }
}

// Σ_i q_i · x_i over a run of 32, in order, as int4_rows_product sums a run.
__device__ __forceinline__ float run_dot(const float (&q)[kCodesPerLoad],
                                         const float* __restrict__ x) {
    float run = 0.0f;
#pragma unroll
    for (int i = 0; i < kCodesPerLoad; i += 4) {
        const float4 v = __ldg(reinterpret_cast<const float4*>(x + i));
        run = fmaf(q[i], v.x, run);
        run = fmaf(q[i + 1], v.y, run);
        run = fmaf(q[i + 2], v.z, run);
        run = fmaf(q[i + 3], v.w, run);
    }
    return run;
}

// acc[r][t] += this lane's share of row r · x_t over `cols` values: lane l takes runs
// l, l + 32, ... of 32 codes. rows[r] are the packed rows (cols / 2 bytes), scales[r] their
// fp16 group scales (cols / group values).
template <int R, int M>
__device__ __forceinline__ void lane_rows(const uint8_t* const (&rows)[R],
                                          const __half* const (&scales)[R], int64_t cols,
                                          int64_t group, const float* __restrict__ x, int m,
                                          float (&acc)[R][M]) {
    constexpr int64_t kStep = 32 * kCodesPerLoad;
    const int lane = threadIdx.x % 32;
    int64_t k = static_cast<int64_t>(lane) * kCodesPerLoad;
    uint4 next[R];
    if (k < cols) {
#pragma unroll
        for (int r = 0; r < R; ++r) {
            next[r] = load_stream16(rows[r] + k / 2);
        }
    }
    for (; k < cols; k += kStep) {
        uint4 raw[R];
#pragma unroll
        for (int r = 0; r < R; ++r) {
            raw[r] = next[r];
        }
        if (k + kStep < cols) {
#pragma unroll
            for (int r = 0; r < R; ++r) {
                next[r] = load_stream16(rows[r] + (k + kStep) / 2);
            }
        }
        // Each row's codes are widened once and serve every slot of the chunk. The group index
        // in 32 bits (rows are far shorter than 2^31 values): a 64-bit division is a long call.
        const uint32_t g = static_cast<uint32_t>(k) / static_cast<uint32_t>(group);
#pragma unroll
        for (int r = 0; r < R; ++r) {
            const float scale = __half2float(scales[r][g]);
            float q[kCodesPerLoad];
            dequantize32(raw[r], q);
#pragma unroll
            for (int t = 0; t < M; ++t) {
                if (t < m) {
                    acc[r][t] = fmaf(scale, run_dot(q, x + t * cols + k), acc[r][t]);
                }
            }
        }
    }
}

// acc[r][t] = row r · x_t over `cols` values, summed across the warp: every lane holds the sums.
template <int R, int M>
__device__ __forceinline__ void warp_rows(const uint8_t* const (&rows)[R],
                                          const __half* const (&scales)[R], int64_t cols,
                                          int64_t group, const float* __restrict__ x, int m,
                                          float (&acc)[R][M]) {
    lane_rows<R, M>(rows, scales, cols, group, x, m, acc);
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
        for (int t = 0; t < M; ++t) {
            if (t < m) {
                acc[r][t] = warp_sum(acc[r][t]);
            }
        }
    }
}

// grid: (ceil(n_ff / (kWarps * kGateUpRows)), n_expert); blocks of an expert without slots
// leave at once.
template <int M>
__global__ void __launch_bounds__(kThreads)
    gate_up_kernel(const float* __restrict__ x, const int32_t* __restrict__ offsets,
                   const uint8_t* __restrict__ w1, const uint8_t* __restrict__ v1,
                   const __half* __restrict__ s1, const __half* __restrict__ s2, int64_t d,
                   int64_t n_ff, int64_t group, GluActivation activation, float* __restrict__ act) {
    const int64_t e = blockIdx.y;
    const int64_t start = offsets[e];
    const int64_t count = offsets[e + 1] - start;
    const int64_t j0 = (static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32) * kGateUpRows;
    if (count == 0 || j0 >= n_ff) {
        return;
    }
    constexpr int R = 2 * kGateUpRows;  // gate rows, then the same rows of up
    const uint8_t* rows[R];
    const __half* scales[R];
#pragma unroll
    for (int r = 0; r < kGateUpRows; ++r) {
        // Rows past the end repeat the last one: in bounds, their sums are not stored.
        const int64_t row = e * n_ff + min64(j0 + r, n_ff - 1);
        rows[r] = w1 + row * (d / 2);
        rows[kGateUpRows + r] = v1 + row * (d / 2);
        scales[r] = s1 + row * (d / group);
        scales[kGateUpRows + r] = s2 + row * (d / group);
    }
    for (int64_t c0 = 0; c0 < count; c0 += M) {
        const int m = static_cast<int>(min64(M, count - c0));
        float acc[R][M] = {};
        warp_rows<R, M>(rows, scales, d, group, x + (start + c0) * d, m, acc);
        if (threadIdx.x % 32 == 0) {
#pragma unroll
            for (int r = 0; r < kGateUpRows; ++r) {
                const int64_t j = j0 + r;
                if (j >= n_ff) {
                    break;
                }
#pragma unroll
                for (int t = 0; t < M; ++t) {
                    if (t < m) {
                        act[(start + c0 + t) * n_ff + j] =
                            activate(acc[r][t], activation) * acc[kGateUpRows + r][t];
                    }
                }
            }
        }
    }
}

// grid: (ceil(d / (kWarps * kDownRows)), n_expert). w2t: [n_expert * d, n_ff / 2].
template <int M>
__global__ void __launch_bounds__(kThreads)
    down_kernel(const float* __restrict__ act, const int32_t* __restrict__ offsets,
                const uint8_t* __restrict__ w2t, const __half* __restrict__ s2, int64_t d,
                int64_t n_ff, int64_t group, float* __restrict__ y) {
    const int64_t e = blockIdx.y;
    const int64_t start = offsets[e];
    const int64_t count = offsets[e + 1] - start;
    const int64_t c0_col =
        (static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32) * kDownRows;
    if (count == 0 || c0_col >= d) {
        return;
    }
    const uint8_t* rows[kDownRows];
    const __half* scales[kDownRows];
#pragma unroll
    for (int r = 0; r < kDownRows; ++r) {
        const int64_t row = e * d + min64(c0_col + r, d - 1);
        rows[r] = w2t + row * (n_ff / 2);
        scales[r] = s2 + row * (n_ff / group);
    }
    for (int64_t c0 = 0; c0 < count; c0 += M) {
        const int m = static_cast<int>(min64(M, count - c0));
        float acc[kDownRows][M] = {};
        warp_rows<kDownRows, M>(rows, scales, n_ff, group, act + (start + c0) * n_ff, m, acc);
        if (threadIdx.x % 32 == 0) {
#pragma unroll
            for (int r = 0; r < kDownRows; ++r) {
                const int64_t c = c0_col + r;
                if (c >= d) {
                    break;
                }
#pragma unroll
                for (int t = 0; t < M; ++t) {
                    if (t < m) {
                        y[(start + c0 + t) * d + c] = acc[r][t];
                    }
                }
            }
        }
    }
}

unsigned blocks_for(int64_t n, int64_t per_block) {
    return static_cast<unsigned>((n + per_block - 1) / per_block);
}

// Calls f(std::integral_constant<int, M>{}) with the smallest of 1, 2, 4, 8 that holds m.
template <typename F>
void with_slot_tile(int64_t m, F&& f) {
    if (m <= 1) {
        f(std::integral_constant<int, 1>{});
    } else if (m <= 2) {
        f(std::integral_constant<int, 2>{});
    } else if (m <= 4) {
        f(std::integral_constant<int, 4>{});
    } else {
        f(std::integral_constant<int, 8>{});
    }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

Status check_int4_args(const char* what, const void* a, const void* b, const uint16_t* sa,
                       const uint16_t* sb, const ExpertWeights& w, const ExpertShape& shape,
                       const float* x) {
    const int64_t g = w.group_size;
    if (shape.n_expert <= 0 || shape.d_model <= 0 || shape.n_ff <= 0 || shape.n_slots < 0 ||
        shape.n_tokens < 0) {
        return invalid_argument(std::string(what) + ": bad shape");
    }
    if (g <= 0 || g % kCodesPerLoad != 0 || shape.d_model % g != 0 || shape.n_ff % g != 0) {
        return invalid_argument(std::string(what) + ": group size " + std::to_string(g) +
                                " must be a multiple of 32 dividing d_model " +
                                std::to_string(shape.d_model) + " and n_ff " +
                                std::to_string(shape.n_ff));
    }
    if (a == nullptr || b == nullptr || sa == nullptr || sb == nullptr || !aligned16(a) ||
        !aligned16(b) || !aligned16(x)) {
        return invalid_argument(std::string(what) +
                                ": int4 codes and their group scales must be given, codes and "
                                "activations 16-byte aligned");
    }
    return Status::ok_status();
}

}  // namespace

Status int4_gate_up(const float* x_sorted, const int32_t* offsets, const ExpertWeights& weights,
                    const ExpertShape& shape, GluActivation activation, float* act,
                    cudaStream_t stream) {
    if (shape.n_slots == 0) {
        return Status::ok_status();
    }
    SLUICE_RETURN_IF_ERROR(check_int4_args("int4_gate_up", weights.w1, weights.v1,
                                           weights.w1_groups, weights.v1_groups, weights, shape,
                                           x_sorted));
    const dim3 grid(blocks_for(shape.n_ff, kWarps * kGateUpRows),
                    static_cast<unsigned>(shape.n_expert));
    with_slot_tile(shape.n_tokens, [&](auto tile) {
        gate_up_kernel<decltype(tile)::value><<<grid, kThreads, 0, stream>>>(
            x_sorted, offsets, static_cast<const uint8_t*>(weights.w1),
            static_cast<const uint8_t*>(weights.v1),
            reinterpret_cast<const __half*>(weights.w1_groups),
            reinterpret_cast<const __half*>(weights.v1_groups), shape.d_model, shape.n_ff,
            weights.group_size, activation, act);
    });
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

Status int4_down(const float* act, const int32_t* offsets, const ExpertWeights& weights,
                 const ExpertShape& shape, float* y, cudaStream_t stream) {
    if (shape.n_slots == 0) {
        return Status::ok_status();
    }
    SLUICE_RETURN_IF_ERROR(check_int4_args("int4_down", weights.w2, weights.w2, weights.w2_groups,
                                           weights.w2_groups, weights, shape, act));
    const dim3 grid(blocks_for(shape.d_model, kWarps * kDownRows),
                    static_cast<unsigned>(shape.n_expert));
    with_slot_tile(shape.n_tokens, [&](auto tile) {
        down_kernel<decltype(tile)::value>
            <<<grid, kThreads, 0, stream>>>(act, offsets, static_cast<const uint8_t*>(weights.w2),
                                            reinterpret_cast<const __half*>(weights.w2_groups),
                                            shape.d_model, shape.n_ff, weights.group_size, y);
    });
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

}  // namespace sluice::inference::cuda
