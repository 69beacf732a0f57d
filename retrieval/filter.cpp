#include "retrieval/filter.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace sluice::retrieval {
namespace {

template <typename T>
int three_way(T a, T b) {
    if (a < b) {
        return -1;
    }
    return b < a ? 1 : 0;
}

// Converting the integer to a double would round it (2^53 + 1 becomes 2^53), so the double is
// cut to an integer instead, which is exact wherever an int64 can hold it.
int compare_integer_float(std::int64_t i, double d) {
    constexpr double kTwo63 = 9223372036854775808.0;  // 2^63, exact as a double
    if (d >= kTwo63) {
        return -1;
    }
    if (d < -kTwo63) {
        return 1;
    }
    const double whole = std::trunc(d);
    const auto cut = static_cast<std::int64_t>(whole);
    if (i != cut) {
        return i < cut ? -1 : 1;
    }
    // i is d without its fraction: the fraction alone decides.
    return three_way(whole, d);
}

}  // namespace

int compare_numbers(const MetaNumber& a, const MetaNumber& b) {
    const auto* ai = std::get_if<std::int64_t>(&a.value);
    const auto* bi = std::get_if<std::int64_t>(&b.value);
    if (ai != nullptr && bi != nullptr) {
        return three_way(*ai, *bi);
    }
    if (ai != nullptr) {
        return compare_integer_float(*ai, std::get<double>(b.value));
    }
    if (bi != nullptr) {
        return -compare_integer_float(*bi, std::get<double>(a.value));
    }
    return three_way(std::get<double>(a.value), std::get<double>(b.value));
}

bool operator<(const MetaNumber& a, const MetaNumber& b) { return compare_numbers(a, b) < 0; }

std::optional<MetaNumber> number_of(const MetaValue& value) {
    if (const auto* integer = std::get_if<std::int64_t>(&value)) {
        return MetaNumber{*integer};
    }
    if (const auto* real = std::get_if<double>(&value); real != nullptr && !std::isnan(*real)) {
        return MetaNumber{*real};
    }
    return std::nullopt;
}

Filter Filter::equals(std::string field, MetaValue value) {
    Filter f;
    f.op_ = Op::kEquals;
    f.field_ = std::move(field);
    f.values_.push_back(std::move(value));
    return f;
}

Filter Filter::in(std::string field, std::vector<MetaValue> values) {
    Filter f;
    f.op_ = Op::kIn;
    f.field_ = std::move(field);
    f.values_ = std::move(values);
    return f;
}

Filter Filter::range(std::string field, std::optional<MetaValue> lower, bool lower_inclusive,
                     std::optional<MetaValue> upper, bool upper_inclusive) {
    Filter f;
    f.op_ = Op::kRange;
    f.field_ = std::move(field);
    f.lower_ = std::move(lower);
    f.upper_ = std::move(upper);
    f.lower_inclusive_ = lower_inclusive;
    f.upper_inclusive_ = upper_inclusive;
    return f;
}

Filter Filter::prefix(std::string field, std::string prefix) {
    Filter f;
    f.op_ = Op::kPrefix;
    f.field_ = std::move(field);
    f.values_.emplace_back(std::move(prefix));
    return f;
}

Filter Filter::all_of(std::vector<Filter> children) {
    Filter f;
    f.op_ = Op::kAnd;
    f.children_ = std::move(children);
    return f;
}

Filter Filter::any_of(std::vector<Filter> children) {
    Filter f;
    f.op_ = Op::kOr;
    f.children_ = std::move(children);
    return f;
}

Filter Filter::negate(Filter child) {
    Filter f;
    f.op_ = Op::kNot;
    f.children_.push_back(std::move(child));
    return f;
}

std::optional<int> compare_values(const MetaValue& a, const MetaValue& b) {
    const auto* a_text = std::get_if<std::string>(&a);
    const auto* b_text = std::get_if<std::string>(&b);
    if (a_text != nullptr && b_text != nullptr) {
        int c = a_text->compare(*b_text);
        return c < 0 ? -1 : (c > 0 ? 1 : 0);
    }
    const auto* a_bool = std::get_if<bool>(&a);
    const auto* b_bool = std::get_if<bool>(&b);
    if (a_bool != nullptr && b_bool != nullptr) {
        return three_way(*a_bool, *b_bool);
    }
    // Integers and floats are one kind: a filter's 2019 bounds a stored 2020.0 and the other way
    // round. number_of() is empty for text, booleans and NaN, which compare with nothing.
    auto x = number_of(a);
    auto y = number_of(b);
    if (!x || !y) {
        return std::nullopt;
    }
    return compare_numbers(*x, *y);
}

bool is_ordered_kind(const MetaValue& value) { return !std::holds_alternative<bool>(value); }

bool Filter::matches(const Metadata& metadata) const {
    switch (op_) {
        case Op::kAll:
            return true;
        case Op::kAnd:
            for (const auto& child : children_) {
                if (!child.matches(metadata)) {
                    return false;
                }
            }
            return true;
        case Op::kOr:
            for (const auto& child : children_) {
                if (child.matches(metadata)) {
                    return true;
                }
            }
            return false;
        case Op::kNot:
            return !children_.front().matches(metadata);
        default:
            break;
    }
    auto it = metadata.find(field_);
    if (it == metadata.end()) {
        return false;
    }
    const MetaValue& value = it->second;
    switch (op_) {
        case Op::kEquals:
        case Op::kIn:
            for (const auto& candidate : values_) {
                if (compare_values(value, candidate) == 0) {
                    return true;
                }
            }
            return false;
        case Op::kPrefix: {
            const auto* text = std::get_if<std::string>(&value);
            const auto& prefix = std::get<std::string>(values_.front());
            return text != nullptr && text->compare(0, prefix.size(), prefix) == 0;
        }
        case Op::kRange: {
            // A boolean bound admits nothing, not even a boolean: false < true is no order a
            // user means (detail/value_spans.cpp keeps to this rule too).
            if ((lower_ && !is_ordered_kind(*lower_)) || (upper_ && !is_ordered_kind(*upper_))) {
                return false;
            }
            if (lower_) {
                auto c = compare_values(value, *lower_);
                if (!c || *c < 0 || (*c == 0 && !lower_inclusive_)) {
                    return false;
                }
            }
            if (upper_) {
                auto c = compare_values(value, *upper_);
                if (!c || *c > 0 || (*c == 0 && !upper_inclusive_)) {
                    return false;
                }
            }
            return true;
        }
        default:
            return false;
    }
}

std::string describe_value(const MetaValue& value) {
    if (const auto* text = std::get_if<std::string>(&value)) {
        return "\"" + *text + "\"";
    }
    if (const auto* integer = std::get_if<std::int64_t>(&value)) {
        return std::to_string(*integer);
    }
    if (const auto* flag = std::get_if<bool>(&value)) {
        return *flag ? "true" : "false";
    }
    // %g where it reads back as the same double (what every earlier build wrote, and document
    // fingerprints hash this text), else all 17 digits: %g gave 1234567 and 1234568 one text.
    const double number = std::get<double>(value);
    char buffer[32];
    std::snprintf(buffer, sizeof(buffer), "%g", number);
    if (std::strtod(buffer, nullptr) != number && !std::isnan(number)) {
        std::snprintf(buffer, sizeof(buffer), "%.17g", number);
    }
    return buffer;
}

std::string Filter::describe() const {
    auto join = [this](const char* word) {
        std::string out = "(";
        for (std::size_t i = 0; i < children_.size(); ++i) {
            out += (i == 0 ? "" : std::string(" ") + word + " ") + children_[i].describe();
        }
        return out + ")";
    };
    switch (op_) {
        case Op::kAll: return "true";
        case Op::kEquals: return field_ + " = " + describe_value(values_.front());
        case Op::kIn: {
            std::string out = field_ + " in [";
            for (std::size_t i = 0; i < values_.size(); ++i) {
                out += (i == 0 ? "" : ", ") + describe_value(values_[i]);
            }
            return out + "]";
        }
        case Op::kPrefix: return field_ + " starts with " + describe_value(values_.front());
        case Op::kRange: {
            std::string out;
            if (lower_) {
                out += field_ + (lower_inclusive_ ? " >= " : " > ") + describe_value(*lower_);
            }
            if (upper_) {
                out += (out.empty() ? "" : " and ") + field_ + (upper_inclusive_ ? " <= " : " < ") +
                       describe_value(*upper_);
            }
            return out.empty() ? "true" : out;
        }
        case Op::kAnd: return join("and");
        case Op::kOr: return join("or");
        case Op::kNot: return "not " + children_.front().describe();
    }
    return "?";
}

}  // namespace sluice::retrieval
