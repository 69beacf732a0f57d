#include <cmath>
#include <string>

#include "inference/cuda/attention_split_k.cuh"
#include "inference/cuda/device_math.cuh"

namespace sluice::inference::cuda {

namespace {

constexpr int kWarps = 4;

// A launch's partial results in the workspace: accumulators [n_tokens, n_head, n_partitions,
// head_dim], then (max, sum) pairs [n_tokens, n_head, n_partitions, 2].
struct Partials {
    float* acc = nullptr;
    float* max_sum = nullptr;
    int32_t n_partitions = 0;
};

// grid (n_head_kv * chunks, n_tokens, n_partitions); a chunk is up to kHeads query heads of one
// KV head's group. kPerLane values of head_dim per lane (head_dim <= 32 * kPerLane).
template <int kHeads, int kPerLane>
__global__ void __launch_bounds__(kWarps * 32)
    partition_kernel(AttentionArgs a, Partials w, float scale) {
    static_assert(kHeads >= 1 && kHeads <= 8, "a block serves 1 to 8 query heads");
    static_assert(kPerLane >= 1 && kPerLane * 32 <= kMaxAttentionHeadDim, "head_dim per lane");
    __shared__ float warp_max_s[kWarps][kHeads];
    __shared__ float warp_sum_s[kWarps][kHeads];
    __shared__ float warp_acc[kWarps][kHeads][kPerLane * 32];

    const int64_t group = a.n_head / a.n_head_kv;
    const int64_t chunks = (group + kHeads - 1) / kHeads;
    const int64_t kv_head = blockIdx.x / chunks;
    const int64_t chunk = blockIdx.x % chunks;
    const int64_t first_head = kv_head * group + chunk * kHeads;
    const int n_heads =
        static_cast<int>(group - chunk * kHeads < kHeads ? group - chunk * kHeads : kHeads);
    const int64_t t = blockIdx.y;
    const int32_t part = static_cast<int32_t>(blockIdx.z);
    const int32_t pos = a.positions[t];
    const int32_t begin = part * kAttentionPartition;
    if (begin > pos) {
        return;  // the whole block leaves, before any barrier
    }
    const int32_t end =
        begin + kAttentionPartition < pos + 1 ? begin + kAttentionPartition : pos + 1;
    const int lane = threadIdx.x % 32;
    const int warp = threadIdx.x / 32;
    const int64_t hd = a.head_dim;
    const int64_t d = a.n_head * hd;
    const int64_t n_kv = a.n_head_kv * hd;
    const int64_t n_qkv = d + 2 * n_kv;
    const int64_t kv_col = kv_head * hd;
    const int32_t* table = a.block_tables + a.table_offset[a.token_seq[t]];

    float q[kHeads][kPerLane];
    float acc[kHeads][kPerLane];
    float m[kHeads];
    float l[kHeads];
#pragma unroll
    for (int g = 0; g < kHeads; ++g) {
        const float* qi = a.qkv + t * n_qkv + (first_head + g) * hd;
#pragma unroll
        for (int r = 0; r < kPerLane; ++r) {
            const int64_t j = lane + 32 * r;
            q[g][r] = g < n_heads && j < hd ? qi[j] : 0.0f;
            acc[g][r] = 0.0f;
        }
        m[g] = -INFINITY;
        l[g] = 0.0f;
    }
    // Each position's K and V row is loaded once, by one warp, for every head of the chunk.
    for (int32_t p = begin + warp; p < end; p += kWarps) {
        const int64_t slot =
            (static_cast<int64_t>(table[p / a.block_size]) * a.block_size + p % a.block_size) *
                n_kv +
            kv_col;
        const float* kp = a.k_cache + slot;
        const float* vp = a.v_cache + slot;
        float k[kPerLane];
        float v[kPerLane];
#pragma unroll
        for (int r = 0; r < kPerLane; ++r) {
            const int64_t j = lane + 32 * r;
            k[r] = j < hd ? kp[j] : 0.0f;
            v[r] = j < hd ? vp[j] : 0.0f;
        }
#pragma unroll
        for (int g = 0; g < kHeads; ++g) {
            if (g < n_heads) {  // uniform over the block
                float dot = 0.0f;
#pragma unroll
                for (int r = 0; r < kPerLane; ++r) {
                    dot += q[g][r] * k[r];
                }
                const float s = warp_sum(dot) * scale;
                const float m_new = fmaxf(m[g], s);
                const float correction = expf(m[g] - m_new);
                const float weight = expf(s - m_new);
                l[g] = l[g] * correction + weight;
#pragma unroll
                for (int r = 0; r < kPerLane; ++r) {
                    acc[g][r] = acc[g][r] * correction + weight * v[r];
                }
                m[g] = m_new;
            }
        }
    }
#pragma unroll
    for (int g = 0; g < kHeads; ++g) {
        if (lane == 0) {
            warp_max_s[warp][g] = m[g];
            warp_sum_s[warp][g] = l[g];
        }
#pragma unroll
        for (int r = 0; r < kPerLane; ++r) {
            const int64_t j = lane + 32 * r;
            if (j < hd) {
                warp_acc[warp][g][j] = acc[g][r];
            }
        }
    }
    __syncthreads();
    // Position `begin` is warp 0's, so each head's max is finite; a warp without keys has
    // m = -inf and contributes exp(-inf) = 0.
    for (int64_t i = threadIdx.x; i < n_heads * hd; i += blockDim.x) {
        const int g = static_cast<int>(i / hd);
        const int64_t j = i % hd;
        float m_all = warp_max_s[0][g];
        for (int other = 1; other < kWarps; ++other) {
            m_all = fmaxf(m_all, warp_max_s[other][g]);
        }
        float sum = 0.0f;
        float value = 0.0f;
        for (int other = 0; other < kWarps; ++other) {
            const float factor = expf(warp_max_s[other][g] - m_all);
            sum += warp_sum_s[other][g] * factor;
            value += warp_acc[other][g][j] * factor;
        }
        const int64_t cell = (t * a.n_head + first_head + g) * w.n_partitions + part;
        w.acc[cell * hd + j] = value;
        if (j == 0) {
            w.max_sum[2 * cell] = m_all;
            w.max_sum[2 * cell + 1] = sum;
        }
    }
}

// grid (n_head, n_tokens): out = Σ_p acc_p · exp(max_p - max) / Σ_p sum_p · exp(max_p - max)
// over the partitions that hold positions of the token, in ascending order.
__global__ void merge_kernel(AttentionArgs a, Partials w) {
    const int64_t head = blockIdx.x;
    const int64_t t = blockIdx.y;
    const int64_t hd = a.head_dim;
    const int32_t needed = a.positions[t] / kAttentionPartition + 1;
    // The launcher's precondition makes needed <= n_partitions; the bound keeps a broken caller
    // from reading past the workspace.
    const int32_t used = needed < w.n_partitions ? needed : w.n_partitions;
    const int64_t first = (t * a.n_head + head) * w.n_partitions;
    float m_all = -INFINITY;
    for (int32_t p = 0; p < used; ++p) {
        m_all = fmaxf(m_all, w.max_sum[2 * (first + p)]);
    }
    float sum = 0.0f;
    for (int32_t p = 0; p < used; ++p) {
        sum += w.max_sum[2 * (first + p) + 1] * expf(w.max_sum[2 * (first + p)] - m_all);
    }
    float* oi = a.out + t * a.n_head * hd + head * hd;
    for (int64_t j = threadIdx.x; j < hd; j += blockDim.x) {
        float value = 0.0f;
        for (int32_t p = 0; p < used; ++p) {
            value += w.acc[(first + p) * hd + j] * expf(w.max_sum[2 * (first + p)] - m_all);
        }
        oi[j] = value / sum;
    }
}

template <int kHeads>
void launch_partitions(const dim3& grid, int64_t head_dim, const AttentionArgs& args,
                       const Partials& partials, float scale, cudaStream_t stream) {
    const unsigned threads = kWarps * 32;
    if (head_dim <= 64) {
        partition_kernel<kHeads, 2><<<grid, threads, 0, stream>>>(args, partials, scale);
    } else if (head_dim <= 128) {
        partition_kernel<kHeads, 4><<<grid, threads, 0, stream>>>(args, partials, scale);
    } else {
        partition_kernel<kHeads, 8><<<grid, threads, 0, stream>>>(args, partials, scale);
    }
}

// The fewest registers that serve a group: exact for 1, 2, 4, 6 (DBRX) and 8 heads per KV head;
// a group of more than 8 is served in chunks of 8.
int heads_per_block(int64_t group) {
    for (const int heads : {1, 2, 4, 6}) {
        if (group <= heads) {
            return heads;
        }
    }
    return 8;
}

}  // namespace

AttentionKernel choose_attention_kernel(int64_t n_tokens, int64_t n_head, int64_t longest_context,
                                        int n_sm) {
    // The one-pass kernel keeps the GPU's memory busy once its (token, head) blocks give every
    // multiprocessor a few to switch between while loads are in flight; with fewer (decode of a
    // few sequences: 48 blocks for one DBRX sequence on 132 SMs) most of the bandwidth idles
    // while each block walks its whole context, and cutting contexts into partitions multiplies
    // the blocks. Split-K costs a second launch and a workspace round trip, which a context of
    // a single partition cannot win back, and its workspace holds kSplitKMaxTokens tokens.
    // Four blocks per SM is a first estimate, to be tuned with `sluice bench decode` on a GPU.
    constexpr int64_t kBusyBlocksPerSm = 4;
    if (n_tokens > kSplitKMaxTokens || longest_context <= kAttentionPartition) {
        return AttentionKernel::kOnePass;
    }
    return n_tokens * n_head < kBusyBlocksPerSm * n_sm ? AttentionKernel::kSplitK
                                                       : AttentionKernel::kOnePass;
}

Status paged_attention_split_k(const AttentionArgs& args, int32_t n_partitions,
                               const SplitKWorkspace& workspace, cudaStream_t stream) {
    if (args.n_tokens == 0) {
        return Status::ok_status();
    }
    if (args.head_dim <= 0 || args.head_dim > kMaxAttentionHeadDim || args.n_head <= 0 ||
        args.n_head_kv <= 0 || args.n_head % args.n_head_kv != 0 || args.block_size <= 0 ||
        args.n_rep != 0) {
        return invalid_argument(
            "paged_attention_split_k: n_rep " + std::to_string(args.n_rep) + " (0 only), head_dim " + std::to_string(args.head_dim) + " (at most " +
            std::to_string(kMaxAttentionHeadDim) + "), " + std::to_string(args.n_head) +
            " heads, " + std::to_string(args.n_head_kv) + " kv heads");
    }
    if (args.n_tokens > kSplitKMaxTokens || n_partitions < 1 || n_partitions > 65535) {
        return invalid_argument("paged_attention_split_k: " + std::to_string(args.n_tokens) +
                                " tokens (at most " + std::to_string(kSplitKMaxTokens) + "), " +
                                std::to_string(n_partitions) + " partitions (1 to 65535)");
    }
    const int64_t needed =
        split_k_workspace_floats(args.n_tokens, args.n_head, args.head_dim, n_partitions);
    if (workspace.data == nullptr || workspace.floats < needed) {
        return invalid_argument("paged_attention_split_k: workspace of " +
                                std::to_string(workspace.floats) + " floats, " +
                                std::to_string(needed) + " needed");
    }
    const int64_t cells = args.n_tokens * args.n_head * n_partitions;
    const Partials partials{workspace.data, workspace.data + cells * args.head_dim, n_partitions};
    const float scale = 1.0f / std::sqrt(static_cast<float>(args.head_dim));
    const int64_t group = args.n_head / args.n_head_kv;
    const int heads = heads_per_block(group);
    const int64_t chunks = (group + heads - 1) / heads;
    const dim3 grid(static_cast<unsigned>(args.n_head_kv * chunks),
                    static_cast<unsigned>(args.n_tokens), static_cast<unsigned>(n_partitions));
    switch (heads) {
        case 1:
            launch_partitions<1>(grid, args.head_dim, args, partials, scale, stream);
            break;
        case 2:
            launch_partitions<2>(grid, args.head_dim, args, partials, scale, stream);
            break;
        case 4:
            launch_partitions<4>(grid, args.head_dim, args, partials, scale, stream);
            break;
        case 6:
            launch_partitions<6>(grid, args.head_dim, args, partials, scale, stream);
            break;
        default:
            launch_partitions<8>(grid, args.head_dim, args, partials, scale, stream);
            break;
    }
    SLUICE_CUDA_CHECK(cudaGetLastError());
    const dim3 merge_grid(static_cast<unsigned>(args.n_head), static_cast<unsigned>(args.n_tokens));
    merge_kernel<<<merge_grid, kWarps * 32, 0, stream>>>(args, partials);
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

}  // namespace sluice::inference::cuda
