#include "connectors/parsers.h"

#include <algorithm>
#include <cctype>

namespace sluice::connectors {

using nlohmann::json;

std::string_view format_name(Format format) {
    switch (format) {
        case Format::kText: return "text";
        case Format::kMarkdown: return "markdown";
        case Format::kHtml: return "html";
        case Format::kPdf: return "pdf";
        case Format::kCsv: return "csv";
        case Format::kJson: return "json";
        case Format::kJsonl: return "jsonl";
        case Format::kUnknown: return "unknown";
    }
    return "unknown";
}

Format format_for_path(std::string_view path) {
    const std::size_t dot = path.rfind('.');
    const std::size_t slash = path.rfind('/');
    if (dot == std::string_view::npos || (slash != std::string_view::npos && dot < slash)) {
        return Format::kUnknown;
    }
    std::string ext(path.substr(dot + 1));
    std::transform(ext.begin(), ext.end(), ext.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (ext == "txt" || ext == "text" || ext == "log") {
        return Format::kText;
    }
    if (ext == "md" || ext == "markdown") {
        return Format::kMarkdown;
    }
    if (ext == "html" || ext == "htm") {
        return Format::kHtml;
    }
    if (ext == "pdf") {
        return Format::kPdf;
    }
    if (ext == "csv") {
        return Format::kCsv;
    }
    if (ext == "json") {
        return Format::kJson;
    }
    if (ext == "jsonl" || ext == "ndjson") {
        return Format::kJsonl;
    }
    return Format::kUnknown;
}

bool is_row_format(Format format) {
    return format == Format::kCsv || format == Format::kJson || format == Format::kJsonl;
}

Document parse_text(std::string_view bytes) {
    Document document;
    document.text = std::string(bytes);
    return document;
}

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
        s.remove_suffix(1);
    }
    return s;
}

std::size_t leading_spaces(std::string_view line) {
    std::size_t n = 0;
    while (n < line.size() && line[n] == ' ') {
        ++n;
    }
    return n;
}

// An ATX heading ("## Title ##"): CommonMark allows up to three spaces of indentation and needs
// a space (or the end of the line) after the opening #s.
int atx_level(std::string_view line, std::string_view* text) {
    const std::size_t indent = leading_spaces(line);
    if (indent > 3) {
        return 0;
    }
    line.remove_prefix(indent);
    std::size_t hashes = 0;
    while (hashes < line.size() && line[hashes] == '#') {
        ++hashes;
    }
    if (hashes == 0 || hashes > 6) {
        return 0;
    }
    std::string_view rest = line.substr(hashes);
    if (!rest.empty() && rest.front() != ' ' && rest.front() != '\t' && rest.front() != '\r') {
        return 0;
    }
    rest = trim(rest);
    // A closing sequence of #s preceded by a space is not part of the heading.
    std::size_t end = rest.size();
    while (end > 0 && rest[end - 1] == '#') {
        --end;
    }
    if (end == 0 || rest[end - 1] == ' ') {
        rest = trim(rest.substr(0, end));
    }
    *text = rest;
    return static_cast<int>(hashes);
}

int setext_level(std::string_view line) {
    line = trim(line);
    if (line.empty() || leading_spaces(line) > 3) {
        return 0;
    }
    const char c = line.front();
    if (c != '=' && c != '-') {
        return 0;
    }
    if (!std::all_of(line.begin(), line.end(), [c](char x) { return x == c; })) {
        return 0;
    }
    return c == '=' ? 1 : 2;
}

}  // namespace

Document parse_markdown(std::string_view bytes) {
    Document document;
    document.text = std::string(bytes);
    json headings = json::array();
    std::string fence;  // the open code fence ("```" or "~~~"), empty outside code
    std::size_t previous_start = std::string_view::npos;
    std::string_view previous_line;
    std::size_t pos = 0;
    while (pos < bytes.size()) {
        std::size_t end = bytes.find('\n', pos);
        if (end == std::string_view::npos) {
            end = bytes.size();
        }
        const std::string_view line = bytes.substr(pos, end - pos);
        const std::string_view body = trim(line);
        bool paragraph = false;
        if (!fence.empty()) {
            if (body.starts_with(fence)) {
                fence.clear();
            }
        } else if (body.starts_with("```") || body.starts_with("~~~")) {
            fence = std::string(body.substr(0, 3));
        } else if (std::string_view text; int level = atx_level(line, &text)) {
            headings.push_back({{"level", level}, {"text", text}, {"offset", pos}});
        } else if (int setext = setext_level(line);
                   setext > 0 && previous_start != std::string_view::npos) {
            headings.push_back(
                {{"level", setext}, {"text", trim(previous_line)}, {"offset", previous_start}});
        } else if (!body.empty() && leading_spaces(line) < 4) {
            paragraph = true;
        }
        // A setext underline only counts right under a one-line paragraph.
        previous_start = paragraph ? pos : std::string_view::npos;
        previous_line = line;
        pos = end + 1;
    }
    for (const json& heading : headings) {
        if (heading["level"] == 1) {
            document.metadata["title"] = heading["text"];
            break;
        }
    }
    document.metadata["headings"] = std::move(headings);
    return document;
}

}  // namespace sluice::connectors
