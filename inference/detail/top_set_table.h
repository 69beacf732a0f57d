#pragma once
// Sets of stack tops as small integer ids, with their byte transitions memoised: the pushdown
// automaton of grammar_automaton.h run as a lazily built DFA over the sets it actually meets.
//
// Both halves of constrained decoding walk many tokens byte by byte from a handful of states:
// compilation walks the whole vocabulary from every grammar position, and a matcher walks the
// context-dependent tokens from its current tops at every step. Positions of one rule lead into
// the same few sets (inside a JSON string, every character leads back to the same set), so after
// the first visit a byte costs one table lookup instead of a closure over the stacks.
//
// Thread safety: owned by one compilation or one matcher.

#include <array>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "inference/detail/grammar_automaton.h"

namespace sluice::inference::detail {

class TopSetTable {
public:
    static constexpr int32_t kDead = -1;

    explicit TopSetTable(const FlatGrammar* grammar) : arena_(grammar) {}

    StackArena& arena() { return arena_; }
    const StackArena& arena() const { return arena_; }

    // The id of a sorted, duplicate-free set of tops.
    int32_t intern(const std::vector<int32_t>& tops);
    // The set of a stack resuming at `position` above `parent`.
    int32_t start(int32_t position, int32_t parent);
    // The set after `set` takes byte `b`; kDead when no stack takes it.
    int32_t step(int32_t set, uint8_t b) {
        const int32_t next = next_[static_cast<size_t>(set)][b];
        return next != kUnknown ? next : compute_step(set, b);
    }

    const std::vector<int32_t>& tops(int32_t set) const { return sets_[static_cast<size_t>(set)]; }
    // Some stack can take more bytes.
    bool live(int32_t set) const { return flags_[static_cast<size_t>(set)] & kLive; }
    // Some stack returned past the position a compile-time walk started from (kBottom).
    bool at_bottom(int32_t set) const { return flags_[static_cast<size_t>(set)] & kAtBottom; }
    int32_t size() const { return static_cast<int32_t>(sets_.size()); }

    // Forgets every set and transition (ids handed out before become invalid); the stacks in
    // the arena stay, so tops held elsewhere remain meaningful. Bounds a long-lived table.
    void clear_sets();

private:
    static constexpr int32_t kUnknown = -2;
    static constexpr uint8_t kLive = 1;
    static constexpr uint8_t kAtBottom = 2;

    struct VectorHash {
        size_t operator()(const std::vector<int32_t>& v) const;
    };

    int32_t compute_step(int32_t set, uint8_t b);

    StackArena arena_;
    std::vector<int32_t> scratch_;
    std::vector<std::vector<int32_t>> sets_;
    std::vector<std::array<int32_t, 256>> next_;
    std::vector<uint8_t> flags_;
    std::unordered_map<std::vector<int32_t>, int32_t, VectorHash> ids_;
};

}  // namespace sluice::inference::detail
