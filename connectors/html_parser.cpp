// HTML → visible text with a small tokenizer: not a conforming HTML5 parser, but robust to what
// real pages hold (unclosed tags, stray '<', comments, CDATA, scripts containing "</div>"), in
// time and memory linear in the input. Character references are decoded as HTML5 reads them
// (detail/html_entities.h); a table row is one line, its cells separated by tabs.
#include <algorithm>
#include <array>
#include <cctype>

#include "connectors/detail/html_entities.h"
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

bool is_block(std::string_view tag) {
    static constexpr std::array<std::string_view, 32> kBlocks{
        "p",       "div",    "br",     "li",     "ul",         "ol",         "tr",   "caption",
        "table",   "h1",     "h2",     "h3",     "h4",         "h5",         "h6",   "section",
        "article", "header", "footer", "nav",    "aside",      "blockquote", "pre",  "hr",
        "dt",      "dd",     "dl",     "figure", "figcaption", "main",       "form", "title"};
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
        cells_in_row_ = 0;
        if (!out_.empty() && out_.back() != '\n') {
            out_ += '\n';
        }
    }
    // A table cell begins: cells after a row's first are separated by a tab, so that a row
    // stays on one line ("Item\tCost") and an empty cell keeps its column.
    void cell() {
        pending_space_ = false;
        if (cells_in_row_++ > 0) {
            out_ += '\t';
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
        if (pending_space_ && !out_.empty() && out_.back() != '\n' && out_.back() != ' ' &&
            out_.back() != '\t') {
            out_ += ' ';
        }
        pending_space_ = false;
        out_ += c;
    }
    std::string out_;
    bool pending_space_ = false;
    bool pre_ = false;
    int cells_in_row_ = 0;
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

// The end of a tag starting at `pos`. A quote opens a string only where an attribute value
// starts (after '=', as in `data-x="a > b"`); elsewhere it is part of a name or of an
// unquoted value (`alt=don't`), and the tag still ends at the next '>'.
std::size_t tag_end(std::string_view s, std::size_t pos) {
    bool value_may_start = false;
    for (std::size_t i = pos; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '>') {
            return i;
        }
        if (value_may_start && (c == '"' || c == '\'')) {
            const std::size_t close = s.find(c, i + 1);
            if (close == std::string_view::npos) {
                return close;
            }
            i = close;
            value_may_start = false;
            continue;
        }
        if (c == '=') {
            value_may_start = true;
        } else if (!is_space(c)) {
            value_may_start = false;
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
            const std::size_t used = detail::decode_character_reference(s, pos, decoded);
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
        } else if (!closing && (name == "td" || name == "th")) {
            out.cell();
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
