#include "retrieval/detail/value_spans.h"

#include <algorithm>

namespace sluice::retrieval::detail {
namespace {

// Whether an interval admits no value: its lower bound lies above its upper one, or both sit on
// one value that one of them excludes.
template <typename T>
bool is_empty(const Interval<T>& interval) {
    if (!interval.lower || !interval.upper) {
        return false;
    }
    const auto& lower = *interval.lower;
    const auto& upper = *interval.upper;
    if (upper.value < lower.value) {
        return true;
    }
    return !(lower.value < upper.value) && !(lower.inclusive && upper.inclusive);
}

template <typename T>
std::vector<Interval<T>> points(std::vector<T> values) {
    std::sort(values.begin(), values.end());
    // Equal as the filter compares them (-0.0, 0.0 and the integer 0 are one point).
    values.erase(std::unique(values.begin(), values.end(),
                             [](const T& a, const T& b) { return !(a < b) && !(b < a); }),
                 values.end());
    std::vector<Interval<T>> out;
    out.reserve(values.size());
    for (auto& value : values) {
        out.push_back(Interval<T>{Bound<T>{value, true}, Bound<T>{value, true}});
    }
    return out;
}

// The gaps between disjoint increasing intervals, and before the first and after the last.
template <typename T>
std::vector<Interval<T>> gaps(const std::vector<Interval<T>>& intervals) {
    std::vector<Interval<T>> out;
    std::optional<Bound<T>> from;  // the lower bound of the next gap; none: from the start
    for (const auto& interval : intervals) {
        if (interval.lower) {
            Interval<T> gap{from, Bound<T>{interval.lower->value, !interval.lower->inclusive}};
            if (!is_empty(gap)) {
                out.push_back(std::move(gap));
            }
        }
        if (!interval.upper) {
            return out;  // the interval runs to the end: no gap after it
        }
        from = Bound<T>{interval.upper->value, !interval.upper->inclusive};
    }
    out.push_back(Interval<T>{from, std::nullopt});
    return out;
}

template <typename T>
std::vector<Interval<T>> everything() {
    return {Interval<T>{}};
}

ValueSpans range_spans(const Filter& leaf) {
    ValueSpans out;
    const auto& lower = leaf.lower();
    const auto& upper = leaf.upper();
    if (!lower && !upper) {
        // No bound: every value of the field, NaN too (matches() compares nothing).
        out.numbers = everything<MetaNumber>();
        out.texts = everything<std::string>();
        out.nan = true;
        out.bool_false = true;
        out.bool_true = true;
        return out;
    }
    if ((lower && !is_ordered_kind(*lower)) || (upper && !is_ordered_kind(*upper))) {
        return out;  // a boolean bound: booleans have no order
    }
    auto is_text = [](const MetaValue& bound) {
        return std::holds_alternative<std::string>(bound);
    };
    if (lower && upper && is_text(*lower) != is_text(*upper)) {
        return out;  // a number never compares with text: nothing passes both bounds
    }
    if (!is_text(lower ? *lower : *upper)) {
        // Integer and float bounds are one kind; a NaN bound admits nothing.
        std::optional<MetaNumber> low = lower ? number_of(*lower) : std::nullopt;
        std::optional<MetaNumber> high = upper ? number_of(*upper) : std::nullopt;
        if ((lower && !low) || (upper && !high)) {
            return out;
        }
        Interval<MetaNumber> interval;
        if (low) {
            interval.lower = Bound<MetaNumber>{*low, leaf.lower_inclusive()};
        }
        if (high) {
            interval.upper = Bound<MetaNumber>{*high, leaf.upper_inclusive()};
        }
        if (!is_empty(interval)) {
            out.numbers.push_back(interval);
        }
        return out;
    }
    Interval<std::string> interval;
    if (lower) {
        interval.lower = Bound<std::string>{std::get<std::string>(*lower), leaf.lower_inclusive()};
    }
    if (upper) {
        interval.upper = Bound<std::string>{std::get<std::string>(*upper), leaf.upper_inclusive()};
    }
    if (!is_empty(interval)) {
        out.texts.push_back(std::move(interval));
    }
    return out;
}

}  // namespace

std::optional<std::string> prefix_end(const std::string& prefix) {
    std::string end = prefix;
    while (!end.empty() && static_cast<unsigned char>(end.back()) == 0xff) {
        end.pop_back();
    }
    if (end.empty()) {
        return std::nullopt;
    }
    end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
    return end;
}

ValueSpans leaf_spans(const Filter& leaf) {
    ValueSpans out;
    switch (leaf.op()) {
        case Filter::Op::kEquals:
        case Filter::Op::kIn: {
            std::vector<MetaNumber> numbers;
            std::vector<std::string> texts;
            for (const auto& value : leaf.values()) {
                if (const auto* text = std::get_if<std::string>(&value)) {
                    texts.push_back(*text);
                } else if (const auto* flag = std::get_if<bool>(&value)) {
                    (*flag ? out.bool_true : out.bool_false) = true;
                } else if (auto number = number_of(value)) {  // NaN equals nothing
                    numbers.push_back(*number);
                }
            }
            out.numbers = points(std::move(numbers));
            out.texts = points(std::move(texts));
            return out;
        }
        case Filter::Op::kPrefix: {
            const auto& prefix = std::get<std::string>(leaf.values().front());
            Interval<std::string> interval;
            interval.lower = Bound<std::string>{prefix, true};
            if (auto end = prefix_end(prefix)) {
                interval.upper = Bound<std::string>{*end, false};
            }
            out.texts.push_back(std::move(interval));
            return out;
        }
        case Filter::Op::kRange:
            return range_spans(leaf);
        default:
            return out;
    }
}

ValueSpans complement(const ValueSpans& spans) {
    ValueSpans out;
    out.numbers = gaps(spans.numbers);
    out.texts = gaps(spans.texts);
    out.nan = !spans.nan;
    out.bool_false = !spans.bool_false;
    out.bool_true = !spans.bool_true;
    return out;
}

}  // namespace sluice::retrieval::detail
