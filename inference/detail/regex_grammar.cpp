#include "inference/detail/regex_grammar.h"

#include <string>

namespace sluice::inference::detail {

namespace {

const CodePointRanges kDigits = {{'0', '9'}};
const CodePointRanges kWord = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
// ECMAScript's WhiteSpace and LineTerminator code points.
const CodePointRanges kSpace = {{0x09, 0x0D}, {0x20, 0x20},     {0xA0, 0xA0},
                                {0x1680, 0x1680}, {0x2000, 0x200A}, {0x2028, 0x2029},
                                {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000},
                                {0xFEFF, 0xFEFF}};
// `.` matches anything but line terminators.
const CodePointRanges kDot = complement_ranges({{'\n', '\n'}, {'\r', '\r'}, {0x2028, 0x2029}});

int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

// The parsed pattern: one character (its alternatives as byte-set sequences), a sequence, an
// alternation or a repetition of one child.
struct Node {
    enum class Kind { kChars, kSeq, kAlt, kRepeat };
    explicit Node(Kind k) : kind(k) {}
    Kind kind;
    GrammarAlternatives chars;
    std::vector<Node> children;
    int64_t min = 1;
    int64_t max = 1;
};

// Past this many rules a pattern is refused rather than compiled (nested bounded repetitions
// multiply: `(a{1,100}){1,100}` would be 10,000 levels).
constexpr int32_t kMaxPatternRules = 20000;

class RegexCompiler {
public:
    RegexCompiler(Grammar& grammar, std::string_view pattern, RegexTarget target,
                  std::string_view name, GrammarSequence tail)
        : g_(grammar), p_(pattern), target_(target), name_(name), tail_(std::move(tail)) {}

    Result<int32_t> compile() {
        bool anchored_start = false;
        bool anchored_end = false;
        std::string_view body = p_;
        if (!body.empty() && body.front() == '^') {
            anchored_start = true;
            pos_ = 1;
        }
        if (body.size() > pos_ && body.back() == '$' &&
            (body.size() < 2 || body[body.size() - 2] != '\\')) {
            anchored_end = true;
            end_ = body.size() - 1;
        } else {
            end_ = body.size();
        }
        SLUICE_ASSIGN_OR_RETURN(Node tree, alternation());
        if (pos_ != end_) {
            return error("unbalanced ')'");
        }
        if (tree.kind == Node::Kind::kAlt && (anchored_start || anchored_end)) {
            // `^a|b$` anchors each side separately; wrapping it keeps the meaning unambiguous.
            return error("top-level alternation next to an anchor is unsupported (use a group)");
        }
        Node whole(Node::Kind::kSeq);
        Node anything(Node::Kind::kRepeat);
        anything.min = 0;
        anything.max = -1;
        anything.children.push_back(Node(Node::Kind::kChars));
        add_chars(kDot, anything.children[0].chars);
        if (!anchored_start) {
            whole.children.push_back(anything);
        }
        whole.children.push_back(std::move(tree));
        if (!anchored_end) {
            whole.children.push_back(std::move(anything));
        }
        SLUICE_ASSIGN_OR_RETURN(GrammarAlternatives alts, emit(whole, tail_));
        return g_.rule_of(name_, std::move(alts));
    }

private:
    // The pattern is laid out in continuation-passing form: each part is emitted knowing what
    // follows it (`next`, a short sequence: a rule reference or the caller's tail), and every
    // rule reference lands in tail position. Nothing is pushed on the matcher's stack inside the
    // pattern, so a token that stays inside the pattern and its tail (a JSON string's closing
    // quote) is judged without the stack: its mask is precomputed instead of walked per step.
    Result<GrammarAlternatives> emit(const Node& node, const GrammarSequence& next) {
        if (++emitted_rules_ > kMaxPatternRules) {
            return invalid_argument("pattern '" + std::string(p_) + "' is too large once its " +
                                    "repetitions are expanded (over " +
                                    std::to_string(kMaxPatternRules) + " rules)");
        }
        GrammarAlternatives out;
        switch (node.kind) {
            case Node::Kind::kChars:
                for (const GrammarSequence& c : node.chars) {
                    out.push_back(c);
                    out.back().insert(out.back().end(), next.begin(), next.end());
                }
                return out;
            case Node::Kind::kAlt:
                for (const Node& child : node.children) {
                    SLUICE_ASSIGN_OR_RETURN(GrammarAlternatives alts, emit(child, next));
                    out.insert(out.end(), alts.begin(), alts.end());
                }
                return out;
            case Node::Kind::kSeq: {
                GrammarSequence rest = next;
                for (size_t i = node.children.size(); i-- > 0;) {
                    SLUICE_ASSIGN_OR_RETURN(out, emit(node.children[i], rest));
                    if (i > 0) {
                        rest = continuation(std::move(out));
                    }
                }
                if (node.children.empty()) {
                    out.push_back(next);
                }
                return out;
            }
            case Node::Kind::kRepeat:
                return emit_repeat(node, next);
        }
        return out;
    }

    Result<GrammarAlternatives> emit_repeat(const Node& node, const GrammarSequence& next) {
        const Node& child = node.children[0];
        if (child.kind == Node::Kind::kChars) {
            // One character repeated: Grammar::repeat lays out the same form, with mask twins
            // for long bounded runs.
            emitted_rules_ += static_cast<int32_t>(node.max < 0 ? node.min + 1 : node.max);
            return GrammarAlternatives{{Grammar::ref(g_.repeat(name_, child.chars, node.min,
                                                               node.max, next))}};
        }
        GrammarSequence rest = next;
        if (node.max < 0) {
            const int32_t loop = g_.add_rule(name_);
            SLUICE_ASSIGN_OR_RETURN(GrammarAlternatives body, emit(child, {Grammar::ref(loop)}));
            for (GrammarSequence& alt : body) {
                g_.add_alternative(loop, std::move(alt));
            }
            g_.add_alternative(loop, next);
            rest = {Grammar::ref(loop)};
        } else {
            for (int64_t k = 0; k < node.max - node.min; ++k) {
                SLUICE_ASSIGN_OR_RETURN(GrammarAlternatives level, emit(child, rest));
                level.push_back(next);
                rest = {Grammar::ref(g_.rule_of(name_, std::move(level)))};
            }
        }
        for (int64_t j = 0; j < node.min; ++j) {
            SLUICE_ASSIGN_OR_RETURN(GrammarAlternatives level, emit(child, rest));
            rest = continuation(std::move(level));
        }
        return GrammarAlternatives{rest};
    }

    // `alts` as something to continue with: inline when it is one sequence, else a rule.
    GrammarSequence continuation(GrammarAlternatives alts) {
        if (alts.size() == 1) {
            return std::move(alts[0]);
        }
        return {Grammar::ref(g_.rule_of(name_, std::move(alts)))};
    }

    Status error(const std::string& what) const {
        return invalid_argument("pattern '" + std::string(p_) + "': " + what + " at offset " +
                                std::to_string(pos_));
    }
    bool more() const { return pos_ < end_; }
    char peek() const { return p_[pos_]; }

    void add_chars(const CodePointRanges& ranges, GrammarAlternatives& out) {
        if (target_ == RegexTarget::kJsonString) {
            json_char_alternatives(g_, ranges, out);
        } else {
            grammar_text::add_code_point_alternatives(g_, normalize_ranges(ranges), out);
        }
    }

    Result<Node> alternation() {
        if (++depth_ > 64) {
            return error("groups nested too deeply");
        }
        Node alt(Node::Kind::kAlt);
        SLUICE_ASSIGN_OR_RETURN(Node first, sequence());
        alt.children.push_back(std::move(first));
        while (more() && peek() == '|') {
            ++pos_;
            SLUICE_ASSIGN_OR_RETURN(Node next, sequence());
            alt.children.push_back(std::move(next));
        }
        --depth_;
        if (alt.children.size() == 1) {
            return std::move(alt.children[0]);
        }
        return alt;
    }

    Result<Node> sequence() {
        Node seq(Node::Kind::kSeq);
        while (more() && peek() != '|' && peek() != ')') {
            SLUICE_ASSIGN_OR_RETURN(Node item, atom());
            int64_t min = 1;
            int64_t max = 1;
            SLUICE_ASSIGN_OR_RETURN(bool quantified, quantifier(min, max));
            if (quantified) {
                Node repeat(Node::Kind::kRepeat);
                repeat.min = min;
                repeat.max = max;
                repeat.children.push_back(std::move(item));
                seq.children.push_back(std::move(repeat));
            } else {
                seq.children.push_back(std::move(item));
            }
        }
        return seq;
    }

    Result<bool> quantifier(int64_t& min, int64_t& max) {
        if (!more()) {
            return false;
        }
        const char c = peek();
        if (c == '*' || c == '+' || c == '?') {
            ++pos_;
            min = c == '+' ? 1 : 0;
            max = c == '?' ? 1 : -1;
        } else if (c == '{') {
            const size_t start = pos_++;
            auto number = [&]() -> int64_t {
                int64_t value = -1;
                while (more() && peek() >= '0' && peek() <= '9' && value < 100000) {
                    value = (value < 0 ? 0 : value) * 10 + (peek() - '0');
                    ++pos_;
                }
                return value;
            };
            min = number();
            max = min;
            if (more() && peek() == ',') {
                ++pos_;
                max = number();
            }
            if (min < 0 || !more() || peek() != '}' || (max >= 0 && max < min)) {
                pos_ = start;
                return error("malformed quantifier");
            }
            ++pos_;
            if (min > 10000 || max > 10000) {
                return error("repetition count above 10000");
            }
        } else {
            return false;
        }
        if (more() && peek() == '?') {
            ++pos_;  // lazy: the same strings
        } else if (more() && peek() == '+') {
            return error("possessive quantifier");
        }
        if (more() && (peek() == '*' || peek() == '+' || peek() == '{')) {
            return error("nested quantifier");
        }
        return true;
    }

    Result<Node> atom() {
        const char c = peek();
        if (c == '(') {
            ++pos_;
            if (more() && peek() == '?') {
                if (p_.substr(pos_, 2) == "?:") {
                    pos_ += 2;
                } else if (p_.substr(pos_, 2) == "?<" && pos_ + 2 < end_ && p_[pos_ + 2] != '=' &&
                           p_[pos_ + 2] != '!') {
                    const size_t close = p_.find('>', pos_);
                    if (close == std::string_view::npos || close >= end_) {
                        return error("unterminated group name");
                    }
                    pos_ = close + 1;
                } else {
                    return error("unsupported group (lookaround or flags)");
                }
            }
            SLUICE_ASSIGN_OR_RETURN(Node group, alternation());
            if (!more() || peek() != ')') {
                return error("missing ')'");
            }
            ++pos_;
            return group;
        }
        if (c == '*' || c == '+' || c == '?' || c == '{') {
            return error("quantifier without an operand");
        }
        if (c == '^' || c == '$') {
            return error("anchor inside the pattern is unsupported");
        }
        CodePointRanges ranges;
        if (c == '.') {
            ++pos_;
            ranges = kDot;
        } else if (c == '[') {
            SLUICE_ASSIGN_OR_RETURN(ranges, char_class());
        } else if (c == '\\') {
            SLUICE_ASSIGN_OR_RETURN(ranges, escape(false));
        } else {
            uint32_t cp = 0;
            if (!next_code_point(p_, pos_, cp)) {
                return error("invalid utf-8");
            }
            ranges = {{cp, cp}};
        }
        Node chars(Node::Kind::kChars);
        add_chars(ranges, chars.chars);
        if (chars.chars.empty()) {
            return error("empty character class");
        }
        return chars;
    }

    // After a backslash; `in_class` allows `\b` (backspace) and `\-`.
    Result<CodePointRanges> escape(bool in_class) {
        ++pos_;
        if (!more()) {
            return error("trailing backslash");
        }
        const char c = p_[pos_++];
        switch (c) {
            case 'd': return kDigits;
            case 'D': return complement_ranges(kDigits);
            case 'w': return kWord;
            case 'W': return complement_ranges(kWord);
            case 's': return kSpace;
            case 'S': return complement_ranges(kSpace);
            case 'n': return CodePointRanges{{'\n', '\n'}};
            case 'r': return CodePointRanges{{'\r', '\r'}};
            case 't': return CodePointRanges{{'\t', '\t'}};
            case 'f': return CodePointRanges{{'\f', '\f'}};
            case 'v': return CodePointRanges{{'\v', '\v'}};
            case '0': return CodePointRanges{{0, 0}};
            case 'x':
            case 'u': {
                const size_t n = c == 'x' ? 2 : 4;
                uint32_t cp = 0;
                for (size_t i = 0; i < n; ++i) {
                    const int h = pos_ < end_ ? hex_value(p_[pos_]) : -1;
                    if (h < 0) {
                        return error("malformed \\" + std::string(1, c) + " escape");
                    }
                    cp = cp * 16 + static_cast<uint32_t>(h);
                    ++pos_;
                }
                return CodePointRanges{{cp, cp}};
            }
            default: break;
        }
        if (in_class && c == 'b') {
            return CodePointRanges{{'\b', '\b'}};
        }
        if ((c >= '1' && c <= '9') || c == 'k') {
            return error("backreference is unsupported");
        }
        if (std::string_view("^$\\.*+?()[]{}|/-\"'").find(c) != std::string_view::npos) {
            return CodePointRanges{{static_cast<uint32_t>(c), static_cast<uint32_t>(c)}};
        }
        --pos_;
        return error("unsupported escape '\\" + std::string(1, c) + "'");
    }

    Result<CodePointRanges> char_class() {
        ++pos_;  // '['
        bool negated = false;
        if (more() && peek() == '^') {
            negated = true;
            ++pos_;
        }
        CodePointRanges ranges;
        bool first = true;
        while (true) {
            if (!more()) {
                return error("unterminated character class");
            }
            if (peek() == ']' && !first) {
                ++pos_;
                break;
            }
            first = false;
            SLUICE_ASSIGN_OR_RETURN(CodePointRanges lo, class_atom());
            if (more() && peek() == '-' && pos_ + 1 < end_ && p_[pos_ + 1] != ']') {
                ++pos_;
                SLUICE_ASSIGN_OR_RETURN(CodePointRanges hi, class_atom());
                if (lo.size() != 1 || hi.size() != 1 || lo[0].first != lo[0].second ||
                    hi[0].first != hi[0].second || hi[0].first < lo[0].first) {
                    return error("bad range in character class");
                }
                ranges.emplace_back(lo[0].first, hi[0].first);
            } else {
                ranges.insert(ranges.end(), lo.begin(), lo.end());
            }
        }
        return negated ? complement_ranges(ranges) : normalize_ranges(ranges);
    }

    Result<CodePointRanges> class_atom() {
        if (peek() == '\\') {
            return escape(true);
        }
        if (peek() == '[' && pos_ + 1 < end_ && p_[pos_ + 1] == ':') {
            return error("POSIX character classes are unsupported");
        }
        uint32_t cp = 0;
        if (!next_code_point(p_, pos_, cp)) {
            return error("invalid utf-8");
        }
        return CodePointRanges{{cp, cp}};
    }

    Grammar& g_;
    std::string_view p_;
    RegexTarget target_;
    std::string name_;
    size_t pos_ = 0;
    size_t end_ = 0;
    int depth_ = 0;
    GrammarSequence tail_;
    int32_t emitted_rules_ = 0;
};

}  // namespace

Result<int32_t> compile_regex(Grammar& grammar, std::string_view pattern, RegexTarget target,
                              std::string_view rule_name, const GrammarSequence& tail) {
    if (pattern.size() > 4096) {
        return invalid_argument("pattern longer than 4096 bytes");
    }
    return RegexCompiler(grammar, pattern, target, rule_name, tail).compile();
}

void json_char_alternatives(Grammar& grammar, const CodePointRanges& ranges,
                            GrammarAlternatives& out) {
    const CodePointRanges needs_escape = {{0, 0x1F}, {'"', '"'}, {'\\', '\\'}};
    const CodePointRanges plain = subtract_ranges(ranges, needs_escape);
    grammar_text::add_code_point_alternatives(grammar, plain, out);
    static const char* hex = "0123456789abcdef";
    for (const auto& [lo, hi] : normalize_ranges(ranges)) {
        for (uint32_t cp = lo; cp <= std::min<uint32_t>(hi, 0x5C); ++cp) {
            std::string escaped;
            switch (cp) {
                case '"': escaped = "\\\""; break;
                case '\\': escaped = "\\\\"; break;
                case '\n': escaped = "\\n"; break;
                case '\r': escaped = "\\r"; break;
                case '\t': escaped = "\\t"; break;
                case '\b': escaped = "\\b"; break;
                case '\f': escaped = "\\f"; break;
                default:
                    if (cp < 0x20) {
                        escaped = std::string("\\u00") + hex[cp >> 4] + hex[cp & 15];
                    }
            }
            if (!escaped.empty()) {
                out.push_back(grammar.literal(escaped));
            }
        }
    }
}

}  // namespace sluice::inference::detail
