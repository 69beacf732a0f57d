#pragma once
// The values of one metadata field that a filter leaf admits, as spans of the field's value order
// (numbers ascending, integers and floats together by exact value; text bytewise), so that
// FilterPostings reads the posting lists of a leaf and of its negation from its ordered maps.
// The spans follow Filter::matches exactly: a number bound admits only numbers, a text bound
// only text, a boolean bound nothing, a range without bounds every value, NaN only an unbounded
// range, a boolean only equals, in (or an unbounded range) of that boolean.
//
// Thread safety: pure functions over values.

#include <optional>
#include <string>
#include <vector>

#include "retrieval/filter.h"

namespace sluice::retrieval::detail {

template <typename T>
struct Bound {
    T value;
    bool inclusive = true;
};

// Absent bounds are unbounded.
template <typename T>
struct Interval {
    std::optional<Bound<T>> lower;
    std::optional<Bound<T>> upper;
};

// Disjoint intervals in increasing order per kind, and whether NaN and each boolean are
// admitted (booleans have no order: two points, no intervals).
struct ValueSpans {
    std::vector<Interval<MetaNumber>> numbers;
    std::vector<Interval<std::string>> texts;
    bool nan = false;
    bool bool_false = false;
    bool bool_true = false;
};

// What an equals, in, range or prefix leaf admits. Precondition: `leaf` is one of those.
ValueSpans leaf_spans(const Filter& leaf);

// Every value that `spans` does not admit (of every kind, NaN and booleans included).
ValueSpans complement(const ValueSpans& spans);

// The smallest text greater than every text that starts with `prefix`: the prefix with its
// trailing 0xff bytes dropped and its last byte raised by one; nullopt when there is none (the
// prefix is empty or all 0xff), i.e. the span runs to the end.
std::optional<std::string> prefix_end(const std::string& prefix);

}  // namespace sluice::retrieval::detail
