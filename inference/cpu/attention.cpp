#include "inference/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>

#include "inference/cpu/ops.h"

namespace sluice::inference::cpu {

Status KvCacheStorage::configure(const KvCacheSpec& spec, int64_t n_layer, int64_t n_embd_kv) {
    if (spec.block_size <= 0 || spec.n_blocks <= 0) {
        return invalid_argument("kv cache: block_size and n_blocks must be positive, found " +
                                std::to_string(spec.block_size) + " and " +
                                std::to_string(spec.n_blocks));
    }
    const int64_t elements = n_layer * spec.n_blocks * spec.block_size * n_embd_kv;
    k_.clear();
    v_.clear();
    k_.shrink_to_fit();
    v_.shrink_to_fit();
    spec_ = KvCacheSpec{spec.block_size, 0};
    try {
        // std::vector reports allocation failure by exception; this adapter turns it into a status.
        k_.assign(static_cast<size_t>(elements), 0.0f);
        v_.assign(static_cast<size_t>(elements), 0.0f);
    } catch (const std::bad_alloc&) {
        k_.clear();
        v_.clear();
        return Status(StatusCode::kResourceExhausted,
                      "kv cache: cannot allocate " + std::to_string(2 * elements * 4) + " bytes");
    }
    spec_ = spec;
    n_layer_ = n_layer;
    n_embd_kv_ = n_embd_kv;
    return Status::ok_status();
}

void KvCacheStorage::copy_block(int32_t src, int32_t dst) {
    const size_t slab = static_cast<size_t>(spec_.block_size * n_embd_kv_);
    for (int64_t layer = 0; layer < n_layer_; ++layer) {
        std::memcpy(k(layer, dst, 0), k(layer, src, 0), slab * sizeof(float));
        std::memcpy(v(layer, dst, 0), v(layer, src, 0), slab * sizeof(float));
    }
}

namespace {

// q · k with eight partial sums: a single running sum is one serial chain of additions, which
// made the score loop the largest cost of a decode step after the weight products; eight
// independent sums pipeline (and vectorise).
float dot(const float* a, const float* b, int64_t n) {
    float partial[8] = {};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        for (int u = 0; u < 8; ++u) {
            partial[u] += a[j + u] * b[j + u];
        }
    }
    float sum = ((partial[0] + partial[1]) + (partial[2] + partial[3])) +
                ((partial[4] + partial[5]) + (partial[6] + partial[7]));
    for (; j < n; ++j) {
        sum += a[j] * b[j];
    }
    return sum;
}

}  // namespace

void attend_head(const KvCacheStorage& cache, const AttentionHead& args, const float* q,
                 int64_t ldq, float* out, int64_t ldo, float* scores) {
    const int64_t hd = args.head_dim;
    const int32_t block_size = cache.spec().block_size;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    const int64_t kv_col = args.kv_head * hd;
    for (int64_t i = 0; i < args.n_new; ++i) {
        const float* qi = q + i * ldq + args.head * hd;
        const int64_t n_keys = args.n_past + i + 1;
        // Keys block by block of the paged cache: one table lookup per block, not per key.
        for (int64_t first = 0; first < n_keys; first += block_size) {
            const int32_t block = args.block_table[static_cast<size_t>(first / block_size)];
            const int64_t count = std::min<int64_t>(block_size, n_keys - first);
            for (int64_t p = 0; p < count; ++p) {
                const float* kp = cache.k(args.layer, block, static_cast<int32_t>(p)) + kv_col;
                scores[first + p] = dot(qi, kp, hd) * scale;
            }
        }
        softmax(scores, n_keys);
        float* oi = out + i * ldo + args.head * hd;
        std::fill(oi, oi + hd, 0.0f);
        for (int64_t first = 0; first < n_keys; first += block_size) {
            const int32_t block = args.block_table[static_cast<size_t>(first / block_size)];
            const int64_t count = std::min<int64_t>(block_size, n_keys - first);
            for (int64_t p = 0; p < count; ++p) {
                const float* vp = cache.v(args.layer, block, static_cast<int32_t>(p)) + kv_col;
                const float weight = scores[first + p];
                for (int64_t j = 0; j < hd; ++j) {
                    oi[j] += weight * vp[j];
                }
            }
        }
    }
}

}  // namespace sluice::inference::cpu
