#pragma once
// Per grammar position, the tokens accepted whatever the stack beneath holds, and the tokens
// whose fate depends on it (see grammar_matcher.h for the scheme).
//
// Thread safety: immutable once built.

#include <cstdint>
#include <memory>
#include <vector>

#include "inference/detail/grammar_automaton.h"
#include "inference/token_trie.h"

namespace sluice::inference {
struct GrammarStats;
}

namespace sluice::inference::detail {

struct PositionMask {
    std::vector<uint64_t> bits;  // accepted tokens as a bitset, when many
    std::vector<int32_t> ids;    // accepted tokens as ids, when few (bits is then empty)
    std::vector<int32_t> context_dependent;  // in trie (byte) order
};

struct MaskCache {
    // Indexed by element position; null where the element is not a byte set.
    std::vector<std::shared_ptr<const PositionMask>> by_position;
};

MaskCache build_mask_cache(const FlatGrammar& grammar, const TokenTrie& trie,
                           GrammarStats& stats);

}  // namespace sluice::inference::detail
