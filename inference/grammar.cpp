#include "inference/grammar.h"

#include <algorithm>
#include <functional>

#include "common/utf8_encode.h"

namespace sluice::inference {

namespace {

std::string escape_byte(uint8_t b, bool in_class) {
    static const char* hex = "0123456789ABCDEF";
    if (b == '\n') {
        return "\\n";
    }
    if (b == '\t') {
        return "\\t";
    }
    if (b == '\r') {
        return "\\r";
    }
    if (b == '\\' || b == '"' || (in_class && (b == ']' || b == '-' || b == '^'))) {
        return std::string("\\") + static_cast<char>(b);
    }
    if (b < 0x20 || b >= 0x7F) {
        return std::string("\\x") + hex[b >> 4] + hex[b & 15];
    }
    return std::string(1, static_cast<char>(b));
}

std::string byte_set_text(const ByteSet& set) {
    if (set.count() == 1) {
        for (int b = 0; b < 256; ++b) {
            if (set.test(static_cast<size_t>(b))) {
                std::string out = "\"";
                out += escape_byte(static_cast<uint8_t>(b), false);
                out += '"';
                return out;
            }
        }
    }
    std::string out = "[";
    for (int b = 0; b < 256;) {
        if (!set.test(static_cast<size_t>(b))) {
            ++b;
            continue;
        }
        int e = b;
        while (e + 1 < 256 && set.test(static_cast<size_t>(e + 1))) {
            ++e;
        }
        out += escape_byte(static_cast<uint8_t>(b), true);
        if (e > b) {
            out += '-';
            out += escape_byte(static_cast<uint8_t>(e), true);
        }
        b = e + 1;
    }
    return out + "]";
}

// Splits [lo, hi] (same encoded length) into ranges whose encodings are products of byte ranges:
// the construction RE2 and Rust's regex-syntax use for UTF-8 classes.
void split_utf8(uint32_t lo, uint32_t hi, Grammar& grammar, GrammarAlternatives& out) {
    for (uint32_t limit : {0x7Fu, 0x7FFu, 0xFFFFu}) {
        if (lo <= limit && hi > limit) {
            split_utf8(lo, limit, grammar, out);
            split_utf8(limit + 1, hi, grammar, out);
            return;
        }
    }
    uint8_t a[4];
    uint8_t b[4];
    const int n = encode_utf8(lo, a);
    encode_utf8(hi, b);
    for (int i = 1; i < n; ++i) {
        const uint32_t m = (1u << (6 * i)) - 1;
        if ((lo & ~m) != (hi & ~m)) {
            if ((lo & m) != 0) {
                split_utf8(lo, lo | m, grammar, out);
                split_utf8((lo | m) + 1, hi, grammar, out);
                return;
            }
            if ((hi & m) != m) {
                split_utf8(lo, (hi & ~m) - 1, grammar, out);
                split_utf8(hi & ~m, hi, grammar, out);
                return;
            }
        }
    }
    GrammarSequence sequence;
    for (int i = 0; i < n; ++i) {
        sequence.push_back(grammar.byte_range(a[i], b[i]));
    }
    out.push_back(std::move(sequence));
}

}  // namespace

int32_t Grammar::add_rule(std::string_view name) {
    const std::string base(name.empty() ? "rule" : name);
    std::string unique = base;
    if (rule_index_.contains(unique)) {
        // Suffixes continue from the last one given to this base, so that adding thousands of
        // rules of one name (levels of a repetition) stays linear.
        int& next = next_suffix_[base];
        next = std::max(next, 2);
        do {
            unique = base + "_" + std::to_string(next++);
        } while (rule_index_.contains(unique));
    }
    rule_index_.emplace(unique, static_cast<int32_t>(rules_.size()));
    rules_.push_back({std::move(unique), {}, -1});
    return static_cast<int32_t>(rules_.size() - 1);
}

void Grammar::add_alternative(int32_t rule, GrammarSequence sequence) {
    rules_[static_cast<size_t>(rule)].alternatives.push_back(std::move(sequence));
}

int32_t Grammar::add_byte_set(const ByteSet& set) {
    for (size_t i = 0; i < byte_sets_.size(); ++i) {
        if (byte_sets_[i] == set) {
            return static_cast<int32_t>(i);
        }
    }
    byte_sets_.push_back(set);
    return static_cast<int32_t>(byte_sets_.size() - 1);
}

GrammarSymbol Grammar::byte(uint8_t value) {
    ByteSet set;
    set.set(value);
    return bytes(set);
}

GrammarSymbol Grammar::byte_range(uint8_t first, uint8_t last) {
    ByteSet set;
    for (int b = first; b <= last; ++b) {
        set.set(static_cast<size_t>(b));
    }
    return bytes(set);
}

GrammarSequence Grammar::literal(std::string_view text) {
    GrammarSequence out;
    for (char c : text) {
        out.push_back(byte(static_cast<uint8_t>(c)));
    }
    return out;
}

int32_t Grammar::rule_of(std::string_view name, GrammarAlternatives alternatives) {
    const int32_t id = add_rule(name);
    rules_[static_cast<size_t>(id)].alternatives = std::move(alternatives);
    return id;
}

int32_t Grammar::repeat(std::string_view name, const GrammarAlternatives& item, int64_t min,
                        int64_t max, const GrammarSequence& tail) {
    // An empty alternative in the item would let a level repeat without consuming a byte.
    GrammarAlternatives consuming;
    for (const GrammarSequence& alt : item) {
        if (alt.empty()) {
            min = 0;
        } else {
            consuming.push_back(alt);
        }
    }
    auto level = [&](int32_t next, bool with_tail) {
        const int32_t id = add_rule(name);
        for (const GrammarSequence& alt : consuming) {
            GrammarSequence sequence = alt;
            sequence.push_back(ref(next));
            add_alternative(id, std::move(sequence));
        }
        if (with_tail) {
            add_alternative(id, tail);
        }
        return id;
    };
    int32_t current = -1;
    if (max < 0) {
        current = add_rule(name);
        for (const GrammarSequence& alt : consuming) {
            GrammarSequence sequence = alt;
            sequence.push_back(ref(current));
            add_alternative(current, std::move(sequence));
        }
        add_alternative(current, tail);
    } else {
        current = rule_of(name, {tail});
        int32_t twin = -1;
        for (int64_t k = 1; k <= max - min; ++k) {
            current = level(current, true);
            if (twin_depth_ > 0 && k == twin_depth_) {
                twin = current;
            } else if (twin >= 0) {
                set_mask_twin(current, twin);
            }
        }
    }
    int32_t twin = -1;
    for (int64_t j = 1; j <= min; ++j) {
        current = level(current, false);
        if (twin_depth_ > 0 && j == twin_depth_) {
            twin = current;
        } else if (twin >= 0) {
            set_mask_twin(current, twin);
        }
    }
    return current;
}

std::optional<int32_t> Grammar::find_rule(std::string_view name) const {
    auto it = rule_index_.find(std::string(name));
    if (it == rule_index_.end()) {
        return std::nullopt;
    }
    return it->second;
}

Status Grammar::validate() const {
    const auto n = static_cast<int32_t>(rules_.size());
    if (root_ < 0 || root_ >= n) {
        return invalid_argument("grammar has no root rule");
    }
    for (const GrammarRule& rule : rules_) {
        for (const GrammarSequence& alt : rule.alternatives) {
            for (const GrammarSymbol& symbol : alt) {
                const int32_t limit = symbol.kind == GrammarSymbol::Kind::kRule
                                          ? n
                                          : static_cast<int32_t>(byte_sets_.size());
                if (symbol.index < 0 || symbol.index >= limit) {
                    return invalid_argument("grammar rule '" + rule.name +
                                            "' refers to a missing symbol");
                }
            }
        }
    }
    // Fixpoints: which rules can match something (productive) and which can match nothing
    // (nullable).
    std::vector<char> productive(static_cast<size_t>(n), 0);
    std::vector<char> nullable(static_cast<size_t>(n), 0);
    for (bool changed = true; changed;) {
        changed = false;
        for (int32_t r = 0; r < n; ++r) {
            for (const GrammarSequence& alt : rules_[static_cast<size_t>(r)].alternatives) {
                bool all_productive = true;
                bool all_nullable = true;
                for (const GrammarSymbol& s : alt) {
                    if (s.kind == GrammarSymbol::Kind::kBytes) {
                        all_nullable = false;
                        all_productive = all_productive && byte_sets_[static_cast<size_t>(s.index)].any();
                    } else {
                        all_productive = all_productive && productive[static_cast<size_t>(s.index)];
                        all_nullable = all_nullable && nullable[static_cast<size_t>(s.index)];
                    }
                }
                if (all_productive && !productive[static_cast<size_t>(r)]) {
                    productive[static_cast<size_t>(r)] = 1;
                    changed = true;
                }
                if (all_nullable && !nullable[static_cast<size_t>(r)]) {
                    nullable[static_cast<size_t>(r)] = 1;
                    changed = true;
                }
            }
        }
    }
    if (!productive[static_cast<size_t>(root_)]) {
        return invalid_argument("grammar root '" + rules_[static_cast<size_t>(root_)].name +
                                "' matches no string");
    }
    // Left recursion: an edge r -> s when s can start r without a byte consumed before it.
    std::vector<std::vector<int32_t>> edges(static_cast<size_t>(n));
    for (int32_t r = 0; r < n; ++r) {
        for (const GrammarSequence& alt : rules_[static_cast<size_t>(r)].alternatives) {
            for (const GrammarSymbol& s : alt) {
                if (s.kind == GrammarSymbol::Kind::kBytes) {
                    break;
                }
                edges[static_cast<size_t>(r)].push_back(s.index);
                if (!nullable[static_cast<size_t>(s.index)]) {
                    break;
                }
            }
        }
    }
    std::vector<int8_t> color(static_cast<size_t>(n), 0);  // 0 new, 1 on path, 2 done
    std::string cycle;
    std::function<bool(int32_t)> visit = [&](int32_t r) {
        color[static_cast<size_t>(r)] = 1;
        for (int32_t s : edges[static_cast<size_t>(r)]) {
            if (color[static_cast<size_t>(s)] == 1) {
                cycle = rules_[static_cast<size_t>(s)].name;
                return true;
            }
            if (color[static_cast<size_t>(s)] == 0 && visit(s)) {
                return true;
            }
        }
        color[static_cast<size_t>(r)] = 2;
        return false;
    };
    for (int32_t r = 0; r < n; ++r) {
        if (color[static_cast<size_t>(r)] == 0 && visit(r)) {
            return invalid_argument("grammar rule '" + cycle +
                                    "' is left-recursive (it can reach itself before consuming "
                                    "a byte)");
        }
    }
    return Status::ok_status();
}

std::string Grammar::to_string() const {
    std::string out;
    for (size_t r = 0; r < rules_.size(); ++r) {
        const GrammarRule& rule = rules_[r];
        out += rule.name + " ::=";
        for (size_t a = 0; a < rule.alternatives.size(); ++a) {
            if (a > 0) {
                out += " |";
            }
            if (rule.alternatives[a].empty()) {
                out += " \"\"";
            }
            for (const GrammarSymbol& s : rule.alternatives[a]) {
                out += " ";
                if (s.kind == GrammarSymbol::Kind::kRule) {
                    out += rules_[static_cast<size_t>(s.index)].name;
                } else {
                    out += byte_set_text(byte_sets_[static_cast<size_t>(s.index)]);
                }
            }
        }
        out += "\n";
    }
    return out;
}

namespace grammar_text {

void add_code_point_alternatives(Grammar& grammar,
                                 const std::vector<std::pair<uint32_t, uint32_t>>& ranges,
                                 GrammarAlternatives& out) {
    ByteSet ascii;
    for (auto [lo, hi] : ranges) {
        hi = std::min<uint32_t>(hi, 0x10FFFF);
        for (uint32_t cp = lo; cp <= std::min<uint32_t>(hi, 0x7F); ++cp) {
            ascii.set(cp);
        }
        lo = std::max<uint32_t>(lo, 0x80);
        if (lo > hi) {
            continue;
        }
        // Surrogates are not characters and have no valid UTF-8 form.
        if (lo <= 0xD7FF) {
            split_utf8(lo, std::min<uint32_t>(hi, 0xD7FF), grammar, out);
        }
        if (hi >= 0xE000) {
            split_utf8(std::max<uint32_t>(lo, 0xE000), hi, grammar, out);
        }
    }
    if (ascii.any()) {
        out.insert(out.begin(), GrammarSequence{grammar.bytes(ascii)});
    }
}

}  // namespace grammar_text

}  // namespace sluice::inference
