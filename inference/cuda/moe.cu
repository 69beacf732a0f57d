#include <cmath>

#include "inference/cuda/device_math.cuh"
#include "inference/cuda/int4_experts.cuh"
#include "inference/cuda/moe.cuh"
#include "inference/cuda/skinny.cuh"

namespace sluice::inference::cuda {

namespace {

// One thread per token; n_expert is small (16 for DBRX), so the CPU's sequential order of
// operations is kept: max, exp, sum, scale, then selection.
__global__ void route_kernel(const float* __restrict__ logits, int64_t n_tokens, int n_expert,
                             int k, bool normalise, double norm_p, int32_t* __restrict__ experts,
                             float* __restrict__ weights) {
    const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (t >= n_tokens) {
        return;
    }
    float probs[kMaxRouterExperts];
    const float* row = logits + t * n_expert;
    float max_value = row[0];
    for (int e = 1; e < n_expert; ++e) {
        max_value = fmaxf(max_value, row[e]);
    }
    float sum = 0;
    for (int e = 0; e < n_expert; ++e) {
        probs[e] = expf(row[e] - max_value);
        sum += probs[e];
    }
    const float inv = 1.0f / sum;
    for (int e = 0; e < n_expert; ++e) {
        probs[e] *= inv;
    }
    bool taken[kMaxRouterExperts] = {};
    int32_t chosen[kMaxRouterExperts];
    for (int j = 0; j < k; ++j) {
        int best = -1;
        for (int e = 0; e < n_expert; ++e) {
            // Strictly greater keeps the lower index on ties.
            if (!taken[e] && (best < 0 || probs[e] > probs[best])) {
                best = e;
            }
        }
        taken[best] = true;
        chosen[j] = best;
    }
    double norm = 1.0;
    if (normalise) {
        double s = 0;
        for (int j = 0; j < k; ++j) {
            s += pow(fabs(static_cast<double>(probs[chosen[j]])), norm_p);
        }
        norm = pow(s, 1.0 / norm_p);
    }
    for (int j = 0; j < k; ++j) {
        experts[t * k + j] = chosen[j];
        weights[t * k + j] = static_cast<float>(static_cast<double>(probs[chosen[j]]) / norm);
    }
}

// One block; thread e owns expert e. Scanning the pairs in order gives each expert its slots in
// token order, the CPU's grouping, without atomics (so the result is deterministic).
__global__ void permute_kernel(const int32_t* __restrict__ experts, int64_t n_pairs, int k,
                               int n_expert, int32_t* offsets, int32_t* pair_slot,
                               int32_t* slot_token) {
    extern __shared__ int32_t counts[];  // [n_expert + 1]
    const int e = threadIdx.x;
    if (e < n_expert) {
        int32_t count = 0;
        for (int64_t p = 0; p < n_pairs; ++p) {
            count += experts[p] == e ? 1 : 0;
        }
        counts[e] = count;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        int32_t start = 0;
        for (int i = 0; i < n_expert; ++i) {
            const int32_t c = counts[i];
            counts[i] = start;
            offsets[i] = start;
            start += c;
        }
        offsets[n_expert] = start;
    }
    __syncthreads();
    if (e < n_expert) {
        int32_t slot = counts[e];
        for (int64_t p = 0; p < n_pairs; ++p) {
            if (experts[p] == e) {
                pair_slot[p] = slot;
                slot_token[slot] = static_cast<int32_t>(p / k);
                ++slot;
            }
        }
    }
}

__global__ void gather_kernel(const float* __restrict__ x, const int32_t* __restrict__ slot_token,
                              int64_t d, float* __restrict__ x_sorted) {
    const int64_t slot = blockIdx.x;
    const float* src = x + static_cast<int64_t>(slot_token[slot]) * d;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
        x_sorted[slot * d + j] = src[j];
    }
}

// Tiles of the grouped products: kTileM slots x kTileN outputs per block, kTileK of the
// reduction at a time; 256 threads, each owning one output column and kTileM / 4 rows.
constexpr int kTileM = 16;
constexpr int kTileN = 64;
constexpr int kTileK = 32;
constexpr int kThreads = 256;
constexpr int kRowsPerThread = kTileM / (kThreads / kTileN);
static_assert(kThreads % kTileN == 0 && kTileM % (kThreads / kTileN) == 0, "tile shape");
static_assert((kTileM * kTileK) % kThreads == 0 && (kTileN * kTileK) % kThreads == 0, "loads");

// grid: (ceil(n_ff / kTileN), n_expert, ceil(n_slots / kTileM)); blocks past an expert's slot
// count leave at once.
template <typename T>
__global__ void gate_up_kernel(const float* __restrict__ x, const int32_t* __restrict__ offsets,
                               const T* __restrict__ w1, const T* __restrict__ v1,
                               const float* __restrict__ s1, const float* __restrict__ s2,
                               int64_t d, int64_t n_ff, GluActivation activation,
                               float* __restrict__ act) {
    __shared__ float xs[kTileM][kTileK];
    __shared__ float gs[kTileN][kTileK + 1];
    __shared__ float us[kTileN][kTileK + 1];
    const int64_t e = blockIdx.y;
    const int64_t start = offsets[e];
    const int64_t count = offsets[e + 1] - start;
    const int64_t m0 = static_cast<int64_t>(blockIdx.z) * kTileM;
    if (m0 >= count) {
        return;
    }
    const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kTileN;
    const int col = threadIdx.x % kTileN;
    const int row0 = threadIdx.x / kTileN;
    float g[kRowsPerThread] = {};
    float u[kRowsPerThread] = {};
    for (int64_t k0 = 0; k0 < d; k0 += kTileK) {
        for (int i = threadIdx.x; i < kTileM * kTileK; i += kThreads) {
            const int r = i / kTileK;
            const int c = i % kTileK;
            const bool ok = m0 + r < count && k0 + c < d;
            xs[r][c] = ok ? x[(start + m0 + r) * d + k0 + c] : 0.0f;
        }
        for (int i = threadIdx.x; i < kTileN * kTileK; i += kThreads) {
            const int r = i / kTileK;
            const int c = i % kTileK;
            const bool ok = n0 + r < n_ff && k0 + c < d;
            const int64_t at = (e * n_ff + n0 + r) * d + k0 + c;
            gs[r][c] = ok ? to_float(w1[at]) : 0.0f;
            us[r][c] = ok ? to_float(v1[at]) : 0.0f;
        }
        __syncthreads();
#pragma unroll 8
        for (int kk = 0; kk < kTileK; ++kk) {
            const float wg = gs[col][kk];
            const float wu = us[col][kk];
#pragma unroll
            for (int i = 0; i < kRowsPerThread; ++i) {
                const float xv = xs[row0 + i * (kThreads / kTileN)][kk];
                g[i] += xv * wg;
                u[i] += xv * wu;
            }
        }
        __syncthreads();
    }
    if (n0 + col >= n_ff) {
        return;
    }
    const float gate_scale = s1 != nullptr ? s1[e * n_ff + n0 + col] : 1.0f;
    const float up_scale = s2 != nullptr ? s2[e * n_ff + n0 + col] : 1.0f;
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i) {
        const int64_t r = m0 + row0 + i * (kThreads / kTileN);
        if (r < count) {
            act[(start + r) * n_ff + n0 + col] =
                activate(g[i] * gate_scale, activation) * (u[i] * up_scale);
        }
    }
}

// grid: (ceil(d / kTileN), n_expert, ceil(n_slots / kTileM)).
template <typename T>
__global__ void down_kernel(const float* __restrict__ act, const int32_t* __restrict__ offsets,
                            const T* __restrict__ w2, const float* __restrict__ s2, int64_t d,
                            int64_t n_ff, float* __restrict__ y) {
    __shared__ float as[kTileM][kTileK];
    __shared__ float ws[kTileK][kTileN];
    const int64_t e = blockIdx.y;
    const int64_t start = offsets[e];
    const int64_t count = offsets[e + 1] - start;
    const int64_t m0 = static_cast<int64_t>(blockIdx.z) * kTileM;
    if (m0 >= count) {
        return;
    }
    const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kTileN;
    const int col = threadIdx.x % kTileN;
    const int row0 = threadIdx.x / kTileN;
    float sum[kRowsPerThread] = {};
    for (int64_t k0 = 0; k0 < n_ff; k0 += kTileK) {
        for (int i = threadIdx.x; i < kTileM * kTileK; i += kThreads) {
            const int r = i / kTileK;
            const int c = i % kTileK;
            const bool ok = m0 + r < count && k0 + c < n_ff;
            as[r][c] = ok ? act[(start + m0 + r) * n_ff + k0 + c] : 0.0f;
        }
        // w2_e row f is [d_model]: read along the output dimension, coalesced.
        for (int i = threadIdx.x; i < kTileK * kTileN; i += kThreads) {
            const int r = i / kTileN;
            const int c = i % kTileN;
            const bool ok = k0 + r < n_ff && n0 + c < d;
            ws[r][c] = ok ? to_float(w2[(e * n_ff + k0 + r) * d + n0 + c]) : 0.0f;
        }
        __syncthreads();
#pragma unroll 8
        for (int kk = 0; kk < kTileK; ++kk) {
            const float w = ws[kk][col];
#pragma unroll
            for (int i = 0; i < kRowsPerThread; ++i) {
                sum[i] += as[row0 + i * (kThreads / kTileN)][kk] * w;
            }
        }
        __syncthreads();
    }
    if (n0 + col >= d) {
        return;
    }
    const float scale = s2 != nullptr ? s2[e * d + n0 + col] : 1.0f;
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i) {
        const int64_t r = m0 + row0 + i * (kThreads / kTileN);
        if (r < count) {
            y[(start + r) * d + n0 + col] = sum[i] * scale;
        }
    }
}

__global__ void unpermute_kernel(const float* __restrict__ y, const int32_t* __restrict__ pair_slot,
                                 const int32_t* __restrict__ experts,
                                 const float* __restrict__ weights, int k, int64_t d,
                                 float* __restrict__ x) {
    const int64_t t = blockIdx.x;
    // The token's choices in expert order (k is small; every thread sorts the same few values).
    int order[kMaxRouterExperts];
    for (int j = 0; j < k; ++j) {
        order[j] = j;
    }
    for (int j = 1; j < k; ++j) {
        const int v = order[j];
        int i = j;
        while (i > 0 && experts[t * k + order[i - 1]] > experts[t * k + v]) {
            order[i] = order[i - 1];
            --i;
        }
        order[i] = v;
    }
    for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
        float acc = x[t * d + c];
        for (int j = 0; j < k; ++j) {
            const int64_t pair = t * k + order[j];
            acc += weights[pair] * y[static_cast<int64_t>(pair_slot[pair]) * d + c];
        }
        x[t * d + c] = acc;
    }
}

unsigned blocks_for(int64_t n, int64_t per_block) {
    return static_cast<unsigned>((n + per_block - 1) / per_block);
}

}  // namespace

Status route_top_k(const float* logits, int64_t n_tokens, int64_t n_expert, int64_t k,
                   std::optional<double> norm_p, int32_t* experts, float* weights,
                   cudaStream_t stream) {
    if (n_tokens == 0) {
        return Status::ok_status();
    }
    if (n_expert <= 0 || n_expert > kMaxRouterExperts || k <= 0 || k > n_expert) {
        return invalid_argument("route_top_k: " + std::to_string(n_expert) + " experts, top " +
                                std::to_string(k) + " (at most " +
                                std::to_string(kMaxRouterExperts) + " experts)");
    }
    route_kernel<<<blocks_for(n_tokens, 128), 128, 0, stream>>>(
        logits, n_tokens, static_cast<int>(n_expert), static_cast<int>(k), norm_p.has_value(),
        norm_p.value_or(1.0), experts, weights);
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

Status permute_by_expert(const int32_t* experts, int64_t n_tokens, int64_t k, int64_t n_expert,
                         const Permutation& perm, const float* x, int64_t d, float* x_sorted,
                         cudaStream_t stream) {
    if (n_tokens == 0) {
        return Status::ok_status();
    }
    if (n_expert <= 0 || n_expert > kMaxRouterExperts || k <= 0) {
        return invalid_argument("permute_by_expert: " + std::to_string(n_expert) + " experts");
    }
    const int64_t n_pairs = n_tokens * k;
    const auto smem = static_cast<size_t>(n_expert + 1) * sizeof(int32_t);
    permute_kernel<<<1, 64, smem, stream>>>(experts, n_pairs, static_cast<int>(k),
                                            static_cast<int>(n_expert), perm.offsets,
                                            perm.pair_slot, perm.slot_token);
    SLUICE_CUDA_CHECK(cudaGetLastError());
    gather_kernel<<<static_cast<unsigned>(n_pairs), 256, 0, stream>>>(x, perm.slot_token, d,
                                                                      x_sorted);
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

namespace {

Status check_expert_args(const char* what, const ExpertWeights& weights,
                         const ExpertShape& shape) {
    if (shape.n_expert <= 0 || shape.d_model <= 0 || shape.n_ff <= 0 || shape.n_slots < 0 ||
        shape.n_tokens < 0) {
        return invalid_argument(std::string(what) + ": bad shape");
    }
    const bool fp8 = weights.type == DeviceDType::kF8E4M3;
    const bool scaled = weights.w1_scales != nullptr && weights.v1_scales != nullptr &&
                        weights.w2_scales != nullptr;
    if (fp8 != scaled) {
        return invalid_argument(std::string(what) +
                                ": fp8 expert weights need their scales, other types none");
    }
    return Status::ok_status();
}

bool streams_weights(const ExpertWeights& weights, const ExpertShape& shape) {
    return shape.n_tokens > 0 && shape.n_tokens <= kSkinnyExpertMaxTokens &&
           skinny_row_fits(weights.w1, weights.type, shape.d_model) &&
           skinny_row_fits(weights.v1, weights.type, shape.d_model) &&
           skinny_row_fits(weights.w2, weights.type, shape.d_model) && shape.d_model % 8 == 0;
}

}  // namespace

Status expert_gate_up(const float* x_sorted, const int32_t* offsets, const ExpertWeights& weights,
                      const ExpertShape& shape, GluActivation activation, float* act,
                      cudaStream_t stream) {
    if (shape.n_slots == 0) {
        return Status::ok_status();
    }
    if (weights.type == DeviceDType::kInt4) {
        return int4_gate_up(x_sorted, offsets, weights, shape, activation, act, stream);
    }
    SLUICE_RETURN_IF_ERROR(check_expert_args("expert_gate_up", weights, shape));
    if (streams_weights(weights, shape) && reinterpret_cast<uintptr_t>(x_sorted) % 16 == 0) {
        return skinny_gate_up(x_sorted, offsets, weights, shape, activation, act, stream);
    }
    const dim3 grid(blocks_for(shape.n_ff, kTileN), static_cast<unsigned>(shape.n_expert),
                    blocks_for(shape.n_slots, kTileM));
    with_weight_type(weights.type, [&](auto tag) {
        using T = decltype(tag);
        gate_up_kernel<<<grid, kThreads, 0, stream>>>(
            x_sorted, offsets, static_cast<const T*>(weights.w1), static_cast<const T*>(weights.v1),
            weights.w1_scales, weights.v1_scales, shape.d_model, shape.n_ff, activation, act);
    });
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

Status expert_down(const float* act, const int32_t* offsets, const ExpertWeights& weights,
                   const ExpertShape& shape, const DownSplit& split, float* y,
                   cudaStream_t stream) {
    if (shape.n_slots == 0) {
        return Status::ok_status();
    }
    if (weights.type == DeviceDType::kInt4) {
        return int4_down(act, offsets, weights, shape, y, stream);
    }
    SLUICE_RETURN_IF_ERROR(check_expert_args("expert_down", weights, shape));
    if (streams_weights(weights, shape) && split.partial != nullptr &&
        shape.n_slots <= split.max_slots) {
        return skinny_down(act, offsets, weights, shape, split.partial, y, stream);
    }
    const dim3 grid(blocks_for(shape.d_model, kTileN), static_cast<unsigned>(shape.n_expert),
                    blocks_for(shape.n_slots, kTileM));
    with_weight_type(weights.type, [&](auto tag) {
        using T = decltype(tag);
        down_kernel<<<grid, kThreads, 0, stream>>>(act, offsets, static_cast<const T*>(weights.w2),
                                                   weights.w2_scales, shape.d_model, shape.n_ff,
                                                   y);
    });
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

Status unpermute_add(const float* y, const int32_t* pair_slot, const int32_t* experts,
                     const float* weights, int64_t n_tokens, int64_t k, int64_t d, float* x,
                     cudaStream_t stream) {
    if (n_tokens == 0) {
        return Status::ok_status();
    }
    if (k <= 0 || k > kMaxRouterExperts || d <= 0) {
        return invalid_argument("unpermute_add: bad shape");
    }
    unpermute_kernel<<<static_cast<unsigned>(n_tokens), 256, 0, stream>>>(
        y, pair_slot, experts, weights, static_cast<int>(k), d, x);
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

}  // namespace sluice::inference::cuda
