#pragma once
// Building blocks of JSON grammars (strings, numbers, integers in ranges, formats, any value),
// added to one Grammar and shared between the schemas that use them.
//
// Caps that keep a constrained random model from writing forever (docs/grammar.md): integers
// without an upper bound have at most kMaxIntegerDigits digits, fractions at most
// kMaxFractionDigits, exponents at most two digits.
//
// Thread safety: owned by one compilation.

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "common/result.h"
#include "inference/grammar.h"

namespace sluice::inference::detail {

inline constexpr int kMaxIntegerDigits = 15;   // |x| < 10^15 unless the schema bounds it
inline constexpr int kMaxFractionDigits = 15;

// A numeric bound: value and whether it is exclusive. Bounds are integers (see NumberBounds).
struct IntBound {
    int64_t value = 0;
    bool exclusive = false;
};

class JsonParts {
public:
    explicit JsonParts(Grammar& grammar) : g_(grammar) {}

    Grammar& grammar() { return g_; }

    // An optional single space: the two forms of `before` + [" "] + `after`, as alternatives.
    GrammarAlternatives with_optional_space(const GrammarSequence& before,
                                            const GrammarSequence& after);

    // Any JSON value / object / string (all escapes allowed) / number, in the layout of
    // json_schema_grammar.h.
    int32_t any_value();
    int32_t any_object();
    int32_t any_string();
    int32_t any_number();

    // A JSON string of between min and max (max < 0: unbounded) code points.
    int32_t string_of_length(int64_t min, int64_t max);
    // A JSON string whose content matches `pattern` (kInvalidArgument from the regex compiler).
    Result<int32_t> string_matching(const std::string& pattern);
    // date, date-time, time, uuid, email, ipv4; nullopt for formats not supported.
    std::optional<int32_t> string_of_format(const std::string& format);
    // A JSON string whose content is none of `excluded` (each ASCII without characters that
    // need escaping); written with canonical escapes only, so a text has one spelling.
    int32_t string_except(const std::vector<std::string>& excluded);

    // Integers in [lo, hi] (each optional: unbounded side capped by kMaxIntegerDigits).
    // nullopt when the range is empty.
    std::optional<int32_t> integer_in(std::optional<IntBound> lo, std::optional<IntBound> hi);
    // Numbers (fraction allowed, no exponent) in the range; nullopt when empty.
    std::optional<int32_t> number_in(std::optional<IntBound> lo, std::optional<IntBound> hi);

    // The exact text `json_text` (enum and const values).
    int32_t literal(const std::string& json_text);

private:
    GrammarAlternatives string_char_alternatives();
    GrammarAlternatives digits(int64_t min, int64_t max);
    GrammarAlternatives unsigned_in(uint64_t lo, uint64_t hi);
    void same_length_range(const std::string& a, const std::string& b, GrammarSequence prefix,
                           GrammarAlternatives& out);

    Grammar& g_;
    int32_t any_value_ = -1;
    int32_t any_object_ = -1;
    int32_t any_string_ = -1;
    int32_t any_number_ = -1;
    std::map<std::string, int32_t> memo_;
};

}  // namespace sluice::inference::detail
