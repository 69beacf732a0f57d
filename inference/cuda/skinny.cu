#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <type_traits>

#include "inference/cuda/device_math.cuh"
#include "inference/cuda/skinny.cuh"

namespace sluice::inference::cuda {

namespace {

constexpr int kThreads = 256;  // 8 warps
constexpr int kWarps = kThreads / 32;
constexpr int kDenseWarpRows = 4;   // weight rows per warp in skinny_dense
constexpr int kGateUpWarpRows = 2;  // rows of w1 (and of v1) per warp in skinny_gate_up
constexpr int kDownThreads = 128;   // 8 output columns each
constexpr int kDownColumns = 8;

__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// acc[r][t] += this lane's share of Σ_k rows[r][k] · x[t * ldx + k], k < cols, t < m. Each lane
// takes kN consecutive values per step, the warp 32 · kN; cols is a multiple of kN. The next
// step's weights are loaded (raw) before this step's are widened and used, so two loads per row
// are in flight while the lane computes.
template <typename W, int R, int M>
__device__ __forceinline__ void lane_dot(const W* const (&rows)[R], int64_t cols,
                                         const float* __restrict__ x, int64_t ldx, int m,
                                         float (&acc)[R][M]) {
    constexpr int kN = WeightVec<W>::kN;
    constexpr int64_t kStep = 32 * kN;
    const int lane = threadIdx.x % 32;
    int64_t k = static_cast<int64_t>(lane) * kN;
    uint4 next[R];
    if (k < cols) {
#pragma unroll
        for (int r = 0; r < R; ++r) {
            next[r] = load_stream16(rows[r] + k);
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
                next[r] = load_stream16(rows[r] + k + kStep);
            }
        }
        float w[R][kN];
#pragma unroll
        for (int r = 0; r < R; ++r) {
            WeightVec<W>::widen(raw[r], w[r]);
        }
#pragma unroll
        for (int t = 0; t < M; ++t) {
            if (t < m) {
                float xv[kN];
                const float* xt = x + t * ldx + k;
#pragma unroll
                for (int i = 0; i < kN; i += 4) {
                    const float4 v = __ldg(reinterpret_cast<const float4*>(xt + i));
                    xv[i] = v.x;
                    xv[i + 1] = v.y;
                    xv[i + 2] = v.z;
                    xv[i + 3] = v.w;
                }
#pragma unroll
                for (int r = 0; r < R; ++r) {
#pragma unroll
                    for (int i = 0; i < kN; ++i) {
                        acc[r][t] = fmaf(w[r][i], xv[i], acc[r][t]);
                    }
                }
            }
        }
    }
}

// grid: ceil(n_rows / (kWarps * kDenseWarpRows)) blocks of kThreads.
template <typename W, int M>
__global__ void __launch_bounds__(kThreads)
    dense_kernel(const W* __restrict__ w, const float* __restrict__ scales, int64_t cols,
                 int64_t row_begin, int64_t n_rows, const float* __restrict__ x, int m,
                 float* __restrict__ y, int64_t ldy, float beta) {
    const int64_t r0 =
        (static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32) * kDenseWarpRows;
    if (r0 >= n_rows) {
        return;
    }
    const W* rows[kDenseWarpRows];
#pragma unroll
    for (int r = 0; r < kDenseWarpRows; ++r) {
        // Rows past the end repeat the last one: in bounds, their sums are not stored.
        rows[r] = w + (row_begin + min64(r0 + r, n_rows - 1)) * cols;
    }
    float acc[kDenseWarpRows][M] = {};
    lane_dot<W, kDenseWarpRows, M>(rows, cols, x, cols, m, acc);
#pragma unroll
    for (int r = 0; r < kDenseWarpRows; ++r) {
#pragma unroll
        for (int t = 0; t < M; ++t) {
            if (t < m) {
                acc[r][t] = warp_sum(acc[r][t]);
            }
        }
    }
    if (threadIdx.x % 32 != 0) {
        return;
    }
#pragma unroll
    for (int r = 0; r < kDenseWarpRows; ++r) {
        const int64_t row = r0 + r;
        if (row >= n_rows) {
            break;
        }
        const float scale = scales != nullptr ? scales[row_begin + row] : 1.0f;
#pragma unroll
        for (int t = 0; t < M; ++t) {
            if (t < m) {
                float& out = y[t * ldy + row];
                out = beta == 0.0f ? acc[r][t] * scale : acc[r][t] * scale + beta * out;
            }
        }
    }
}

// grid: (ceil(n_ff / (kWarps * kGateUpWarpRows)), n_expert) blocks of kThreads; blocks of an
// expert without slots leave at once.
template <typename W, int M>
__global__ void __launch_bounds__(kThreads)
    gate_up_kernel(const float* __restrict__ x, const int32_t* __restrict__ offsets,
                   const W* __restrict__ w1, const W* __restrict__ v1,
                   const float* __restrict__ s1, const float* __restrict__ s2, int64_t d,
                   int64_t n_ff, GluActivation activation, float* __restrict__ act) {
    const int64_t e = blockIdx.y;
    const int64_t start = offsets[e];
    const int64_t count = offsets[e + 1] - start;
    const int64_t j0 =
        (static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32) * kGateUpWarpRows;
    if (count == 0 || j0 >= n_ff) {
        return;
    }
    constexpr int R = 2 * kGateUpWarpRows;  // gate rows, then the same rows of up
    const W* rows[R];
#pragma unroll
    for (int r = 0; r < kGateUpWarpRows; ++r) {
        const int64_t row = e * n_ff + min64(j0 + r, n_ff - 1);
        rows[r] = w1 + row * d;
        rows[kGateUpWarpRows + r] = v1 + row * d;
    }
    for (int64_t c0 = 0; c0 < count; c0 += M) {
        const int m = static_cast<int>(min64(M, count - c0));
        float acc[R][M] = {};
        lane_dot<W, R, M>(rows, d, x + (start + c0) * d, d, m, acc);
#pragma unroll
        for (int r = 0; r < R; ++r) {
#pragma unroll
            for (int t = 0; t < M; ++t) {
                if (t < m) {
                    acc[r][t] = warp_sum(acc[r][t]);
                }
            }
        }
        if (threadIdx.x % 32 == 0) {
#pragma unroll
            for (int r = 0; r < kGateUpWarpRows; ++r) {
                const int64_t j = j0 + r;
                if (j >= n_ff) {
                    break;
                }
                const float gate_scale = s1 != nullptr ? s1[e * n_ff + j] : 1.0f;
                const float up_scale = s2 != nullptr ? s2[e * n_ff + j] : 1.0f;
#pragma unroll
                for (int t = 0; t < M; ++t) {
                    if (t < m) {
                        const float g = acc[r][t] * gate_scale;
                        const float u = acc[kGateUpWarpRows + r][t] * up_scale;
                        act[(start + c0 + t) * n_ff + j] = activate(g, activation) * u;
                    }
                }
            }
        }
    }
}

// grid: (ceil(d / (kDownThreads * 8)), n_parts, n_expert) blocks of kDownThreads. Part p sums
// rows [p * kDownSplitRows, (p + 1) * kDownSplitRows) of w2_e into partial[p][slot].
template <typename W, int M>
__global__ void __launch_bounds__(kDownThreads)
    down_kernel(const float* __restrict__ act, const int32_t* __restrict__ offsets,
                const W* __restrict__ w2, const float* __restrict__ s2, int64_t d, int64_t n_ff,
                int64_t n_slots, float* __restrict__ partial) {
    __shared__ float as[M][kDownSplitRows];
    const int64_t e = blockIdx.z;
    const int64_t start = offsets[e];
    const int64_t count = offsets[e + 1] - start;
    if (count == 0) {
        return;
    }
    const int64_t part = blockIdx.y;
    const int64_t j_begin = part * kDownSplitRows;
    const int64_t n_j = min64(kDownSplitRows, n_ff - j_begin);
    const int64_t c = (static_cast<int64_t>(blockIdx.x) * kDownThreads + threadIdx.x) * kDownColumns;
    const bool active = c < d;
    float scale[kDownColumns];
#pragma unroll
    for (int i = 0; i < kDownColumns; ++i) {
        scale[i] = s2 != nullptr && active ? s2[e * d + c + i] : 1.0f;
    }
    const W* column = w2 + (e * n_ff + j_begin) * d + c;
    for (int64_t c0 = 0; c0 < count; c0 += M) {
        const int m = static_cast<int>(min64(M, count - c0));
        __syncthreads();  // the previous chunk's reads of `as` are done
        for (int64_t i = threadIdx.x; i < m * n_j; i += kDownThreads) {
            const int64_t t = i / n_j;
            const int64_t j = i % n_j;
            as[t][j] = act[(start + c0 + t) * n_ff + j_begin + j];
        }
        __syncthreads();
        if (!active) {
            continue;
        }
        float acc[M][kDownColumns] = {};
#pragma unroll 4
        for (int64_t j = 0; j < n_j; ++j) {
            float w[kDownColumns];
            load8(column + j * d, w);
#pragma unroll
            for (int t = 0; t < M; ++t) {
                if (t < m) {
                    const float a = as[t][j];
#pragma unroll
                    for (int i = 0; i < kDownColumns; ++i) {
                        acc[t][i] = fmaf(a, w[i], acc[t][i]);
                    }
                }
            }
        }
#pragma unroll
        for (int t = 0; t < M; ++t) {
            if (t < m) {
                float* out = partial + (part * n_slots + start + c0 + t) * d + c;
                float4 lo = make_float4(acc[t][0] * scale[0], acc[t][1] * scale[1],
                                        acc[t][2] * scale[2], acc[t][3] * scale[3]);
                float4 hi = make_float4(acc[t][4] * scale[4], acc[t][5] * scale[5],
                                        acc[t][6] * scale[6], acc[t][7] * scale[7]);
                reinterpret_cast<float4*>(out)[0] = lo;
                reinterpret_cast<float4*>(out)[1] = hi;
            }
        }
    }
}

// y[slot][c] = Σ_p partial[p][slot][c], parts in order. Slots of no expert are never read.
__global__ void sum_parts_kernel(const float* __restrict__ partial, int64_t n_parts,
                                 int64_t n_values, float* __restrict__ y) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n_values;
         i += stride) {
        float sum = 0.0f;
        for (int64_t p = 0; p < n_parts; ++p) {
            sum += partial[p * n_values + i];
        }
        y[i] = sum;
    }
}

unsigned blocks_for(int64_t n, int64_t per_block) {
    return static_cast<unsigned>((n + per_block - 1) / per_block);
}

// Calls f(std::integral_constant<int, M>{}) with the smallest of 1, 2, 4, 8 that holds m.
template <typename F>
void with_token_tile(int64_t m, F&& f) {
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

}  // namespace

bool skinny_row_fits(const void* data, DeviceDType type, int64_t cols) {
    return cols > 0 && cols % skinny_vector_width(type) == 0 &&
           reinterpret_cast<uintptr_t>(data) % 16 == 0;
}

Status skinny_dense(const DenseJob& job, cudaStream_t stream) {
    const DenseWeight& w = job.weight;
    if (job.m <= 0 || job.m > kSkinnyMaxTokens || !skinny_row_fits(w.data, w.type, w.cols) ||
        reinterpret_cast<uintptr_t>(job.x) % 16 != 0) {
        return invalid_argument("skinny_dense: " + std::to_string(job.m) + " tokens of " +
                                std::to_string(w.cols) + " values do not fit the kernel");
    }
    const unsigned grid = blocks_for(job.n_rows, kWarps * kDenseWarpRows);
    with_weight_type(w.type, [&](auto tag) {
        using W = decltype(tag);
        with_token_tile(job.m, [&](auto tile) {
            dense_kernel<W, decltype(tile)::value><<<grid, kThreads, 0, stream>>>(
                static_cast<const W*>(w.data), w.scales, w.cols, job.row_begin, job.n_rows, job.x,
                static_cast<int>(job.m), job.y, job.ldy, job.beta);
        });
    });
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

Status skinny_gate_up(const float* x_sorted, const int32_t* offsets, const ExpertWeights& weights,
                      const ExpertShape& shape, GluActivation activation, float* act,
                      cudaStream_t stream) {
    if (shape.n_tokens <= 0 || shape.n_tokens > kSkinnyExpertMaxTokens ||
        !skinny_row_fits(weights.w1, weights.type, shape.d_model) ||
        !skinny_row_fits(weights.v1, weights.type, shape.d_model)) {
        return invalid_argument("skinny_gate_up: shape does not fit the kernel");
    }
    const dim3 grid(blocks_for(shape.n_ff, kWarps * kGateUpWarpRows),
                    static_cast<unsigned>(shape.n_expert));
    with_weight_type(weights.type, [&](auto tag) {
        using W = decltype(tag);
        with_token_tile(shape.n_tokens, [&](auto tile) {
            gate_up_kernel<W, decltype(tile)::value><<<grid, kThreads, 0, stream>>>(
                x_sorted, offsets, static_cast<const W*>(weights.w1),
                static_cast<const W*>(weights.v1), weights.w1_scales, weights.v1_scales,
                shape.d_model, shape.n_ff, activation, act);
        });
    });
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

Status skinny_down(const float* act, const int32_t* offsets, const ExpertWeights& weights,
                   const ExpertShape& shape, float* partial, float* y, cudaStream_t stream) {
    if (shape.n_tokens <= 0 || shape.n_tokens > kSkinnyExpertMaxTokens ||
        shape.d_model % kDownColumns != 0 ||
        !skinny_row_fits(weights.w2, weights.type, shape.d_model)) {
        return invalid_argument("skinny_down: shape does not fit the kernel");
    }
    const int64_t n_parts = (shape.n_ff + kDownSplitRows - 1) / kDownSplitRows;
    const dim3 grid(blocks_for(shape.d_model, kDownThreads * kDownColumns),
                    static_cast<unsigned>(n_parts), static_cast<unsigned>(shape.n_expert));
    with_weight_type(weights.type, [&](auto tag) {
        using W = decltype(tag);
        with_token_tile(shape.n_tokens, [&](auto tile) {
            down_kernel<W, decltype(tile)::value><<<grid, kDownThreads, 0, stream>>>(
                act, offsets, static_cast<const W*>(weights.w2), weights.w2_scales,
                shape.d_model, shape.n_ff, shape.n_slots, partial);
        });
    });
    SLUICE_CUDA_CHECK(cudaGetLastError());
    const int64_t n_values = shape.n_slots * shape.d_model;
    const auto blocks = static_cast<unsigned>(std::min<int64_t>(blocks_for(n_values, 256), 4096));
    sum_parts_kernel<<<blocks, 256, 0, stream>>>(partial, n_parts, n_values, y);
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

}  // namespace sluice::inference::cuda
