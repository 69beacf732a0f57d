#include "inference/detail/grammar_automaton.h"

#include <algorithm>

namespace sluice::inference::detail {

namespace {

uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

// Which alternatives can match some string; the same fixpoint as Grammar::validate().
std::vector<std::vector<char>> productive_alternatives(const Grammar& grammar) {
    const auto& rules = grammar.rules();
    std::vector<char> productive(rules.size(), 0);
    std::vector<std::vector<char>> alt_ok(rules.size());
    for (size_t r = 0; r < rules.size(); ++r) {
        alt_ok[r].assign(rules[r].alternatives.size(), 0);
    }
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t r = 0; r < rules.size(); ++r) {
            for (size_t a = 0; a < rules[r].alternatives.size(); ++a) {
                if (alt_ok[r][a]) {
                    continue;
                }
                bool ok = true;
                for (const GrammarSymbol& s : rules[r].alternatives[a]) {
                    ok = ok && (s.kind == GrammarSymbol::Kind::kBytes
                                    ? grammar.byte_set(s.index).any()
                                    : productive[static_cast<size_t>(s.index)] != 0);
                }
                if (ok) {
                    alt_ok[r][a] = 1;
                    productive[r] = 1;
                    changed = true;
                }
            }
        }
    }
    return alt_ok;
}

}  // namespace

FlatGrammar flatten_grammar(const Grammar& grammar) {
    FlatGrammar flat;
    for (const ByteSet& set : grammar.byte_sets()) {
        std::array<uint64_t, 4> words{};
        for (size_t b = 0; b < 256; ++b) {
            if (set.test(b)) {
                words[b >> 6] |= uint64_t{1} << (b & 63);
            }
        }
        flat.byte_sets.push_back(words);
    }
    const auto alt_ok = productive_alternatives(grammar);
    const auto& rules = grammar.rules();
    std::vector<int32_t> rule_begin(rules.size());
    std::vector<int32_t> rule_size(rules.size());
    flat.rule_starts.resize(rules.size());
    for (size_t r = 0; r < rules.size(); ++r) {
        rule_begin[r] = static_cast<int32_t>(flat.elements.size());
        for (size_t a = 0; a < rules[r].alternatives.size(); ++a) {
            if (!alt_ok[r][a]) {
                continue;
            }
            flat.rule_starts[r].push_back(static_cast<int32_t>(flat.elements.size()));
            for (const GrammarSymbol& s : rules[r].alternatives[a]) {
                flat.elements.push_back({s.kind == GrammarSymbol::Kind::kBytes
                                             ? FlatElement::Kind::kBytes
                                             : FlatElement::Kind::kRule,
                                         s.index});
            }
            flat.elements.push_back({FlatElement::Kind::kEnd, 0});
        }
        rule_size[r] = static_cast<int32_t>(flat.elements.size()) - rule_begin[r];
    }
    flat.twin.assign(flat.elements.size(), -1);
    for (size_t r = 0; r < rules.size(); ++r) {
        const int32_t twin = rules[r].mask_twin;
        if (twin < 0 || rule_size[r] != rule_size[static_cast<size_t>(twin)]) {
            continue;
        }
        for (int32_t i = 0; i < rule_size[r]; ++i) {
            flat.twin[static_cast<size_t>(rule_begin[r] + i)] =
                rule_begin[static_cast<size_t>(twin)] + i;
        }
    }
    flat.root = grammar.root();
    return flat;
}

StackArena::StackArena(const FlatGrammar* grammar) : grammar_(grammar) {
    nodes_.push_back({-1, -1});  // kAccept
    nodes_.push_back({-1, -1});  // kBottom
}

int32_t StackArena::intern(int32_t position, int32_t parent) {
    const uint64_t key = pair_key(position, parent);
    auto [it, inserted] = index_.try_emplace(key, static_cast<int32_t>(nodes_.size()));
    if (inserted) {
        nodes_.push_back({position, parent});
    }
    return it->second;
}

void StackArena::closure(int32_t position, int32_t parent, std::vector<int32_t>& out) {
    const uint64_t key = pair_key(position, parent);
    if (std::find(visited_.begin(), visited_.end(), key) != visited_.end()) {
        return;
    }
    visited_.push_back(key);
    const FlatElement& element = grammar_->elements[static_cast<size_t>(position)];
    switch (element.kind) {
        case FlatElement::Kind::kBytes:
            out.push_back(intern(position, parent));
            return;
        case FlatElement::Kind::kRule: {
            // A call in tail position returns straight to the caller's caller.
            const bool tail = grammar_->elements[static_cast<size_t>(position + 1)].kind ==
                              FlatElement::Kind::kEnd;
            const int32_t ret = tail ? parent : intern(position + 1, parent);
            for (int32_t start : grammar_->rule_starts[static_cast<size_t>(element.value)]) {
                closure(start, ret, out);
            }
            return;
        }
        case FlatElement::Kind::kEnd:
            if (parent == kAccept || parent == kBottom) {
                out.push_back(parent);
                return;
            }
            closure(nodes_[static_cast<size_t>(parent)].position,
                    nodes_[static_cast<size_t>(parent)].parent, out);
            return;
    }
}

void StackArena::sort_unique(std::vector<int32_t>& out) {
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
}

void StackArena::initial(std::vector<int32_t>& out) {
    out.clear();
    visited_.clear();
    for (int32_t start : grammar_->rule_starts[static_cast<size_t>(grammar_->root)]) {
        closure(start, kAccept, out);
    }
    sort_unique(out);
}

void StackArena::expand(int32_t position, int32_t parent, std::vector<int32_t>& out) {
    out.clear();
    visited_.clear();
    closure(position, parent, out);
    sort_unique(out);
}

void StackArena::advance(std::span<const int32_t> tops, uint8_t b, std::vector<int32_t>& out) {
    out.clear();
    visited_.clear();
    for (int32_t top : tops) {
        if (top == kAccept || top == kBottom) {
            continue;
        }
        const Node n = nodes_[static_cast<size_t>(top)];
        if (grammar_->has_byte(n.position, b)) {
            closure(n.position + 1, n.parent, out);
        }
    }
    if (out.size() > 1) {
        sort_unique(out);
    }
}

}  // namespace sluice::inference::detail
