#pragma once
// Metadata filters: equals, in, range, prefix, combined with and/or/not. A filter is evaluated
// inside the search (the lexical ranker skips non-matching chunks before scoring them, the vector
// search hands FAISS a selector), so a filtered query still returns k results whenever k chunks
// match.
//
// Comparison rules: a number compares only with a number, text only with text (bytewise), a
// boolean only with a boolean; integers and floats are numbers alike, compared by exact value (a
// filter's 2019 bounds a stored 2020.0); NaN compares with nothing, itself included; a missing
// field matches nothing except under `not`. A boolean is not a number: `= true` does not admit a
// stored 1.0 (what builds before booleans were kept stored for true), and `= 1` does not admit
// true. Booleans have no order: a range with a boolean bound admits nothing (app/ refuses one
// before it gets here), and a number or text bound never admits a boolean, as it never admits a
// value of the other kind; prefix admits text only.
//
// Thread safety: immutable after construction; matches() may run on many threads.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "retrieval/types.h"

namespace sluice::retrieval {

class Filter {
public:
    enum class Op { kAll, kEquals, kIn, kRange, kPrefix, kAnd, kOr, kNot };

    // Matches everything.
    Filter() = default;

    static Filter equals(std::string field, MetaValue value);
    static Filter in(std::string field, std::vector<MetaValue> values);
    // Either bound may be absent; `*_inclusive` chooses <= / < and >= / >. A boolean bound
    // admits nothing.
    static Filter range(std::string field, std::optional<MetaValue> lower, bool lower_inclusive,
                        std::optional<MetaValue> upper, bool upper_inclusive);
    static Filter prefix(std::string field, std::string prefix);
    static Filter all_of(std::vector<Filter> children);
    static Filter any_of(std::vector<Filter> children);
    static Filter negate(Filter child);

    bool matches(const Metadata& metadata) const;
    bool matches_all() const { return op_ == Op::kAll; }
    Op op() const { return op_; }
    // The parts of the tree, for planners that look inside (FilterPostings): the field of a
    // leaf, its values (equals: 1, in: n, prefix: 1 text) and the children of and/or/not.
    const std::string& field() const { return field_; }
    const std::vector<MetaValue>& values() const { return values_; }
    const std::vector<Filter>& children() const { return children_; }
    // A range's bounds (absent: unbounded) and whether each admits its own value.
    const std::optional<MetaValue>& lower() const { return lower_; }
    const std::optional<MetaValue>& upper() const { return upper_; }
    bool lower_inclusive() const { return lower_inclusive_; }
    bool upper_inclusive() const { return upper_inclusive_; }

    // A readable form for logs and errors: (year >= 2020 and not (lang = "de")).
    std::string describe() const;

private:
    Op op_ = Op::kAll;
    std::string field_;
    std::vector<MetaValue> values_;  // equals: 1, in: n, prefix: 1 text
    std::optional<MetaValue> lower_;
    std::optional<MetaValue> upper_;
    bool lower_inclusive_ = true;
    bool upper_inclusive_ = true;
    std::vector<Filter> children_;
};

// A metadata number, integer or float, never NaN, ordered by exact value: -0.0, 0.0 and 0 are
// equal, and 2^53 + 1 is above the float 2^53 (as a double it would equal it). The posting lists
// (FilterPostings) keep numbers in this order.
struct MetaNumber {
    std::variant<std::int64_t, double> value;

    friend bool operator<(const MetaNumber& a, const MetaNumber& b);
};

// -1, 0 or 1 as `a` is below, equal to or above `b`.
int compare_numbers(const MetaNumber& a, const MetaNumber& b);

// The number `value` holds; nullopt for text, booleans and NaN.
std::optional<MetaNumber> number_of(const MetaValue& value);

// Three-way comparison of two values of the same kind, text, number or boolean (false below
// true, an order that only equality uses); nullopt when the kinds differ or either is NaN
// (unordered: equals, in and bounded ranges never admit it).
std::optional<int> compare_values(const MetaValue& a, const MetaValue& b);

// Whether a range may take `value` as a bound: text and numbers have an order, booleans none.
bool is_ordered_kind(const MetaValue& value);

std::string describe_value(const MetaValue& value);

}  // namespace sluice::retrieval
