#pragma once
// KvBlockPool: who owns which block of a backend's paged KV cache (backend.h).
//
// Blocks are reference counted so that prefix caching can share a sequence's leading blocks with
// another (retain), and a sequence returns its blocks when it ends (release). SequenceBlocks is
// the move-only lease one sequence holds: its block table, grown as the sequence grows, and given
// back to the pool on destruction.
//
// Errors: kResourceExhausted when the pool has too few free blocks; nothing is taken then.
// Thread safety: owned by one thread (the scheduler's); SequenceBlocks borrow their pool, which
// must outlive them.

#include <cstdint>
#include <span>
#include <vector>

#include "common/result.h"

namespace sluice::inference {

class KvBlockPool {
public:
    KvBlockPool(int32_t n_blocks, int32_t block_size);

    int32_t block_size() const { return block_size_; }
    int32_t n_blocks() const { return static_cast<int32_t>(ref_counts_.size()); }
    int32_t n_free() const { return static_cast<int32_t>(free_.size()); }

    // Takes `count` free blocks, each with reference count 1.
    Result<std::vector<int32_t>> allocate(int32_t count);
    // Adds a reference to a block in use (sharing it).
    void retain(int32_t block);
    // Drops a reference; a block whose count reaches zero becomes free.
    void release(int32_t block);
    int32_t ref_count(int32_t block) const;

private:
    int32_t block_size_;
    std::vector<int32_t> ref_counts_;
    std::vector<int32_t> free_;  // a stack: recently freed blocks are reused first
};

class SequenceBlocks {
public:
    explicit SequenceBlocks(KvBlockPool* pool) : pool_(pool) {}
    SequenceBlocks(SequenceBlocks&& other) noexcept;
    SequenceBlocks& operator=(SequenceBlocks&& other) noexcept;
    SequenceBlocks(const SequenceBlocks&) = delete;
    SequenceBlocks& operator=(const SequenceBlocks&) = delete;
    ~SequenceBlocks();

    // Makes the table cover `n_positions` positions, allocating blocks as needed.
    Status reserve(int64_t n_positions);
    std::span<const int32_t> table() const { return table_; }
    int64_t capacity() const;

private:
    void release_all();

    KvBlockPool* pool_;
    std::vector<int32_t> table_;
};

}  // namespace sluice::inference
