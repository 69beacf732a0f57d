// The text syntax of grammars (declared in grammar.h, described in docs/grammar.md).
#include "inference/grammar.h"

#include <map>

#include "common/utf8_encode.h"
#include "inference/detail/code_points.h"

namespace sluice::inference {

namespace {

using detail::CodePointRanges;

class GrammarParser {
public:
    explicit GrammarParser(std::string_view text) : text_(text) {}

    Result<Grammar> parse() {
        skip_space(true);
        while (pos_ < text_.size()) {
            const size_t at = pos_;
            std::string name = identifier();
            if (name.empty()) {
                return error("expected a rule name");
            }
            skip_space(true);
            if (text_.substr(pos_, 3) != "::=") {
                return error("expected '::=' after rule name '" + name + "'");
            }
            pos_ += 3;
            const int32_t rule = rule_named(name);
            if (defined_.contains(name)) {
                pos_ = at;
                return error("rule '" + name + "' is defined twice");
            }
            defined_[name] = true;
            SLUICE_ASSIGN_OR_RETURN(GrammarAlternatives alts, alternatives(0));
            for (GrammarSequence& alt : alts) {
                g_.add_alternative(rule, std::move(alt));
            }
            skip_space(true);
        }
        for (const auto& [name, rule] : rules_) {
            if (!defined_.contains(name)) {
                return invalid_argument("grammar: rule '" + name + "' is used but not defined");
            }
        }
        auto root = g_.find_rule("root");
        if (!root) {
            return invalid_argument("grammar: no rule named 'root'");
        }
        g_.set_root(*root);
        SLUICE_RETURN_IF_ERROR(g_.validate());
        return std::move(g_);
    }

private:
    Status error(const std::string& what) const {
        size_t line = 1;
        size_t column = 1;
        for (size_t i = 0; i < pos_ && i < text_.size(); ++i) {
            if (text_[i] == '\n') {
                ++line;
                column = 1;
            } else {
                ++column;
            }
        }
        return invalid_argument("grammar: " + what + " at line " + std::to_string(line) +
                                ", column " + std::to_string(column));
    }

    static bool name_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
    }

    std::string identifier() {
        const size_t start = pos_;
        while (pos_ < text_.size() && name_char(text_[pos_])) {
            ++pos_;
        }
        return std::string(text_.substr(start, pos_ - start));
    }

    // Spaces and comments; newlines too when `newlines` (inside groups, or between rules).
    void skip_space(bool newlines) {
        while (pos_ < text_.size()) {
            const char c = text_[pos_];
            if (c == '#') {
                while (pos_ < text_.size() && text_[pos_] != '\n') {
                    ++pos_;
                }
            } else if (c == ' ' || c == '\t' || c == '\r' || (newlines && c == '\n')) {
                ++pos_;
            } else {
                return;
            }
        }
    }

    // True when the text at pos_ starts a new rule definition: `name ::=`.
    bool at_definition() {
        const size_t save = pos_;
        const std::string name = identifier();
        skip_space(false);
        const bool yes = !name.empty() && text_.substr(pos_, 3) == "::=";
        pos_ = save;
        return yes;
    }

    int32_t rule_named(const std::string& name) {
        auto it = rules_.find(name);
        if (it != rules_.end()) {
            return it->second;
        }
        const int32_t id = g_.add_rule(name);
        rules_[name] = id;
        return id;
    }

    // Alternatives up to ')' (depth > 0) or the next definition / end of text (depth 0). A rule
    // body may continue on the next line; a line that starts a definition ends it.
    Result<GrammarAlternatives> alternatives(int depth) {
        if (depth > 64) {
            return error("groups nested too deeply");
        }
        GrammarAlternatives alts(1);
        while (true) {
            skip_space(true);
            if (pos_ >= text_.size()) {
                break;
            }
            const char c = text_[pos_];
            if (c == ')') {
                if (depth == 0) {
                    return error("unbalanced ')'");
                }
                break;
            }
            if (c == '|') {
                ++pos_;
                alts.emplace_back();
                continue;
            }
            if (depth == 0 && at_definition()) {
                break;
            }
            SLUICE_ASSIGN_OR_RETURN(GrammarAlternatives item, primary(depth));
            int64_t min = 1;
            int64_t max = 1;
            SLUICE_ASSIGN_OR_RETURN(bool quantified, quantifier(min, max));
            GrammarSequence& seq = alts.back();
            if (quantified) {
                seq.push_back(Grammar::ref(g_.repeat("repeat", item, min, max)));
            } else if (item.size() == 1) {
                seq.insert(seq.end(), item[0].begin(), item[0].end());
            } else {
                seq.push_back(Grammar::ref(g_.rule_of("group", std::move(item))));
            }
        }
        return alts;
    }

    Result<GrammarAlternatives> primary(int depth) {
        const char c = text_[pos_];
        if (c == '(') {
            ++pos_;
            SLUICE_ASSIGN_OR_RETURN(GrammarAlternatives inner, alternatives(depth + 1));
            if (pos_ >= text_.size() || text_[pos_] != ')') {
                return error("missing ')'");
            }
            ++pos_;
            return inner;
        }
        if (c == '"' || c == '\'') {
            return literal(c);
        }
        if (c == '[') {
            SLUICE_ASSIGN_OR_RETURN(CodePointRanges ranges, char_class());
            GrammarAlternatives out;
            grammar_text::add_code_point_alternatives(g_, ranges, out);
            if (out.empty()) {
                return error("empty character class");
            }
            return out;
        }
        if (c == '.') {
            ++pos_;
            GrammarAlternatives out;
            grammar_text::add_code_point_alternatives(g_, {{0, detail::kMaxCodePoint}}, out);
            return out;
        }
        if (name_char(c)) {
            return GrammarAlternatives{{Grammar::ref(rule_named(identifier()))}};
        }
        return error(std::string("unexpected character '") + c + "'");
    }

    Result<bool> quantifier(int64_t& min, int64_t& max) {
        if (pos_ >= text_.size()) {
            return false;
        }
        const char c = text_[pos_];
        if (c == '*' || c == '+' || c == '?') {
            ++pos_;
            min = c == '+' ? 1 : 0;
            max = c == '?' ? 1 : -1;
            return true;
        }
        if (c != '{') {
            return false;
        }
        ++pos_;
        auto number = [&]() -> int64_t {
            int64_t value = -1;
            while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9' && value < 100000) {
                value = (value < 0 ? 0 : value) * 10 + (text_[pos_] - '0');
                ++pos_;
            }
            return value;
        };
        min = number();
        max = min;
        if (pos_ < text_.size() && text_[pos_] == ',') {
            ++pos_;
            max = number();
        }
        if (min < 0 || pos_ >= text_.size() || text_[pos_] != '}' || (max >= 0 && max < min) ||
            max > 10000 || min > 10000) {
            return error("malformed repetition {m,n} (counts up to 10000)");
        }
        ++pos_;
        return true;
    }

    // One character after a backslash, or a plain one; advances pos_.
    Result<uint32_t> character() {
        if (text_[pos_] != '\\') {
            uint32_t cp = 0;
            if (!detail::next_code_point(text_, pos_, cp)) {
                return error("invalid utf-8");
            }
            return cp;
        }
        ++pos_;
        if (pos_ >= text_.size()) {
            return error("trailing backslash");
        }
        const char c = text_[pos_++];
        switch (c) {
            case 'n': return uint32_t{'\n'};
            case 'r': return uint32_t{'\r'};
            case 't': return uint32_t{'\t'};
            case '0': return uint32_t{0};
            case 'x':
            case 'u':
            case 'U': {
                const size_t n = c == 'x' ? 2 : c == 'u' ? 4 : 8;
                uint32_t cp = 0;
                for (size_t i = 0; i < n; ++i) {
                    const char h = pos_ < text_.size() ? text_[pos_] : '\0';
                    const int v = (h >= '0' && h <= '9')   ? h - '0'
                                  : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                                  : (h >= 'A' && h <= 'F') ? h - 'A' + 10
                                                           : -1;
                    if (v < 0) {
                        return error("malformed \\" + std::string(1, c) + " escape");
                    }
                    cp = cp * 16 + static_cast<uint32_t>(v);
                    ++pos_;
                }
                if (cp > detail::kMaxCodePoint || (cp >= 0xD800 && cp <= 0xDFFF)) {
                    return error("escape names no character");
                }
                return cp;
            }
            default: return static_cast<uint32_t>(static_cast<unsigned char>(c));
        }
    }

    Result<GrammarAlternatives> literal(char quote) {
        ++pos_;
        std::string bytes;
        while (true) {
            if (pos_ >= text_.size() || text_[pos_] == '\n') {
                return error("unterminated string literal");
            }
            if (text_[pos_] == quote) {
                ++pos_;
                break;
            }
            SLUICE_ASSIGN_OR_RETURN(uint32_t cp, character());
            // \xHH names a byte (for grammars over raw bytes), not the code point U+00HH.
            if (cp < 0x100 && pos_ >= 4 && text_[pos_ - 4] == '\\' && text_[pos_ - 3] == 'x') {
                bytes += static_cast<char>(cp);
            } else {
                sluice::append_utf8(bytes, cp);
            }
        }
        return GrammarAlternatives{g_.literal(bytes)};
    }

    Result<CodePointRanges> char_class() {
        ++pos_;
        bool negated = false;
        if (pos_ < text_.size() && text_[pos_] == '^') {
            negated = true;
            ++pos_;
        }
        CodePointRanges ranges;
        while (true) {
            if (pos_ >= text_.size()) {
                return error("unterminated character class");
            }
            if (text_[pos_] == ']') {
                ++pos_;
                break;
            }
            SLUICE_ASSIGN_OR_RETURN(uint32_t lo, character());
            uint32_t hi = lo;
            if (pos_ + 1 < text_.size() && text_[pos_] == '-' && text_[pos_ + 1] != ']') {
                ++pos_;
                SLUICE_ASSIGN_OR_RETURN(hi, character());
                if (hi < lo) {
                    return error("character range out of order");
                }
            }
            ranges.emplace_back(lo, hi);
        }
        return negated ? detail::complement_ranges(ranges) : detail::normalize_ranges(ranges);
    }

    std::string_view text_;
    size_t pos_ = 0;
    Grammar g_;
    std::map<std::string, int32_t> rules_;
    std::map<std::string, bool> defined_;
};

}  // namespace

Result<Grammar> parse_grammar(std::string_view text) { return GrammarParser(text).parse(); }

}  // namespace sluice::inference
