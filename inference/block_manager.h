#pragma once
// BlockManager: the scheduler's view of the paged KV cache (backend.h): which blocks are free,
// which hold a sequence's positions, and which hold a reusable prompt prefix.
//
// Prefix caching. A full block's content is determined by every token up to its end, so a full
// block is keyed by a hash chain: key(block i) = H(key(block i - 1), tokens of block i). When a
// sequence has computed a full block it publishes the block under its key; a later sequence whose
// tokens start the same way finds its leading blocks by walking the chain and shares them
// (reference counted) instead of computing them again. The cache holds one reference of its own
// to every published block, so a cached block outlives the sequences that made it. A cached block
// that no sequence references is "evictable": it stays until an allocation finds no free block,
// then the least recently used evictable blocks are dropped from the cache and reused.
// Lookups compare the block's tokens and its parent's key, so a match needs a 64-bit collision
// of the parent chain and identical tokens; that is the whole of the collision risk.
//
// Copy-on-write. Blocks are shared only whole (prefix hits, forks of a sequence for n > 1
// choices). Before a sequence writes a position into a block whose reference count is above one,
// it asks for a private copy (needs_copy / the caller copies the KV with Backend::copy_kv_block).
//
// Errors: kResourceExhausted when neither free nor evictable blocks suffice; nothing is taken.
// Thread safety: owned by one thread (the scheduler's).

#include <cstdint>
#include <list>
#include <span>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "inference/kv_block_pool.h"

namespace sluice::inference {

using BlockKey = uint64_t;

// The key of a full block whose parent block has key `parent` (0 for the first block).
BlockKey prefix_block_key(BlockKey parent, std::span<const int32_t> tokens);

struct BlockStats {
    int32_t n_blocks = 0;
    int32_t n_free = 0;       // on the free list
    int32_t n_cached = 0;     // published in the prefix cache (some may also be in use)
    int32_t n_evictable = 0;  // cached and referenced by no sequence
    int32_t n_in_use = 0;     // referenced by at least one sequence
};

class BlockManager {
public:
    BlockManager(int32_t n_blocks, int32_t block_size, bool prefix_caching);

    int32_t block_size() const { return pool_.block_size(); }
    int32_t n_blocks() const { return pool_.n_blocks(); }
    bool prefix_caching() const { return prefix_caching_; }
    // Blocks an allocation can have now: free ones plus evictable cached ones.
    int32_t n_available() const { return pool_.n_free() + static_cast<int32_t>(lru_.size()); }
    BlockStats stats() const;

    // Takes `count` blocks (reference count 1 each), evicting least recently used evictable
    // cached blocks when the free list runs short.
    Result<std::vector<int32_t>> allocate(int32_t count);
    // Shares a block in use (a fork) / drops a sequence's reference.
    void retain(int32_t block);
    void release(int32_t block);
    void release_all(std::vector<int32_t>& blocks);
    // True when writing into `block` must first copy it (someone else references it).
    bool needs_copy(int32_t block) const { return pool_.ref_count(block) > 1; }

    // The longest chain of cached full blocks that starts `tokens`, at most `max_blocks` long;
    // each returned block is retained for the caller. `keys` receives their keys.
    std::vector<int32_t> match_prefix(std::span<const int32_t> tokens, int32_t max_blocks,
                                      std::vector<BlockKey>* keys);
    // Offers full block `block` (holding `tokens`, whose parent block has key `parent`) to the
    // cache and returns its key. A block already cached under that key is left as it is.
    BlockKey publish(BlockKey parent, std::span<const int32_t> tokens, int32_t block);

private:
    struct Entry {
        int32_t block = 0;
        BlockKey parent = 0;
        std::vector<int32_t> tokens;
    };

    void update_evictable(int32_t block);
    void evict_one();

    KvBlockPool pool_;
    bool prefix_caching_;
    std::unordered_map<BlockKey, Entry> cache_;
    std::vector<BlockKey> key_of_block_;  // [n_blocks] key of a cached block
    std::vector<bool> cached_;            // [n_blocks]
    // Evictable cached blocks, least recently used first; where_ points into it.
    std::list<int32_t> lru_;
    std::vector<std::list<int32_t>::iterator> where_;
    std::vector<bool> in_lru_;
};

}  // namespace sluice::inference
