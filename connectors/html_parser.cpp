// HTML → visible text with a small tokenizer: not a conforming HTML5 parser, but robust to what
// real pages hold (unclosed tags, stray '<', comments, CDATA, scripts containing "</div>").
#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>

#include "common/utf8_encode.h"
#include "connectors/parsers.h"

namespace sluice::connectors {

using nlohmann::json;

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }

// Appends a code point from markup (a numeric character reference may name anything), replacing
// NUL, surrogates and values beyond Unicode with U+FFFD as HTML's parsing rules do.
void append_markup_code_point(std::string& out, std::uint32_t cp) {
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        cp = 0xFFFD;
    }
    sluice::append_utf8(out, cp);
}

struct NamedEntity {
    std::string_view name;
    std::uint32_t code_point;
};

// The entities that occur in practice; unknown ones are kept verbatim.
constexpr std::array<NamedEntity, 24> kEntities{{
    {"amp", '&'},      {"lt", '<'},       {"gt", '>'},       {"quot", '"'},
    {"apos", '\''},    {"nbsp", 0xA0},    {"copy", 0xA9},    {"reg", 0xAE},
    {"trade", 0x2122}, {"mdash", 0x2014}, {"ndash", 0x2013}, {"hellip", 0x2026},
    {"lsquo", 0x2018}, {"rsquo", 0x2019}, {"ldquo", 0x201C}, {"rdquo", 0x201D},
    {"euro", 0x20AC},  {"pound", 0xA3},   {"middot", 0xB7},  {"laquo", 0xAB},
    {"raquo", 0xBB},   {"bull", 0x2022},  {"times", 0xD7},   {"deg", 0xB0},
}};

// Decodes the entity at s[pos] == '&'; returns the bytes consumed (0: not an entity).
std::size_t decode_entity(std::string_view s, std::size_t pos, std::string& out) {
    const std::size_t semi = s.find(';', pos);
    if (semi == std::string_view::npos || semi - pos > 12) {
        return 0;
    }
    std::string_view name = s.substr(pos + 1, semi - pos - 1);
    if (name.size() >= 2 && name[0] == '#') {
        const bool hex = name[1] == 'x' || name[1] == 'X';
        std::string_view digits = name.substr(hex ? 2 : 1);
        if (digits.empty()) {
            return 0;
        }
        std::uint32_t cp = 0;
        for (char c : digits) {
            const int v = std::isdigit(static_cast<unsigned char>(c))
                              ? c - '0'
                              : (hex && std::isxdigit(static_cast<unsigned char>(c))
                                     ? std::tolower(static_cast<unsigned char>(c)) - 'a' + 10
                                     : -1);
            if (v < 0) {
                return 0;
            }
            cp = std::min<std::uint32_t>(cp * (hex ? 16 : 10) + static_cast<std::uint32_t>(v),
                                         0x110000);
        }
        append_markup_code_point(out, cp);
        return semi - pos + 1;
    }
    for (const NamedEntity& entity : kEntities) {
        if (entity.name == name) {
            append_markup_code_point(out, entity.code_point);
            return semi - pos + 1;
        }
    }
    return 0;
}

bool is_block(std::string_view tag) {
    static constexpr std::array<std::string_view, 33> kBlocks{
        "p",      "div",     "br",    "li",      "ul",     "ol",      "tr",       "td",
        "th",     "table",   "h1",    "h2",      "h3",     "h4",      "h5",       "h6",
        "section", "article", "header", "footer", "nav",   "aside",   "blockquote", "pre",
        "hr",     "dt",      "dd",    "dl",      "figure", "figcaption", "main",  "form",
        "title"};
    return std::find(kBlocks.begin(), kBlocks.end(), tag) != kBlocks.end();
}

// Elements whose content is not visible text.
bool is_hidden(std::string_view tag) {
    return tag == "script" || tag == "style" || tag == "noscript" || tag == "template" ||
           tag == "svg";
}

class HtmlText {
public:
    void text(std::string_view s) {
        for (char c : s) {
            if (!pre_ && is_space(c)) {
                pending_space_ = true;
                continue;
            }
            put(c);
        }
    }
    void decoded(const std::string& s) {
        for (char c : s) {
            put(c);
        }
    }
    void line_break() {
        pending_space_ = false;
        if (!out_.empty() && out_.back() != '\n') {
            out_ += '\n';
        }
    }
    void set_pre(bool pre) { pre_ = pre; }
    std::size_t size() const { return out_.size(); }
    std::string take() {
        while (!out_.empty() && (out_.back() == '\n' || out_.back() == ' ')) {
            out_.pop_back();
        }
        return std::move(out_);
    }
    const std::string& view() const { return out_; }

private:
    void put(char c) {
        if (pending_space_ && !out_.empty() && out_.back() != '\n' && out_.back() != ' ') {
            out_ += ' ';
        }
        pending_space_ = false;
        out_ += c;
    }
    std::string out_;
    bool pending_space_ = false;
    bool pre_ = false;
};

// The tag name after '<' or '</', lower-cased; empty when it is not a tag.
std::string tag_name(std::string_view s, std::size_t pos) {
    std::size_t end = pos;
    while (end < s.size() && (std::isalnum(static_cast<unsigned char>(s[end])) || s[end] == '-' ||
                              s[end] == ':')) {
        ++end;
    }
    if (end == pos || !std::isalpha(static_cast<unsigned char>(s[pos]))) {
        return {};
    }
    return lower(s.substr(pos, end - pos));
}

// The end of a tag starting at `pos`, honouring quoted attribute values ("a > b").
std::size_t tag_end(std::string_view s, std::size_t pos) {
    char quote = 0;
    for (std::size_t i = pos; i < s.size(); ++i) {
        const char c = s[i];
        if (quote != 0) {
            if (c == quote) {
                quote = 0;
            }
        } else if (c == '"' || c == '\'') {
            quote = c;
        } else if (c == '>') {
            return i;
        }
    }
    return std::string_view::npos;
}

}  // namespace

Document parse_html(std::string_view s) {
    HtmlText out;
    json headings = json::array();
    std::string title;
    bool in_title = false;
    bool in_head = false;  // text in <head> other than the title is not shown
    int heading_level = 0;
    std::size_t heading_start = 0;
    std::size_t pos = 0;
    while (pos < s.size()) {
        const char c = s[pos];
        if (c == '&') {
            std::string decoded;
            const std::size_t used = decode_entity(s, pos, decoded);
            if (used > 0) {
                if (in_title) {
                    title += decoded;
                } else if (!in_head) {
                    out.decoded(decoded);
                }
                pos += used;
                continue;
            }
        }
        if (c != '<') {
            const std::size_t next = s.find_first_of("<&", pos + 1);
            const std::size_t end = next == std::string_view::npos ? s.size() : next;
            if (in_title) {
                title += s.substr(pos, end - pos);
            } else if (!in_head) {
                out.text(s.substr(pos, end - pos));
            }
            pos = end;
            continue;
        }
        if (s.substr(pos, 4) == "<!--") {
            const std::size_t end = s.find("-->", pos + 4);
            pos = end == std::string_view::npos ? s.size() : end + 3;
            continue;
        }
        if (s.substr(pos, 9) == "<![CDATA[") {
            const std::size_t end = s.find("]]>", pos + 9);
            const std::size_t stop = end == std::string_view::npos ? s.size() : end;
            out.text(s.substr(pos + 9, stop - pos - 9));
            pos = end == std::string_view::npos ? s.size() : end + 3;
            continue;
        }
        const bool closing = pos + 1 < s.size() && s[pos + 1] == '/';
        const bool declaration = pos + 1 < s.size() && (s[pos + 1] == '!' || s[pos + 1] == '?');
        const std::string name = tag_name(s, pos + (closing ? 2 : 1));
        if (name.empty() && !declaration) {
            out.text("<");  // a stray '<' in text
            ++pos;
            continue;
        }
        const std::size_t end = tag_end(s, pos + 1);
        if (end == std::string_view::npos) {
            break;  // a tag cut off at the end of the file
        }
        pos = end + 1;
        if (declaration) {
            continue;
        }
        if (!closing && is_hidden(name) && s[end - 1] != '/') {
            // Skip to the matching end tag; the content is not HTML (script, style) or not
            // visible. The search is case-insensitive over a bounded window.
            const std::string lowered =
                lower(s.substr(pos, std::min<std::size_t>(s.size() - pos, 16 << 20)));
            const std::size_t close = lowered.find("</" + name);
            pos = close == std::string::npos ? s.size() : pos + close;
            continue;
        }
        if (name == "head") {
            in_head = !closing;
            continue;
        }
        if (name == "title") {
            in_title = !closing;
            continue;
        }
        if (name == "pre") {
            out.set_pre(!closing);
        }
        if (name.size() == 2 && name[0] == 'h' && name[1] >= '1' && name[1] <= '6') {
            if (!closing) {
                out.line_break();
                heading_level = name[1] - '0';
                heading_start = out.size();
            } else if (heading_level > 0) {
                std::string text = out.view().substr(heading_start);
                while (!text.empty() && (text.back() == ' ' || text.back() == '\n')) {
                    text.pop_back();
                }
                if (!text.empty()) {
                    headings.push_back(
                        {{"level", heading_level}, {"text", text}, {"offset", heading_start}});
                }
                heading_level = 0;
            }
        }
        // Inline elements (b, a, span) join their text without a space: "<b>Sl</b>uice".
        if (is_block(name)) {
            out.line_break();
        }
    }
    Document document;
    document.text = out.take();
    if (!title.empty()) {
        HtmlText normalised;
        normalised.text(title);
        document.metadata["title"] = normalised.take();
    }
    document.metadata["headings"] = std::move(headings);
    return document;
}

}  // namespace sluice::connectors
