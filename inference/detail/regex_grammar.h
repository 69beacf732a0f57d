#pragma once
// Regular expressions (the regular subset of ECMA-262, as JSON Schema's `pattern` uses) compiled
// into grammar rules, and the alternatives of one character inside a JSON string.
//
// Supported: literals, `.`, classes `[...]` / `[^...]` with ranges, `\d \D \w \W \s \S`, escapes
// (`\n \t \r \f \v \0 \xHH \uHHHH` and escaped punctuation), groups `( )`, `(?: )`, `(?<name> )`,
// alternation, quantifiers `* + ? {m} {m,} {m,n}` (a lazy `?` suffix matches the same strings),
// `^` at the start and `$` at the end. Anything else (backreferences, lookaround, `\b`, flags,
// possessive quantifiers) is kInvalidArgument naming the construct and its offset.
//
// Thread safety: free functions over a caller-owned Grammar.

#include <cstdint>
#include <string_view>

#include "common/result.h"
#include "inference/detail/code_points.h"
#include "inference/grammar.h"

namespace sluice::inference::detail {

enum class RegexTarget {
    kRaw,         // characters as their UTF-8 bytes
    kJsonString,  // characters as they appear inside a JSON string literal (escaped where needed)
};

// Adds a rule matching exactly the strings that `pattern` matches, followed by `tail` (a JSON
// string's closing quote, say: inside the rule, so that tokens running from the pattern into it
// need no stack to be judged). JSON Schema patterns search (they match anywhere in the string)
// unless anchored, so unanchored sides get `.*`. kInvalidArgument names what is unsupported.
Result<int32_t> compile_regex(Grammar& grammar, std::string_view pattern, RegexTarget target,
                              std::string_view rule_name, const GrammarSequence& tail = {});

// One character of `ranges` as written in a JSON string: plain UTF-8 where JSON allows it, the
// short escape (`\"`, `\\`, `\n`, ...) or `\u00XX` for the others. Canonical forms only.
void json_char_alternatives(Grammar& grammar, const CodePointRanges& ranges,
                            GrammarAlternatives& out);

}  // namespace sluice::inference::detail
