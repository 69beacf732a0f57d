#include "inference/detail/json_grammar_parts.h"

#include <algorithm>
#include <functional>
#include <set>

#include "inference/detail/regex_grammar.h"

namespace sluice::inference::detail {

namespace {

constexpr uint64_t kIntegerCap = 999'999'999'999'999;  // kMaxIntegerDigits nines

ByteSet byte_range_set(uint8_t first, uint8_t last) {
    ByteSet set;
    for (int b = first; b <= last; ++b) {
        set.set(static_cast<size_t>(b));
    }
    return set;
}

// Regular expressions of the supported formats, over the string content. They generate a subset
// of each RFC's forms (upper-case 'T' and 'Z', no leap seconds, no 29 February), all valid.
const std::map<std::string, std::string>& format_patterns() {
    static const std::map<std::string, std::string> patterns = [] {
        const std::string date =
            "[0-9]{4}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
            "|02-(0[1-9]|1[0-9]|2[0-8]))";
        const std::string time =
            "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):"
            "[0-5][0-9])";
        const std::string label = "[A-Za-z0-9]([A-Za-z0-9-]{0,30}[A-Za-z0-9])?";
        const std::string octet = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
        return std::map<std::string, std::string>{
            {"date", "^" + date + "$"},
            {"time", "^" + time + "$"},
            {"date-time", "^" + date + "T" + time + "$"},
            {"uuid", "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"},
            {"email", "^[A-Za-z0-9_%+-]{1,32}(\\.[A-Za-z0-9_%+-]{1,32}){0,3}@" + label + "(\\." +
                          label + "){0,3}\\.[A-Za-z]{2,12}$"},
            {"ipv4", "^" + octet + "(\\." + octet + "){3}$"},
        };
    }();
    return patterns;
}

GrammarAlternatives spaced(const std::vector<GrammarSequence>& parts, Grammar& g) {
    GrammarAlternatives out{parts.front()};
    for (size_t i = 1; i < parts.size(); ++i) {
        GrammarAlternatives next;
        for (const GrammarSequence& base : out) {
            for (bool space : {false, true}) {
                GrammarSequence s = base;
                if (space) {
                    s.push_back(g.byte(' '));
                }
                s.insert(s.end(), parts[i].begin(), parts[i].end());
                next.push_back(std::move(s));
            }
        }
        out = std::move(next);
    }
    return out;
}

}  // namespace

GrammarAlternatives JsonParts::with_optional_space(const GrammarSequence& before,
                                                   const GrammarSequence& after) {
    return spaced({before, after}, g_);
}

GrammarAlternatives JsonParts::string_char_alternatives() {
    GrammarAlternatives alts;
    ByteSet plain = byte_range_set(0x20, 0x7F);
    plain.reset('"');
    plain.reset('\\');
    alts.push_back({g_.bytes(plain)});
    grammar_text::add_code_point_alternatives(g_, {{0x80, kMaxCodePoint}}, alts);
    ByteSet escapes;
    for (char c : std::string("\"\\/bfnrt")) {
        escapes.set(static_cast<uint8_t>(c));
    }
    alts.push_back({g_.byte('\\'), g_.bytes(escapes)});
    // \uXXXX outside the surrogates, so every escape is one code point.
    ByteSet hex = byte_range_set('0', '9') | byte_range_set('a', 'f') | byte_range_set('A', 'F');
    ByteSet first_plain = byte_range_set('0', '9') | byte_range_set('a', 'c') |
                          byte_range_set('A', 'C') | byte_range_set('e', 'f') |
                          byte_range_set('E', 'F');
    ByteSet d;
    d.set('d');
    d.set('D');
    alts.push_back({g_.byte('\\'), g_.byte('u'), g_.bytes(first_plain), g_.bytes(hex),
                    g_.bytes(hex), g_.bytes(hex)});
    alts.push_back({g_.byte('\\'), g_.byte('u'), g_.bytes(d), g_.byte_range('0', '7'),
                    g_.bytes(hex), g_.bytes(hex)});
    return alts;
}

int32_t JsonParts::any_string() {
    if (any_string_ < 0) {
        any_string_ = string_of_length(0, -1);
    }
    return any_string_;
}

int32_t JsonParts::string_of_length(int64_t min, int64_t max) {
    const std::string key = "str:" + std::to_string(min) + ":" + std::to_string(max);
    if (auto it = memo_.find(key); it != memo_.end()) {
        return it->second;
    }
    const int32_t body = g_.repeat("string_chars", string_char_alternatives(), min, max,
                                   {g_.byte('"')});
    const int32_t rule = g_.rule_of("string", {{g_.byte('"'), Grammar::ref(body)}});
    memo_[key] = rule;
    return rule;
}

Result<int32_t> JsonParts::string_matching(const std::string& pattern) {
    const std::string key = "pattern:" + pattern;
    if (auto it = memo_.find(key); it != memo_.end()) {
        return it->second;
    }
    SLUICE_ASSIGN_OR_RETURN(int32_t body, compile_regex(g_, pattern, RegexTarget::kJsonString,
                                                        "pattern", {g_.byte('"')}));
    const int32_t rule = g_.rule_of("pattern_string", {{g_.byte('"'), Grammar::ref(body)}});
    memo_[key] = rule;
    return rule;
}

std::optional<int32_t> JsonParts::string_of_format(const std::string& format) {
    auto it = format_patterns().find(format);
    if (it == format_patterns().end()) {
        return std::nullopt;
    }
    auto rule = string_matching(it->second);
    SLUICE_CHECK(rule.ok(), "built-in format pattern does not compile: " + rule.status().to_string());
    return *rule;
}

int32_t JsonParts::string_except(const std::vector<std::string>& excluded) {
    // A trie of the excluded texts; one rule per node. Leaving the trie on a byte no excluded
    // text continues with leads to the unconstrained rest of the string.
    GrammarAlternatives canonical;
    json_char_alternatives(g_, {{0, kMaxCodePoint}}, canonical);
    const int32_t rest = g_.repeat("key_chars", canonical, 0, -1, {g_.byte('"')});
    std::set<std::string> names(excluded.begin(), excluded.end());
    std::function<int32_t(const std::string&)> node = [&](const std::string& prefix) -> int32_t {
        const int32_t rule = g_.add_rule("key_except");
        std::set<uint8_t> children;
        for (const std::string& name : names) {
            if (name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0) {
                children.insert(static_cast<uint8_t>(name[prefix.size()]));
            }
        }
        for (uint8_t c : children) {
            g_.add_alternative(rule, {g_.byte(c), Grammar::ref(node(prefix + static_cast<char>(c)))});
        }
        for (GrammarSequence alt : canonical) {
            const ByteSet& first = g_.byte_set(alt[0].index);
            ByteSet remaining = first;
            for (uint8_t c : children) {
                remaining.reset(c);
            }
            if (remaining.none()) {
                continue;
            }
            alt[0] = g_.bytes(remaining);
            alt.push_back(Grammar::ref(rest));
            g_.add_alternative(rule, std::move(alt));
        }
        if (!names.contains(prefix)) {
            g_.add_alternative(rule, {g_.byte('"')});
        }
        return rule;
    };
    return g_.rule_of("key", {{g_.byte('"'), Grammar::ref(node(""))}});
}

GrammarAlternatives JsonParts::digits(int64_t min, int64_t max) {
    return {{Grammar::ref(g_.repeat("digits", {{g_.byte_range('0', '9')}}, min, max))}};
}

int32_t JsonParts::any_number() {
    if (any_number_ >= 0) {
        return any_number_;
    }
    const int32_t integer = g_.rule_of(
        "int", {{g_.byte('0')},
                {g_.byte_range('1', '9'), Grammar::ref(g_.repeat("digits", {{g_.byte_range('0', '9')}},
                                                                 0, kMaxIntegerDigits - 1))}});
    const int32_t frac = g_.rule_of(
        "frac", {{g_.byte('.'), Grammar::ref(g_.repeat("digits", {{g_.byte_range('0', '9')}}, 1,
                                                       kMaxFractionDigits))}});
    ByteSet e;
    e.set('e');
    e.set('E');
    ByteSet sign;
    sign.set('+');
    sign.set('-');
    const int32_t two_digits = g_.repeat("digits", {{g_.byte_range('0', '9')}}, 1, 2);
    const int32_t exp = g_.rule_of("exp", {{g_.bytes(e), Grammar::ref(two_digits)},
                                           {g_.bytes(e), g_.bytes(sign), Grammar::ref(two_digits)}});
    any_number_ = g_.add_rule("number");
    for (bool minus : {false, true}) {
        for (bool has_frac : {false, true}) {
            for (bool has_exp : {false, true}) {
                GrammarSequence s;
                if (minus) {
                    s.push_back(g_.byte('-'));
                }
                s.push_back(Grammar::ref(integer));
                if (has_frac) {
                    s.push_back(Grammar::ref(frac));
                }
                if (has_exp) {
                    s.push_back(Grammar::ref(exp));
                }
                g_.add_alternative(any_number_, std::move(s));
            }
        }
    }
    return any_number_;
}

void JsonParts::same_length_range(const std::string& a, const std::string& b,
                                  GrammarSequence prefix, GrammarAlternatives& out) {
    size_t i = 0;
    while (i < a.size() && a[i] == b[i]) {
        prefix.push_back(g_.byte(static_cast<uint8_t>(a[i])));
        ++i;
    }
    if (i == a.size()) {
        out.push_back(std::move(prefix));
        return;
    }
    const size_t rest = a.size() - i - 1;
    auto all = [](const std::string& s, size_t from, char c) {
        return std::all_of(s.begin() + static_cast<std::ptrdiff_t>(from), s.end(),
                           [c](char x) { return x == c; });
    };
    auto with_free_tail = [&](char lo, char hi) {
        GrammarSequence s = prefix;
        s.push_back(g_.byte_range(static_cast<uint8_t>(lo), static_cast<uint8_t>(hi)));
        for (size_t k = 0; k < rest; ++k) {
            s.push_back(g_.byte_range('0', '9'));
        }
        out.push_back(std::move(s));
    };
    char lo_digit = a[i];
    char hi_digit = b[i];
    if (!all(a, i + 1, '0')) {
        GrammarSequence p = prefix;
        p.push_back(g_.byte(static_cast<uint8_t>(a[i])));
        same_length_range(a.substr(i + 1), std::string(rest, '9'), p, out);
        ++lo_digit;
    }
    if (!all(b, i + 1, '9')) {
        GrammarSequence p = prefix;
        p.push_back(g_.byte(static_cast<uint8_t>(b[i])));
        same_length_range(std::string(rest, '0'), b.substr(i + 1), p, out);
        --hi_digit;
    }
    if (lo_digit <= hi_digit) {
        with_free_tail(lo_digit, hi_digit);
    }
}

GrammarAlternatives JsonParts::unsigned_in(uint64_t lo, uint64_t hi) {
    GrammarAlternatives out;
    const auto n_digits = [](uint64_t v) { return static_cast<int>(std::to_string(v).size()); };
    uint64_t power = 1;  // 10^(length - 1)
    for (int length = 1; length <= n_digits(hi); ++length, power *= 10) {
        const uint64_t first = length == 1 ? 0 : power;
        const uint64_t last = power * 10 - 1;
        const uint64_t a = std::max(lo, first);
        const uint64_t b = std::min(hi, last);
        if (a <= b) {
            same_length_range(std::to_string(a), std::to_string(b), {}, out);
        }
    }
    return out;
}

std::optional<int32_t> JsonParts::integer_in(std::optional<IntBound> lo, std::optional<IntBound> hi) {
    const auto cap = static_cast<int64_t>(kIntegerCap);
    int64_t low = lo ? (lo->exclusive ? lo->value + 1 : lo->value) : -cap;
    int64_t high = hi ? (hi->exclusive ? hi->value - 1 : hi->value) : cap;
    low = std::max(low, -cap);
    high = std::min(high, cap);
    if (low > high) {
        return std::nullopt;
    }
    const std::string key = "int:" + std::to_string(low) + ":" + std::to_string(high);
    if (auto it = memo_.find(key); it != memo_.end()) {
        return it->second;
    }
    GrammarAlternatives alts;
    if (high >= 0) {
        alts = unsigned_in(static_cast<uint64_t>(std::max<int64_t>(low, 0)),
                           static_cast<uint64_t>(high));
    }
    if (low < 0) {
        for (GrammarSequence s : unsigned_in(static_cast<uint64_t>(std::max<int64_t>(-high, 1)),
                                             static_cast<uint64_t>(-low))) {
            s.insert(s.begin(), g_.byte('-'));
            alts.push_back(std::move(s));
        }
    }
    const int32_t rule = g_.rule_of("integer", std::move(alts));
    memo_[key] = rule;
    return rule;
}

std::optional<int32_t> JsonParts::number_in(std::optional<IntBound> lo, std::optional<IntBound> hi) {
    // x = sign * (I + f), I an integer, f in [0, 1). With integer bounds each side of zero splits
    // into integer-part intervals where the fraction may be anything (3), must be zero (1: the
    // value equals an inclusive bound) or must be non-zero (2: just above an exclusive bound).
    struct Piece {
        int64_t lo, hi;
        int mode;
    };
    const auto cap = static_cast<int64_t>(kIntegerCap);
    auto side = [&](std::optional<IntBound> l, std::optional<IntBound> h) {
        auto lower = [&](int64_t i) {
            if (!l || l->value < 0) {
                return 3;
            }
            if (i > l->value) {
                return 3;
            }
            if (i == l->value) {
                return l->exclusive ? 2 : 3;
            }
            return 0;
        };
        auto upper = [&](int64_t i) {
            if (!h) {
                return 3;
            }
            if (i < h->value) {
                return 3;
            }
            return (i == h->value && !h->exclusive) ? 1 : 0;
        };
        std::vector<int64_t> cuts{0, cap + 1};
        for (const auto& b : {l, h}) {
            if (b) {
                for (int64_t c : {b->value, b->value + 1}) {
                    if (c > 0 && c <= cap) {
                        cuts.push_back(c);
                    }
                }
            }
        }
        std::sort(cuts.begin(), cuts.end());
        cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
        std::vector<Piece> pieces;
        for (size_t k = 0; k + 1 < cuts.size(); ++k) {
            const int mode = lower(cuts[k]) & upper(cuts[k]);
            if (mode != 0) {
                pieces.push_back({cuts[k], cuts[k + 1] - 1, mode});
            }
        }
        return pieces;
    };
    auto negate = [](std::optional<IntBound> b) -> std::optional<IntBound> {
        if (!b) {
            return std::nullopt;
        }
        return IntBound{-b->value, b->exclusive};
    };
    const std::string key = "num:" + (lo ? std::to_string(lo->value) + (lo->exclusive ? "x" : "") : "") +
                            ":" + (hi ? std::to_string(hi->value) + (hi->exclusive ? "x" : "") : "");
    if (auto it = memo_.find(key); it != memo_.end()) {
        return it->second;
    }
    const GrammarSequence digit{g_.byte_range('0', '9')};
    const int32_t frac_any = g_.rule_of("frac", {{g_.byte('.'), Grammar::ref(g_.repeat("digits", {digit}, 1, kMaxFractionDigits))}});
    const int32_t frac_zero = g_.rule_of("frac_zero", {{g_.byte('.'), Grammar::ref(g_.repeat("zeros", {{g_.byte('0')}}, 1, kMaxFractionDigits))}});
    const int32_t frac_nonzero = g_.rule_of(
        "frac_nonzero", {{g_.byte('.'), Grammar::ref(g_.repeat("zeros", {{g_.byte('0')}}, 0, kMaxFractionDigits - 1)),
                          g_.byte_range('1', '9'), Grammar::ref(g_.repeat("digits", {digit}, 0, kMaxFractionDigits - 1))}});
    GrammarAlternatives alts;
    for (bool negative : {false, true}) {
        const auto pieces = negative ? side(negate(hi), negate(lo)) : side(lo, hi);
        for (const Piece& piece : pieces) {
            int mode = piece.mode;
            if (negative && piece.lo == 0 && piece.hi == 0) {
                mode &= 2;  // no "-0" or "-0.0": zero is written without a sign
            }
            if (mode == 0) {
                continue;
            }
            const int32_t whole = g_.rule_of(
                "int_part", unsigned_in(static_cast<uint64_t>(piece.lo), static_cast<uint64_t>(piece.hi)));
            GrammarSequence base;
            if (negative) {
                base.push_back(g_.byte('-'));
            }
            base.push_back(Grammar::ref(whole));
            if (mode == 3 || mode == 1) {
                alts.push_back(base);
                GrammarSequence s = base;
                s.push_back(Grammar::ref(mode == 3 ? frac_any : frac_zero));
                alts.push_back(std::move(s));
            }
            if (mode == 2) {
                GrammarSequence s = base;
                s.push_back(Grammar::ref(frac_nonzero));
                alts.push_back(std::move(s));
            }
        }
    }
    if (alts.empty()) {
        return std::nullopt;
    }
    const int32_t rule = g_.rule_of("number", std::move(alts));
    memo_[key] = rule;
    return rule;
}

int32_t JsonParts::literal(const std::string& json_text) {
    const std::string key = "lit:" + json_text;
    if (auto it = memo_.find(key); it != memo_.end()) {
        return it->second;
    }
    const int32_t rule = g_.rule_of("literal", {g_.literal(json_text)});
    memo_[key] = rule;
    return rule;
}

int32_t JsonParts::any_value() {
    if (any_value_ >= 0) {
        return any_value_;
    }
    any_value_ = g_.add_rule("value");
    const int32_t object = any_object();
    const int32_t array = g_.add_rule("array");
    const GrammarSequence comma{g_.byte(',')};
    const int32_t more = g_.repeat("array_more", spaced({comma, {Grammar::ref(any_value_)}}, g_), 0,
                                   -1, {g_.byte(']')});
    g_.add_alternative(array, {g_.byte('['), g_.byte(']')});
    g_.add_alternative(array, {g_.byte('['), Grammar::ref(any_value_), Grammar::ref(more)});
    for (int32_t part : {object, array, any_string(), any_number()}) {
        g_.add_alternative(any_value_, {Grammar::ref(part)});
    }
    for (const char* word : {"true", "false", "null"}) {
        g_.add_alternative(any_value_, g_.literal(word));
    }
    return any_value_;
}

int32_t JsonParts::any_object() {
    if (any_object_ >= 0) {
        return any_object_;
    }
    any_object_ = g_.add_rule("object");
    const int32_t value = any_value();
    const GrammarSequence key_colon{Grammar::ref(any_string()), g_.byte(':')};
    const int32_t more = g_.repeat(
        "object_more", spaced({{g_.byte(',')}, key_colon, {Grammar::ref(value)}}, g_), 0, -1,
        {g_.byte('}')});
    g_.add_alternative(any_object_, {g_.byte('{'), g_.byte('}')});
    for (GrammarSequence s : spaced({GrammarSequence{g_.byte('{'), Grammar::ref(any_string()), g_.byte(':')},
                                     {Grammar::ref(value)}},
                                    g_)) {
        s.push_back(Grammar::ref(more));
        g_.add_alternative(any_object_, std::move(s));
    }
    return any_object_;
}

}  // namespace sluice::inference::detail
