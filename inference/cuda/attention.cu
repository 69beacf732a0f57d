#include <cmath>

#include "inference/cuda/attention.cuh"
#include "inference/cuda/device_math.cuh"

namespace sluice::inference::cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kPerLane = static_cast<int>(kMaxAttentionHeadDim / 32);

__global__ void paged_attention_kernel(AttentionArgs a, float scale) {
    __shared__ float warp_max_s[kWarps];
    __shared__ float warp_sum_s[kWarps];
    __shared__ float warp_acc[kWarps][kMaxAttentionHeadDim];

    const int64_t head = blockIdx.x;
    const int64_t t = blockIdx.y;
    const int lane = threadIdx.x % 32;
    const int warp = threadIdx.x / 32;
    const int64_t hd = a.head_dim;
    const int64_t d = a.n_head * hd;
    const int64_t n_kv = a.n_head_kv * hd;
    const int64_t n_qkv = d + 2 * n_kv;
    const int64_t kv_col = a.n_rep == 0 ? head / (a.n_head / a.n_head_kv) * hd
                                        : ((a.head_begin + head) / a.n_rep - a.kv_head_begin) * hd;
    const int32_t pos = a.positions[t];
    const int32_t* table = a.block_tables + a.table_offset[a.token_seq[t]];

    float q[kPerLane];
    float acc[kPerLane];
    const float* qi = a.qkv + t * n_qkv + head * hd;
#pragma unroll
    for (int r = 0; r < kPerLane; ++r) {
        const int64_t j = lane + 32 * r;
        q[r] = j < hd ? qi[j] : 0.0f;
        acc[r] = 0.0f;
    }
    float m = -INFINITY;
    float l = 0.0f;
    for (int32_t p = warp; p <= pos; p += kWarps) {
        const int64_t slot =
            (static_cast<int64_t>(table[p / a.block_size]) * a.block_size + p % a.block_size) *
                n_kv +
            kv_col;
        const float* kp = a.k_cache + slot;
        const float* vp = a.v_cache + slot;
        float dot = 0.0f;
#pragma unroll
        for (int r = 0; r < kPerLane; ++r) {
            const int64_t j = lane + 32 * r;
            if (j < hd) {
                dot += q[r] * kp[j];
            }
        }
        const float s = warp_sum(dot) * scale;
        const float m_new = fmaxf(m, s);
        const float correction = expf(m - m_new);
        const float weight = expf(s - m_new);
        l = l * correction + weight;
#pragma unroll
        for (int r = 0; r < kPerLane; ++r) {
            const int64_t j = lane + 32 * r;
            acc[r] = acc[r] * correction + (j < hd ? weight * vp[j] : 0.0f);
        }
        m = m_new;
    }
    if (lane == 0) {
        warp_max_s[warp] = m;
        warp_sum_s[warp] = l;
    }
#pragma unroll
    for (int r = 0; r < kPerLane; ++r) {
        const int64_t j = lane + 32 * r;
        if (j < hd) {
            warp_acc[warp][j] = acc[r];
        }
    }
    __syncthreads();
    // Position 0 is always warp 0's, so the overall max is finite; a warp without keys has
    // m = -inf and contributes exp(-inf) = 0.
    float m_all = warp_max_s[0];
    for (int w = 1; w < kWarps; ++w) {
        m_all = fmaxf(m_all, warp_max_s[w]);
    }
    float l_all = 0.0f;
    float factor[kWarps];
    for (int w = 0; w < kWarps; ++w) {
        factor[w] = expf(warp_max_s[w] - m_all);
        l_all += warp_sum_s[w] * factor[w];
    }
    float* oi = a.out + t * d + head * hd;
    for (int64_t j = threadIdx.x; j < hd; j += blockDim.x) {
        float v = 0.0f;
        for (int w = 0; w < kWarps; ++w) {
            v += warp_acc[w][j] * factor[w];
        }
        oi[j] = v / l_all;
    }
}

}  // namespace

Status paged_attention(const AttentionArgs& args, cudaStream_t stream) {
    if (args.n_tokens == 0) {
        return Status::ok_status();
    }
    if (args.head_dim <= 0 || args.head_dim > kMaxAttentionHeadDim || args.n_head <= 0 ||
        args.n_head_kv <= 0 || args.block_size <= 0 ||
        (args.n_rep == 0 ? args.n_head % args.n_head_kv != 0
                         : args.n_rep < 0 || args.head_begin < 0 ||
                               args.head_begin / args.n_rep < args.kv_head_begin ||
                               (args.head_begin + args.n_head - 1) / args.n_rep >=
                                   args.kv_head_begin + args.n_head_kv)) {
        return invalid_argument("paged_attention: head_dim " + std::to_string(args.head_dim) +
                                " (at most " + std::to_string(kMaxAttentionHeadDim) + "), " +
                                std::to_string(args.n_head) + " heads, " +
                                std::to_string(args.n_head_kv) + " kv heads");
    }
    const float scale = 1.0f / std::sqrt(static_cast<float>(args.head_dim));
    const dim3 grid(static_cast<unsigned>(args.n_head), static_cast<unsigned>(args.n_tokens));
    paged_attention_kernel<<<grid, kWarps * 32, 0, stream>>>(args, scale);
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

}  // namespace sluice::inference::cuda
