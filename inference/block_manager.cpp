#include "inference/block_manager.h"

#include <algorithm>

#include "common/check.h"

namespace sluice::inference {

namespace {

// splitmix64's finaliser: a cheap bijective mix with full avalanche.
uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

}  // namespace

BlockKey prefix_block_key(BlockKey parent, std::span<const int32_t> tokens) {
    uint64_t h = mix(parent ^ 0x5f3759df00000000ULL);
    for (int32_t token : tokens) {
        h = mix(h ^ static_cast<uint32_t>(token));
    }
    // 0 is reserved for "no parent".
    return h == 0 ? 1 : h;
}

BlockManager::BlockManager(int32_t n_blocks, int32_t block_size, bool prefix_caching)
    : pool_(n_blocks, block_size),
      prefix_caching_(prefix_caching),
      key_of_block_(static_cast<size_t>(n_blocks), 0),
      cached_(static_cast<size_t>(n_blocks), false),
      where_(static_cast<size_t>(n_blocks)),
      in_lru_(static_cast<size_t>(n_blocks), false) {}

BlockStats BlockManager::stats() const {
    BlockStats stats;
    stats.n_blocks = pool_.n_blocks();
    stats.n_free = pool_.n_free();
    stats.n_cached = static_cast<int32_t>(cache_.size());
    stats.n_evictable = static_cast<int32_t>(lru_.size());
    // Every block is free, evictable (held by the cache alone) or referenced by a sequence.
    stats.n_in_use = stats.n_blocks - stats.n_free - stats.n_evictable;
    return stats;
}

Result<std::vector<int32_t>> BlockManager::allocate(int32_t count) {
    if (count < 0 || count > n_available()) {
        return Status(StatusCode::kResourceExhausted,
                      "kv cache: " + std::to_string(count) + " blocks requested, " +
                          std::to_string(n_available()) + " available");
    }
    while (pool_.n_free() < count) {
        evict_one();
    }
    return pool_.allocate(count);
}

void BlockManager::retain(int32_t block) {
    pool_.retain(block);
    update_evictable(block);
}

void BlockManager::release(int32_t block) {
    pool_.release(block);
    update_evictable(block);
}

void BlockManager::release_all(std::vector<int32_t>& blocks) {
    // Last block first: the tail of a chain becomes least recently used before its head, so
    // eviction takes chain ends first and keeps shorter shared prefixes usable.
    for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) {
        release(*it);
    }
    blocks.clear();
}

void BlockManager::update_evictable(int32_t block) {
    const auto b = static_cast<size_t>(block);
    const bool evictable = cached_[b] && pool_.ref_count(block) == 1;
    if (evictable && !in_lru_[b]) {
        where_[b] = lru_.insert(lru_.end(), block);
        in_lru_[b] = true;
    } else if (!evictable && in_lru_[b]) {
        lru_.erase(where_[b]);
        in_lru_[b] = false;
    }
}

void BlockManager::evict_one() {
    SLUICE_CHECK(!lru_.empty(), "evict_one with nothing evictable");
    const int32_t block = lru_.front();
    const auto b = static_cast<size_t>(block);
    lru_.pop_front();
    in_lru_[b] = false;
    cache_.erase(key_of_block_[b]);
    cached_[b] = false;
    pool_.release(block);  // the cache's own reference: the block becomes free
}

std::vector<int32_t> BlockManager::match_prefix(std::span<const int32_t> tokens,
                                                int32_t max_blocks, std::vector<BlockKey>* keys) {
    std::vector<int32_t> blocks;
    if (!prefix_caching_) {
        return blocks;
    }
    const auto bs = static_cast<size_t>(block_size());
    BlockKey parent = 0;
    for (int32_t i = 0; i < max_blocks && (static_cast<size_t>(i) + 1) * bs <= tokens.size();
         ++i) {
        auto chunk = tokens.subspan(static_cast<size_t>(i) * bs, bs);
        const BlockKey key = prefix_block_key(parent, chunk);
        auto found = cache_.find(key);
        if (found == cache_.end() || found->second.parent != parent ||
            !std::equal(chunk.begin(), chunk.end(), found->second.tokens.begin(),
                        found->second.tokens.end())) {
            break;
        }
        retain(found->second.block);
        blocks.push_back(found->second.block);
        if (keys != nullptr) {
            keys->push_back(key);
        }
        parent = key;
    }
    return blocks;
}

BlockKey BlockManager::publish(BlockKey parent, std::span<const int32_t> tokens, int32_t block) {
    SLUICE_CHECK(static_cast<int32_t>(tokens.size()) == block_size(),
                 "only full blocks are published");
    const BlockKey key = prefix_block_key(parent, tokens);
    if (!prefix_caching_ || cached_[static_cast<size_t>(block)] || cache_.contains(key)) {
        return key;
    }
    cache_.emplace(key, Entry{block, parent, std::vector<int32_t>(tokens.begin(), tokens.end())});
    key_of_block_[static_cast<size_t>(block)] = key;
    cached_[static_cast<size_t>(block)] = true;
    pool_.retain(block);  // the cache's own reference
    return key;
}

}  // namespace sluice::inference
