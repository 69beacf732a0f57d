#include "inference/kv_block_pool.h"

#include <utility>

#include "common/check.h"

namespace sluice::inference {

KvBlockPool::KvBlockPool(int32_t n_blocks, int32_t block_size)
    : block_size_(block_size), ref_counts_(static_cast<size_t>(n_blocks), 0) {
    SLUICE_CHECK(n_blocks >= 0 && block_size > 0, "kv block pool needs a positive block size");
    free_.reserve(static_cast<size_t>(n_blocks));
    for (int32_t block = n_blocks - 1; block >= 0; --block) {
        free_.push_back(block);  // block 0 on top, so a fresh pool hands out 0, 1, 2, ...
    }
}

Result<std::vector<int32_t>> KvBlockPool::allocate(int32_t count) {
    if (count < 0 || count > n_free()) {
        return Status(StatusCode::kResourceExhausted,
                      "kv cache: " + std::to_string(count) + " blocks requested, " +
                          std::to_string(n_free()) + " free");
    }
    std::vector<int32_t> blocks;
    blocks.reserve(static_cast<size_t>(count));
    for (int32_t i = 0; i < count; ++i) {
        int32_t block = free_.back();
        free_.pop_back();
        ref_counts_[static_cast<size_t>(block)] = 1;
        blocks.push_back(block);
    }
    return blocks;
}

void KvBlockPool::retain(int32_t block) {
    SLUICE_CHECK(block >= 0 && block < n_blocks() && ref_counts_[static_cast<size_t>(block)] > 0,
                 "retain of a block not in use");
    ++ref_counts_[static_cast<size_t>(block)];
}

void KvBlockPool::release(int32_t block) {
    SLUICE_CHECK(block >= 0 && block < n_blocks() && ref_counts_[static_cast<size_t>(block)] > 0,
                 "release of a block not in use");
    if (--ref_counts_[static_cast<size_t>(block)] == 0) {
        free_.push_back(block);
    }
}

int32_t KvBlockPool::ref_count(int32_t block) const {
    SLUICE_CHECK(block >= 0 && block < n_blocks(), "block id out of range");
    return ref_counts_[static_cast<size_t>(block)];
}

SequenceBlocks::SequenceBlocks(SequenceBlocks&& other) noexcept
    : pool_(other.pool_), table_(std::move(other.table_)) {
    other.table_.clear();
}

SequenceBlocks& SequenceBlocks::operator=(SequenceBlocks&& other) noexcept {
    if (this != &other) {
        release_all();
        pool_ = other.pool_;
        table_ = std::move(other.table_);
        other.table_.clear();
    }
    return *this;
}

SequenceBlocks::~SequenceBlocks() { release_all(); }

void SequenceBlocks::release_all() {
    for (int32_t block : table_) {
        pool_->release(block);
    }
    table_.clear();
}

int64_t SequenceBlocks::capacity() const {
    return static_cast<int64_t>(table_.size()) * pool_->block_size();
}

Status SequenceBlocks::reserve(int64_t n_positions) {
    if (n_positions <= capacity()) {
        return Status::ok_status();
    }
    const int64_t block_size = pool_->block_size();
    const int64_t needed = (n_positions + block_size - 1) / block_size;
    SLUICE_ASSIGN_OR_RETURN(auto blocks,
                            pool_->allocate(static_cast<int32_t>(needed - table_.size())));
    table_.insert(table_.end(), blocks.begin(), blocks.end());
    return Status::ok_status();
}

}  // namespace sluice::inference
