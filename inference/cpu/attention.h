#pragma once
// The paged KV cache's storage on the CPU and causal grouped-query attention over it.
//
// Storage layout, per tensor (K and V): [n_layer][n_blocks][block_size][n_embd_kv], fp32, so one
// block of one layer is a contiguous [block_size, n_head_kv * head_dim] slab.
//
// Thread safety: owned by the backend's thread; attend_head may run concurrently for different
// heads or sequences (it only reads the cache and writes its own output slice).

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"
#include "inference/backend.h"

namespace sluice::inference::cpu {

class KvCacheStorage {
public:
    // Drops all contents. kInvalidArgument for non-positive sizes, kResourceExhausted when the
    // memory cannot be allocated.
    Status configure(const KvCacheSpec& spec, int64_t n_layer, int64_t n_embd_kv);

    const KvCacheSpec& spec() const { return spec_; }
    bool configured() const { return spec_.n_blocks > 0; }
    int64_t bytes() const { return static_cast<int64_t>(2 * k_.size() * sizeof(float)); }

    // [n_embd_kv] of one position.
    float* k(int64_t layer, int32_t block, int32_t slot) { return k_.data() + offset(layer, block, slot); }
    float* v(int64_t layer, int32_t block, int32_t slot) { return v_.data() + offset(layer, block, slot); }
    const float* k(int64_t layer, int32_t block, int32_t slot) const {
        return k_.data() + offset(layer, block, slot);
    }
    const float* v(int64_t layer, int32_t block, int32_t slot) const {
        return v_.data() + offset(layer, block, slot);
    }

    void copy_block(int32_t src, int32_t dst);

private:
    int64_t offset(int64_t layer, int32_t block, int32_t slot) const {
        return ((layer * spec_.n_blocks + block) * spec_.block_size + slot) * n_embd_kv_;
    }

    KvCacheSpec spec_{16, 0};
    int64_t n_layer_ = 0;
    int64_t n_embd_kv_ = 0;
    std::vector<float> k_;
    std::vector<float> v_;
};

// One query head of one sequence: for each new token i (position n_past + i), softmax in fp32 of
// q·k / sqrt(head_dim) over positions 0 .. n_past + i, then the weighted sum of V.
// q: [n_new, ldq] with this head's query at column head * head_dim
// out: [n_new, ldo] with this head's output written at column head * head_dim
// scores: scratch of at least n_past + n_new floats
struct AttentionHead {
    int64_t layer = 0;
    int64_t head = 0;
    int64_t kv_head = 0;
    int64_t head_dim = 0;
    int32_t n_past = 0;
    int64_t n_new = 0;
    std::span<const int32_t> block_table;
};
void attend_head(const KvCacheStorage& cache, const AttentionHead& args, const float* q,
                 int64_t ldq, float* out, int64_t ldo, float* scores);

}  // namespace sluice::inference::cpu
