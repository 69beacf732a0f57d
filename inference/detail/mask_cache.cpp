#include "inference/detail/mask_cache.h"

#include "inference/detail/top_set_table.h"
#include "inference/grammar_matcher.h"

namespace sluice::inference::detail {

namespace {

// Walks every token from `position` with an unknown caller (kBottom beneath).
PositionMask walk_position(TopSetTable& table, const TokenTrie& trie, int32_t position) {
    const auto& nodes = trie.nodes();
    PositionMask mask;
    std::vector<int32_t> accepted;
    // state[d], crossed[d]: the set after the first d bytes of the current path, and whether the
    // rule returned past the analysed position at some prefix of length <= d.
    std::vector<int32_t> state(static_cast<size_t>(trie.max_token_bytes()) + 2);
    std::vector<char> crossed(state.size());
    state[0] = table.start(position, kBottom);
    crossed[0] = table.at_bottom(state[0]) ? 1 : 0;
    const auto n = static_cast<int32_t>(nodes.size());
    for (int32_t i = 1; i < n;) {
        const TokenTrie::Node& node = nodes[static_cast<size_t>(i)];
        const size_t d = node.depth;
        const int32_t s = table.step(state[d - 1], node.byte);
        const bool live = s >= 0 && table.live(s);
        const bool bottom = s >= 0 && table.at_bottom(s);
        if (node.token >= 0) {
            if (live || bottom) {
                accepted.push_back(node.token);
            } else if (crossed[d - 1]) {
                mask.context_dependent.push_back(node.token);
            }
        }
        if (!live) {
            if (crossed[d - 1] || bottom) {
                // Every longer token through here continues past the rule: the caller decides.
                for (int32_t j = i + 1; j < node.end; ++j) {
                    if (nodes[static_cast<size_t>(j)].token >= 0) {
                        mask.context_dependent.push_back(nodes[static_cast<size_t>(j)].token);
                    }
                }
            }
            i = node.end;
            continue;
        }
        state[d] = s;
        crossed[d] = (crossed[d - 1] || bottom) ? 1 : 0;
        ++i;
    }
    const size_t words = (static_cast<size_t>(trie.vocab_size()) + 63) / 64;
    if (accepted.size() * 2 > words) {
        mask.bits.assign(words, 0);
        for (int32_t id : accepted) {
            mask.bits[static_cast<size_t>(id) >> 6] |= uint64_t{1} << (id & 63);
        }
    } else {
        mask.ids = std::move(accepted);
    }
    return mask;
}

}  // namespace

MaskCache build_mask_cache(const FlatGrammar& grammar, const TokenTrie& trie,
                           GrammarStats& stats) {
    MaskCache cache;
    cache.by_position.resize(grammar.elements.size());
    TopSetTable table(&grammar);
    for (size_t p = 0; p < grammar.elements.size(); ++p) {
        if (grammar.elements[p].kind != FlatElement::Kind::kBytes) {
            continue;
        }
        ++stats.n_positions;
        const int32_t twin = grammar.twin[p];
        if (twin >= 0 && static_cast<size_t>(twin) < p && cache.by_position[static_cast<size_t>(twin)]) {
            cache.by_position[p] = cache.by_position[static_cast<size_t>(twin)];
            continue;
        }
        auto mask = std::make_shared<PositionMask>(
            walk_position(table, trie, static_cast<int32_t>(p)));
        ++stats.n_masks_computed;
        stats.n_context_dependent += static_cast<int64_t>(mask->context_dependent.size());
        stats.mask_bytes += static_cast<int64_t>(
            mask->bits.size() * 8 + mask->ids.size() * 4 + mask->context_dependent.size() * 4);
        cache.by_position[p] = std::move(mask);
    }
    return cache;
}

}  // namespace sluice::inference::detail
