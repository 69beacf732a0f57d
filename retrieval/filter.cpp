#include "retrieval/filter.h"

#include <cmath>
#include <cstdio>

namespace sluice::retrieval {

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
    if (a.index() != b.index()) {
        return std::nullopt;
    }
    if (const auto* text = std::get_if<std::string>(&a)) {
        int c = text->compare(std::get<std::string>(b));
        return c < 0 ? -1 : (c > 0 ? 1 : 0);
    }
    double x = std::get<double>(a);
    double y = std::get<double>(b);
    if (std::isnan(x) || std::isnan(y)) {
        return std::nullopt;
    }
    if (x < y) {
        return -1;
    }
    return x > y ? 1 : 0;
}

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
    char buffer[32];
    std::snprintf(buffer, sizeof(buffer), "%g", std::get<double>(value));
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
