#include "inference/detail/top_set_table.h"

namespace sluice::inference::detail {

size_t TopSetTable::VectorHash::operator()(const std::vector<int32_t>& v) const {
    uint64_t h = 1469598103934665603ull;
    for (int32_t x : v) {
        h = (h ^ static_cast<uint32_t>(x)) * 1099511628211ull;
    }
    return static_cast<size_t>(h);
}

int32_t TopSetTable::intern(const std::vector<int32_t>& tops) {
    auto [it, inserted] = ids_.try_emplace(tops, static_cast<int32_t>(sets_.size()));
    if (inserted) {
        sets_.push_back(tops);
        std::array<int32_t, 256> unknown;
        unknown.fill(kUnknown);
        next_.push_back(unknown);
        uint8_t flags = 0;
        for (int32_t top : tops) {
            flags |= top >= 2 ? kLive : 0;
            flags |= top == kBottom ? kAtBottom : 0;
        }
        flags_.push_back(flags);
    }
    return it->second;
}

int32_t TopSetTable::start(int32_t position, int32_t parent) {
    arena_.expand(position, parent, scratch_);
    return intern(scratch_);
}

int32_t TopSetTable::compute_step(int32_t set, uint8_t b) {
    // advance() has read the set before intern() may grow sets_.
    arena_.advance(sets_[static_cast<size_t>(set)], b, scratch_);
    const int32_t next = scratch_.empty() ? kDead : intern(scratch_);
    // Indexed again: intern() may have grown next_.
    next_[static_cast<size_t>(set)][b] = next;
    return next;
}

void TopSetTable::clear_sets() {
    sets_.clear();
    next_.clear();
    flags_.clear();
    ids_.clear();
}

}  // namespace sluice::inference::detail
