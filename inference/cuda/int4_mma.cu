#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <string>
#include <type_traits>

#include "inference/cuda/device_math.cuh"
#include "inference/cuda/int4_mma.cuh"
#include "inference/cuda/int4_mma_layout.h"

namespace sluice::inference::cuda {

namespace {

namespace layout = int4_mma;

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kTileRows = 16;   // mma's m
constexpr int kTileTokens = 8;  // mma's n

__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// d += a · b for a 16 × 16 and b 16 × 8 in bf16, d in fp32, in PTX's fragment layouts.
__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Codes (i, i + 4) of `word` as the bf16x2 values code - 8: (128 + n) · 1 - 136, exact.
__device__ __forceinline__ uint32_t code_pair(uint32_t word, int i) {
    uint32_t out;
    asm("fma.rn.bf16x2 %0, %1, %2, %3;\n"
        : "=r"(out)
        : "r"(layout::biased_code_pair(word, i)), "r"(layout::kBf16x2One),
          "r"(layout::kBf16x2MinusCodeBias));
    return out;
}

__device__ __forceinline__ uint32_t word_of(const uint4& v, int j) {
    return j == 0 ? v.x : j == 1 ? v.y : j == 2 ? v.z : v.w;
}

// packed[8b .. 8b + 8) = the packed words of x[8b .. 8b + 8) (int4_mma_layout.h).
__global__ void pack_kernel(const float* __restrict__ x, int64_t n_blocks,
                            uint32_t* __restrict__ packed) {
    const int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (b >= n_blocks) {
        return;
    }
    const float4 first = __ldg(reinterpret_cast<const float4*>(x + 8 * b));
    const float4 second = __ldg(reinterpret_cast<const float4*>(x + 8 * b + 4));
    const float v[8] = {first.x, first.y, first.z, first.w, second.x, second.y, second.z, second.w};
    uint32_t w[layout::kPackedWords];
    layout::pack_block(v, w);
    auto* out = reinterpret_cast<uint4*>(packed + 8 * b);
    out[0] = make_uint4(w[0], w[1], w[2], w[3]);
    out[1] = make_uint4(w[4], w[5], w[6], w[7]);
}

// The int4 matrices of one product: w1 and v1 for the GLU (kMats 2), w2ᵀ alone (kMats 1).
struct MmaMatrices {
    const uint8_t* codes[2] = {nullptr, nullptr};
    const __half* scales[2] = {nullptr, nullptr};
};

// grid: (n_rows / 16, n_expert), kThreads threads. Block (x, e) computes rows [16x, 16x + 16) of
// expert e's matrices for every slot of e, kTiles × 8 slots per pass: warp w sums its quarter of
// the reduction's groups, the block adds the four in warp order and stores (the GLU of the two
// sums when kMats is 2). out: [n_slots, n_rows].
template <int kMats, int kTiles>
__global__ void __launch_bounds__(kThreads)
    mma_kernel(const uint32_t* __restrict__ packed, const int32_t* __restrict__ offsets,
               MmaMatrices mats, int64_t n_rows, int64_t k_total, int64_t group,
               GluActivation activation, float* __restrict__ out) {
    const int64_t e = blockIdx.y;
    const int64_t start = offsets[e];
    const int64_t count = offsets[e + 1] - start;
    if (count == 0) {
        return;
    }
    const int warp = static_cast<int>(threadIdx.x) / 32;
    const int lane = static_cast<int>(threadIdx.x) % 32;
    const int g = lane / 4;
    const int t = lane % 4;
    const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kTileRows;
    const int64_t n_groups = k_total / group;
    const uint8_t* rows[kMats][2];
    const __half* scales[kMats][2];
#pragma unroll
    for (int m = 0; m < kMats; ++m) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const int64_t row = e * n_rows + row0 + g + 8 * r;
            rows[m][r] = mats.codes[m] + row * (k_total / 2) + 16 * t;
            scales[m][r] = mats.scales[m] + row * n_groups;
        }
    }
    // The warp's groups, and their chunks; group boundaries are counted, not divided out.
    const int chunks_per_group = static_cast<int>(group / layout::kChunk);
    const int64_t group_begin = n_groups * warp / kWarps;
    const int64_t chunk_begin = group_begin * chunks_per_group;
    const int64_t chunk_end = n_groups * (warp + 1) / kWarps * chunks_per_group;
    const int64_t words_per_slot = k_total;  // 8 words per 8 values

    __shared__ float partial[kWarps][kMats][kTiles][32][4];

    for (int64_t c0 = 0; c0 < count; c0 += kTiles * kTileTokens) {
        const int live = static_cast<int>(min64(kTiles * kTileTokens, count - c0));
        // This lane's column of B in tile n is the pass's slot 8n + g. A lane past the pass's
        // slots reads its first slot instead: a column of B feeds only the same column of C,
        // whose sums are never stored, so no value needs zeroing and no branch stands between
        // the warp and mma.sync.
        const uint32_t* acts[kTiles];
#pragma unroll
        for (int n = 0; n < kTiles; ++n) {
            const int col = kTileTokens * n + g;
            acts[n] = packed + (start + c0 + (col < live ? col : 0)) * words_per_slot +
                      layout::step_block(t, 0) * layout::kPackedWords;
        }
        float total[kMats][kTiles][4] = {};
        float acc[kMats][kTiles][4] = {};
        float scale[kMats][2] = {};
        int64_t q = group_begin;  // the group of chunk ch
        int in_group = 0;         // ch's place in it
        uint4 next[kMats][2];
        if (chunk_begin < chunk_end) {
#pragma unroll
            for (int m = 0; m < kMats; ++m) {
#pragma unroll
                for (int r = 0; r < 2; ++r) {
                    next[m][r] = load_stream16(rows[m][r] + chunk_begin * (layout::kChunk / 2));
                }
            }
        }
        for (int64_t ch = chunk_begin; ch < chunk_end; ++ch) {
            uint4 raw[kMats][2];
#pragma unroll
            for (int m = 0; m < kMats; ++m) {
#pragma unroll
                for (int r = 0; r < 2; ++r) {
                    raw[m][r] = next[m][r];
                    if (ch + 1 < chunk_end) {
                        next[m][r] = load_stream16(rows[m][r] + (ch + 1) * (layout::kChunk / 2));
                    }
                }
            }
            if (in_group == 0) {
#pragma unroll
                for (int m = 0; m < kMats; ++m) {
                    scale[m][0] = __half2float(scales[m][0][q]);
                    scale[m][1] = __half2float(scales[m][1][q]);
                }
            }
            // The chunk's packed words, from this lane's first block (step_block(t, 0)).
            const int64_t chunk_word = ch * (layout::kChunk / 8) * layout::kPackedWords;
#pragma unroll
            for (int s = 0; s < layout::kStepsPerChunk; ++s) {
                const int j = layout::step_word(s);
                uint32_t a[kMats][4];
#pragma unroll
                for (int m = 0; m < kMats; ++m) {
#pragma unroll
                    for (int r = 0; r < 4; ++r) {
                        a[m][r] = code_pair(word_of(raw[m][layout::a_register_row(r)], j),
                                            layout::step_pair(s, layout::a_register_second(r)));
                    }
                }
                // A constant after unrolling: step_block(t, s) - step_block(t, 0) is s / 2.
                const int word =
                    (layout::step_block(0, s) - layout::step_block(0, 0)) * layout::kPackedWords +
                    4 * layout::step_half(s);
#pragma unroll
                for (int n = 0; n < kTiles; ++n) {
                    if (kTileTokens * n >= live) {  // the same for the whole warp
                        break;
                    }
                    const uint4 b =
                        __ldg(reinterpret_cast<const uint4*>(acts[n] + chunk_word + word));
#pragma unroll
                    for (int m = 0; m < kMats; ++m) {
                        mma_bf16(acc[m][n], a[m], b.x, b.y);  // hi
                        mma_bf16(acc[m][n], a[m], b.z, b.w);  // lo
                    }
                }
            }
            if (++in_group == chunks_per_group) {
                in_group = 0;
                ++q;
#pragma unroll
                for (int m = 0; m < kMats; ++m) {
#pragma unroll
                    for (int n = 0; n < kTiles; ++n) {
#pragma unroll
                        for (int i = 0; i < 4; ++i) {  // C's elements 0, 1: row g; 2, 3: g + 8
                            total[m][n][i] = fmaf(scale[m][i / 2], acc[m][n][i], total[m][n][i]);
                            acc[m][n][i] = 0.0f;
                        }
                    }
                }
            }
        }
#pragma unroll
        for (int m = 0; m < kMats; ++m) {
#pragma unroll
            for (int n = 0; n < kTiles; ++n) {
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    partial[warp][m][n][lane][i] = total[m][n][i];
                }
            }
        }
        __syncthreads();
        for (int idx = static_cast<int>(threadIdx.x); idx < kTiles * 128; idx += kThreads) {
            const int n = idx / 128;
            const int l = idx / 4 % 32;
            const int i = idx % 4;
            const int col = kTileTokens * n + 2 * (l % 4) + i % 2;  // C's layout
            if (col >= live) {
                continue;
            }
            float sum[kMats];
#pragma unroll
            for (int m = 0; m < kMats; ++m) {
                float s = 0.0f;
#pragma unroll
                for (int w = 0; w < kWarps; ++w) {
                    s += partial[w][m][n][l][i];
                }
                sum[m] = s;
            }
            float value = sum[0];
            if constexpr (kMats == 2) {
                value = activate(sum[0], activation) * sum[1];
            }
            const int64_t row = row0 + l / 4 + 8 * (i / 2);
            out[(start + c0 + col) * n_rows + row] = value;
        }
        __syncthreads();
    }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Calls f(std::integral_constant<int, T>{}) with the fewest mma n-tiles (1, 2 or 4) that hold
// `tokens` slots, 4 beyond.
template <typename F>
void with_tiles(int64_t tokens, F&& f) {
    if (tokens <= kTileTokens) {
        f(std::integral_constant<int, 1>{});
    } else if (tokens <= 2 * kTileTokens) {
        f(std::integral_constant<int, 2>{});
    } else {
        f(std::integral_constant<int, 4>{});
    }
}

Status pack(const float* x, int64_t n_values, uint32_t* packed, cudaStream_t stream) {
    const int64_t n_blocks = n_values / 8;
    const auto grid = static_cast<unsigned>((n_blocks + 255) / 256);
    pack_kernel<<<grid, 256, 0, stream>>>(x, n_blocks, packed);
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

Status refuse(const char* what) {
    return invalid_argument(std::string(what) +
                            ": int4 weights with groups of a multiple of 128 values, 16-byte "
                            "aligned codes and activations, staging for every slot, and at most " +
                            std::to_string(kInt4MmaMaxTokens) + " tokens");
}

// One of the two products: its matrices, output rows per expert and reduction length.
struct Product {
    const char* what;
    MmaMatrices mats;
    int64_t n_rows;
    int64_t k_total;
    GluActivation activation;  // kMats 2 only
};

// Packs x ([n_slots, k_total]) into the staging and launches the product for every expert's
// slots into out ([n_slots, n_rows]).
template <int kMats>
Status run_product(const Product& p, const float* x, const int32_t* offsets,
                   const ExpertWeights& weights, const ExpertShape& shape,
                   const Int4MmaStaging& staging, float* out, cudaStream_t stream) {
    if (shape.n_slots == 0) {
        return Status::ok_status();
    }
    if (!int4_mma_fits(weights, shape, staging) || !aligned16(x)) {
        return refuse(p.what);
    }
    SLUICE_RETURN_IF_ERROR(pack(x, shape.n_slots * p.k_total, staging.words, stream));
    const dim3 grid(static_cast<unsigned>(p.n_rows / kTileRows),
                    static_cast<unsigned>(shape.n_expert));
    with_tiles(shape.n_tokens, [&](auto tiles) {
        mma_kernel<kMats, decltype(tiles)::value>
            <<<grid, kThreads, 0, stream>>>(staging.words, offsets, p.mats, p.n_rows, p.k_total,
                                            weights.group_size, p.activation, out);
    });
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

}  // namespace

bool int4_mma_fits(const ExpertWeights& weights, const ExpertShape& shape,
                   const Int4MmaStaging& staging) {
    const int64_t group = weights.group_size;
    return weights.type == DeviceDType::kInt4 && group > 0 && group % layout::kChunk == 0 &&
           shape.n_expert > 0 && shape.d_model > 0 && shape.n_ff > 0 && shape.n_slots >= 0 &&
           shape.d_model % group == 0 && shape.n_ff % group == 0 && shape.n_tokens > 0 &&
           shape.n_tokens <= kInt4MmaMaxTokens && weights.w1 != nullptr && weights.v1 != nullptr &&
           weights.w2 != nullptr && weights.w1_groups != nullptr && weights.v1_groups != nullptr &&
           weights.w2_groups != nullptr && aligned16(weights.w1) && aligned16(weights.v1) &&
           aligned16(weights.w2) && staging.words != nullptr && aligned16(staging.words) &&
           staging.capacity >= int4_mma_staging_words(shape.n_slots, shape.d_model, shape.n_ff);
}

Status int4_mma_gate_up(const float* x_sorted, const int32_t* offsets, const ExpertWeights& weights,
                        const ExpertShape& shape, GluActivation activation,
                        const Int4MmaStaging& staging, float* act, cudaStream_t stream) {
    MmaMatrices mats;
    mats.codes[0] = static_cast<const uint8_t*>(weights.w1);
    mats.codes[1] = static_cast<const uint8_t*>(weights.v1);
    mats.scales[0] = reinterpret_cast<const __half*>(weights.w1_groups);
    mats.scales[1] = reinterpret_cast<const __half*>(weights.v1_groups);
    const Product product{"int4_mma_gate_up", mats, shape.n_ff, shape.d_model, activation};
    return run_product<2>(product, x_sorted, offsets, weights, shape, staging, act, stream);
}

Status int4_mma_down(const float* act, const int32_t* offsets, const ExpertWeights& weights,
                     const ExpertShape& shape, const Int4MmaStaging& staging, float* y,
                     cudaStream_t stream) {
    MmaMatrices mats;
    mats.codes[0] = static_cast<const uint8_t*>(weights.w2);
    mats.scales[0] = reinterpret_cast<const __half*>(weights.w2_groups);
    const Product product{"int4_mma_down", mats, shape.d_model, shape.n_ff, GluActivation::kSilu};
    return run_product<1>(product, act, offsets, weights, shape, staging, y, stream);
}

}  // namespace sluice::inference::cuda
