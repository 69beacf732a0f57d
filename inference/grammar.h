#pragma once
// A context-free grammar over bytes: the form every output constraint takes before it is turned
// into token masks (grammar_matcher.h). JSON schemas (json_schema_grammar.h), tool lists and the
// text syntax of docs/grammar.md all compile to a Grammar.
//
// A grammar is a list of rules; a rule is a list of alternatives; an alternative is a sequence of
// symbols, each either a set of bytes (matching one byte) or a reference to a rule. Characters
// beyond ASCII are sequences of byte sets (UTF-8), so the matcher works on bytes, as tokens do.
//
// Restrictions checked by validate(): every referenced rule exists, the root can match something,
// and no rule is left-recursive (a rule reaching itself before consuming a byte), since the
// matcher expands rules eagerly and would not terminate.
//
// Thread safety: a value type; const methods may run on many threads at once.

#include <bitset>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.h"

namespace sluice::inference {

using ByteSet = std::bitset<256>;

struct GrammarSymbol {
    enum class Kind : uint8_t { kBytes, kRule };
    Kind kind = Kind::kBytes;
    int32_t index = 0;  // a byte set (Grammar::byte_set) or a rule (Grammar::rule)

    friend bool operator==(const GrammarSymbol&, const GrammarSymbol&) = default;
};

using GrammarSequence = std::vector<GrammarSymbol>;
using GrammarAlternatives = std::vector<GrammarSequence>;

struct GrammarRule {
    std::string name;
    GrammarAlternatives alternatives;
    // A rule whose every alternative has the same shape and whose token masks equal those of
    // `mask_twin` (set by repeat() for levels of a long bounded repetition that no token can see
    // the end of); -1 for none. Only an optimisation: masks are computed for twins otherwise.
    int32_t mask_twin = -1;
};

class Grammar {
public:
    // Adds a rule with no alternatives yet. Names are made unique by a numeric suffix.
    int32_t add_rule(std::string_view name);
    void add_alternative(int32_t rule, GrammarSequence sequence);
    // Interns a byte set; the same set always gets the same index.
    int32_t add_byte_set(const ByteSet& set);
    void set_root(int32_t rule) { root_ = rule; }
    void set_mask_twin(int32_t rule, int32_t twin) { rules_[static_cast<size_t>(rule)].mask_twin = twin; }

    // Symbols.
    GrammarSymbol bytes(const ByteSet& set) { return {GrammarSymbol::Kind::kBytes, add_byte_set(set)}; }
    GrammarSymbol byte(uint8_t value);
    GrammarSymbol byte_range(uint8_t first, uint8_t last);
    static GrammarSymbol ref(int32_t rule) { return {GrammarSymbol::Kind::kRule, rule}; }
    // The bytes of `text` as a sequence.
    GrammarSequence literal(std::string_view text);
    // A rule with the given alternatives.
    int32_t rule_of(std::string_view name, GrammarAlternatives alternatives);

    // A rule matching `item` repeated between `min` and `max` times (max < 0: unbounded), then
    // `tail`. The item's alternatives are spread into each level (no rule per item), so a token
    // that stays inside the repetition is judged without looking at the stack. Bounded forms use
    // one rule per count left; see GrammarRule::mask_twin for why long ones stay cheap.
    int32_t repeat(std::string_view name, const GrammarAlternatives& item, int64_t min,
                   int64_t max, const GrammarSequence& tail = {});

    // The number of levels past which bounded repetitions share masks: more than the longest
    // token in bytes, as each item consumes at least one byte. 0 (the default) disables sharing.
    void set_twin_depth(int32_t depth) { twin_depth_ = depth; }

    // kInvalidArgument for a missing root or rule reference, a root that matches nothing, or
    // left recursion (naming the rule).
    Status validate() const;

    int32_t root() const { return root_; }
    const std::vector<GrammarRule>& rules() const { return rules_; }
    const GrammarRule& rule(int32_t index) const { return rules_[static_cast<size_t>(index)]; }
    const std::vector<ByteSet>& byte_sets() const { return byte_sets_; }
    const ByteSet& byte_set(int32_t index) const { return byte_sets_[static_cast<size_t>(index)]; }
    std::optional<int32_t> find_rule(std::string_view name) const;

    // The grammar in the text syntax of docs/grammar.md (for messages and debugging).
    std::string to_string() const;

private:
    std::vector<GrammarRule> rules_;
    std::unordered_map<std::string, int32_t> rule_index_;    // name -> rule
    std::unordered_map<std::string, int> next_suffix_;       // base name -> next suffix to try
    std::vector<ByteSet> byte_sets_;
    int32_t root_ = -1;
    int32_t twin_depth_ = 0;
};

// Parses the text syntax of docs/grammar.md (GBNF-like: `name ::= alternatives`, literals,
// character classes, groups, `* + ? {m,n}`, comments). The rule named `root` is the root.
// kInvalidArgument with the line and column of the first error.
Result<Grammar> parse_grammar(std::string_view text);

namespace grammar_text {
// Appends to `grammar` the alternatives of one UTF-8 character in the code point ranges
// `ranges` (inclusive pairs, surrogates excluded): each alternative is a sequence of byte sets.
void add_code_point_alternatives(Grammar& grammar,
                                 const std::vector<std::pair<uint32_t, uint32_t>>& ranges,
                                 GrammarAlternatives& out);
}  // namespace grammar_text

}  // namespace sluice::inference
