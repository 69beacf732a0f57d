#pragma once
// The pushdown automaton a Grammar runs as: the grammar flattened into one array of elements,
// and stacks of return positions stored as hash-consed linked nodes, so that equal stacks are
// one id, copying a matcher's state is copying a few ids, and old states stay valid for rollback.
//
// A state is a sorted set of stack tops. A top is a node whose position holds a byte set (the
// next byte the stack can take); two marker ids stand for "the grammar is complete" (kAccept)
// and, when masks are precomputed, "the rule under analysis returned to its unknown caller"
// (kBottom). Rule references are expanded eagerly (closure), and a call in tail position pushes
// no return node, so right recursion (loops) keeps stacks flat.
//
// Thread safety: FlatGrammar is immutable; a StackArena is owned by one matcher or one compile.

#include <array>
#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "inference/grammar.h"

namespace sluice::inference::detail {

struct FlatElement {
    enum class Kind : uint8_t { kBytes, kRule, kEnd };
    Kind kind = Kind::kEnd;
    int32_t value = 0;  // byte set index or rule index
};

struct FlatGrammar {
    std::vector<FlatElement> elements;
    std::vector<std::vector<int32_t>> rule_starts;  // per rule: first element of each alternative
    std::vector<std::array<uint64_t, 4>> byte_sets;
    int32_t root = 0;
    // Per element: the element of a mask twin (GrammarRule::mask_twin) with the same masks, or -1.
    std::vector<int32_t> twin;

    bool has_byte(int32_t position, uint8_t b) const {
        const auto& set = byte_sets[static_cast<size_t>(elements[static_cast<size_t>(position)].value)];
        return (set[b >> 6] >> (b & 63)) & 1u;
    }
};

// Lays the grammar out; alternatives that can match nothing are dropped. Precondition:
// grammar.validate() is ok.
FlatGrammar flatten_grammar(const Grammar& grammar);

inline constexpr int32_t kAccept = 0;  // marker top: the root rule completed
inline constexpr int32_t kBottom = 1;  // marker top: returned past the analysed position

class StackArena {
public:
    explicit StackArena(const FlatGrammar* grammar);

    struct Node {
        int32_t position;  // the element this stack resumes at
        int32_t parent;    // node id, kAccept or kBottom
    };

    const Node& node(int32_t id) const { return nodes_[static_cast<size_t>(id)]; }
    int32_t n_nodes() const { return static_cast<int32_t>(nodes_.size()); }

    // The tops before any byte: the root's alternatives expanded.
    void initial(std::vector<int32_t>& out);
    // The tops of a stack resuming at `position` above `parent` (sorted, unique).
    void expand(int32_t position, int32_t parent, std::vector<int32_t>& out);
    // The tops after `tops` take byte `b` (sorted, unique); empty when no stack takes it.
    void advance(std::span<const int32_t> tops, uint8_t b, std::vector<int32_t>& out);

private:
    int32_t intern(int32_t position, int32_t parent);
    void closure(int32_t position, int32_t parent, std::vector<int32_t>& out);
    static void sort_unique(std::vector<int32_t>& out);

    const FlatGrammar* grammar_;
    std::vector<Node> nodes_;
    std::unordered_map<uint64_t, int32_t> index_;
    std::vector<uint64_t> visited_;  // (position, parent) pairs expanded in the current closure
};

}  // namespace sluice::inference::detail
