#include "retrieval/chunker.h"

#include <algorithm>

#include "common/check.h"

namespace sluice::retrieval {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }
bool is_alpha(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

// A unit the packer never splits unless it alone exceeds max_tokens: a heading line, a sentence,
// a table row, a code block.
struct Unit {
    std::size_t begin = 0;
    std::size_t end = 0;
    std::size_t tokens = 0;
    bool paragraph_start = false;
};

struct Section {
    std::vector<std::string> path;
    std::vector<Unit> units;
};

// Heading level of a Markdown ATX heading line ("## Title"), 0 when the line is not one.
int heading_level(std::string_view line, std::string& title) {
    std::size_t level = 0;
    while (level < line.size() && line[level] == '#') {
        ++level;
    }
    if (level == 0 || level > 6 || level >= line.size() || line[level] != ' ') {
        return 0;
    }
    std::string_view rest = line.substr(level + 1);
    while (!rest.empty() && (is_space(rest.back()) || rest.back() == '#')) {
        rest.remove_suffix(1);
    }
    title.assign(rest);
    return static_cast<int>(level);
}

// Sentence ends: . ! ? followed by whitespace and then an upper-case letter, a digit, a quote or
// the end of the paragraph. Abbreviations such as "e.g. the" stay inside the sentence because
// the next word is lower case.
void split_sentences(std::string_view text, std::size_t begin, std::size_t end,
                     std::vector<Unit>& out) {
    std::size_t start = begin;
    for (std::size_t i = begin; i < end; ++i) {
        char c = text[i];
        if (c != '.' && c != '!' && c != '?') {
            continue;
        }
        std::size_t j = i + 1;
        if (j < end && !is_space(text[j])) {
            continue;
        }
        while (j < end && is_space(text[j])) {
            ++j;
        }
        unsigned char next = j < end ? static_cast<unsigned char>(text[j]) : 0;
        if (j < end && !(next >= 'A' && next <= 'Z') && !is_digit(next) && next != '"' &&
            next != '(' && next < 0x80) {
            continue;
        }
        out.push_back(Unit{start, i + 1, 0, false});
        start = j;
        i = j == 0 ? 0 : j - 1;
    }
    if (start < end) {
        out.push_back(Unit{start, end, 0, false});
    }
}

std::vector<Section> parse_structure(std::string_view text) {
    std::vector<Section> sections(1);
    std::vector<std::pair<int, std::string>> headings;
    std::size_t paragraph_begin = std::string_view::npos;
    std::size_t paragraph_end = 0;
    bool in_code = false;
    auto flush_paragraph = [&] {
        if (paragraph_begin == std::string_view::npos) {
            return;
        }
        auto& units = sections.back().units;
        std::size_t first = units.size();
        if (in_code) {
            units.push_back(Unit{paragraph_begin, paragraph_end, 0, false});
        } else {
            split_sentences(text, paragraph_begin, paragraph_end, units);
        }
        if (first < units.size()) {
            units[first].paragraph_start = true;
        }
        paragraph_begin = std::string_view::npos;
    };
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t eol = text.find('\n', pos);
        std::size_t line_end = eol == std::string_view::npos ? text.size() : eol;
        std::string_view line = text.substr(pos, line_end - pos);
        std::size_t next = eol == std::string_view::npos ? text.size() : eol + 1;
        std::string_view trimmed = line;
        while (!trimmed.empty() && is_space(trimmed.front())) {
            trimmed.remove_prefix(1);
        }
        while (!trimmed.empty() && is_space(trimmed.back())) {
            trimmed.remove_suffix(1);
        }
        std::string title;
        int level = in_code ? 0 : heading_level(line, title);
        if (trimmed.rfind("```", 0) == 0) {
            // A fence opens or closes a code block, which is kept whole as one unit.
            if (!in_code) {
                flush_paragraph();
                in_code = true;
                paragraph_begin = pos;
                paragraph_end = line_end;
            } else {
                paragraph_end = line_end;
                flush_paragraph();
                in_code = false;
            }
        } else if (in_code) {
            paragraph_end = line_end;
        } else if (level > 0) {
            flush_paragraph();
            while (!headings.empty() && headings.back().first >= level) {
                headings.pop_back();
            }
            headings.emplace_back(level, title);
            Section section;
            for (const auto& heading : headings) {
                section.path.push_back(heading.second);
            }
            section.units.push_back(Unit{pos, line_end, 0, true});
            sections.push_back(std::move(section));
        } else if (trimmed.empty()) {
            flush_paragraph();
        } else if (trimmed.front() == '|') {
            flush_paragraph();  // each table row is a unit of its own
            sections.back().units.push_back(Unit{pos, line_end, 0, false});
        } else {
            if (paragraph_begin == std::string_view::npos) {
                paragraph_begin = pos;
            }
            paragraph_end = line_end;
        }
        pos = next;
    }
    flush_paragraph();
    return sections;
}

bool is_continuation(char c) { return (static_cast<unsigned char>(c) & 0xc0) == 0x80; }

// The first byte of the UTF-8 character that holds byte `pos`, not before `floor`. At most three
// bytes back (a character is at most four), so that text that is not UTF-8 (a run of
// continuation bytes) is still cut near where its tokens are.
std::size_t character_start(std::string_view text, std::size_t pos, std::size_t floor) {
    for (int back = 0; back < 3 && pos > floor && pos < text.size() && is_continuation(text[pos]);
         ++back) {
        --pos;
    }
    return pos;
}

// The first character boundary after `pos`, at most `ceiling`.
std::size_t next_character(std::string_view text, std::size_t pos, std::size_t ceiling) {
    ++pos;
    for (int ahead = 0; ahead < 3 && pos < ceiling && is_continuation(text[pos]); ++ahead) {
        ++pos;
    }
    return std::min(pos, ceiling);
}

// Cuts one oversized unit into windows of max_tokens tokens with overlap. A byte-level BPE
// token can end inside a UTF-8 character (cl100k_base splits most Devanagari characters), so a
// cut inside a character moves back to the character's first byte, both where a window ends and
// where one starts: the character goes whole to the later window, every chunk's text is valid
// UTF-8 when the document's is, and the windows still meet. A window then starts with the tail
// of the token before it: it exceeds max_tokens by at most that partial character (at most
// three bytes, so three byte-sized tokens). Should a window hold no whole character (tokens of
// no bytes; no tokenizer here makes them), it takes the next one, so that chunks always move
// forward.
void split_long_unit(std::string_view text, const Unit& unit, const TokenCounter& counter,
                     const ChunkingOptions& options, const std::vector<std::string>& path,
                     std::vector<ChunkSpan>& out) {
    auto offsets = counter.token_offsets(text.substr(unit.begin, unit.end - unit.begin));
    std::size_t step = options.max_tokens - options.overlap_tokens;
    std::size_t previous_begin = unit.begin;
    for (std::size_t first = 0; first < offsets.size(); first += step) {
        std::size_t last = std::min(first + options.max_tokens, offsets.size());
        std::size_t begin = unit.begin;
        if (first != 0) {
            begin = character_start(text, unit.begin + offsets[first], unit.begin);
            if (begin <= previous_begin) {
                begin = next_character(text, previous_begin, unit.end);
            }
        }
        std::size_t end = last == offsets.size()
                              ? unit.end
                              : character_start(text, unit.begin + offsets[last], unit.begin);
        if (end <= begin) {
            end = next_character(text, begin, unit.end);
        }
        if (begin >= end) {
            break;  // the previous window reached the unit's end
        }
        out.push_back(ChunkSpan{begin, end, path});
        previous_begin = begin;
        if (last == offsets.size() || end == unit.end) {
            break;
        }
    }
}

}  // namespace

std::vector<std::size_t> ApproxTokenCounter::token_offsets(std::string_view text) const {
    std::vector<std::size_t> offsets;
    std::size_t i = 0;
    while (i < text.size()) {
        std::size_t start = i;
        while (i < text.size() && is_space(text[i])) {
            ++i;
        }
        if (i == text.size()) {
            if (offsets.empty()) {
                offsets.push_back(start);
            }
            break;
        }
        auto c = static_cast<unsigned char>(text[i]);
        std::size_t limit = 1;
        if (is_alpha(c) || c >= 0x80) {
            limit = 6;
            std::size_t run = 0;
            while (i < text.size() && run < limit &&
                   (is_alpha(static_cast<unsigned char>(text[i])) ||
                    static_cast<unsigned char>(text[i]) >= 0x80)) {
                ++i;
                ++run;
            }
            // Never end a piece inside a UTF-8 sequence.
            while (i < text.size() && (static_cast<unsigned char>(text[i]) & 0xc0) == 0x80) {
                ++i;
            }
        } else if (is_digit(c)) {
            std::size_t run = 0;
            while (i < text.size() && run < 3 && is_digit(static_cast<unsigned char>(text[i]))) {
                ++i;
                ++run;
            }
        } else {
            ++i;
        }
        offsets.push_back(start);
    }
    return offsets;
}

Status validate(const ChunkingOptions& options) {
    if (options.max_tokens < 8 || options.max_tokens > 65536) {
        return invalid_argument("chunk max_tokens " + std::to_string(options.max_tokens) +
                                ", expected 8 to 65536");
    }
    if (options.overlap_tokens >= options.max_tokens / 2 + 1) {
        return invalid_argument("chunk overlap_tokens " + std::to_string(options.overlap_tokens) +
                                ", expected at most half of max_tokens (" +
                                std::to_string(options.max_tokens / 2) + ")");
    }
    return Status::ok_status();
}

std::vector<ChunkSpan> chunk_text(std::string_view text, const TokenCounter& counter,
                                  const ChunkingOptions& options) {
    SLUICE_CHECK(validate(options).ok(), "chunk_text called with invalid options");
    std::vector<ChunkSpan> out;
    for (Section& section : parse_structure(text)) {
        auto& units = section.units;
        if (units.empty()) {
            continue;
        }
        // Every unit lies inside the section's span, so a span of at most max_tokens bytes
        // holds at most max_tokens tokens when no token is shorter than a byte: the packer
        // below would take all its units into one chunk.
        if (counter.at_most_one_token_per_byte() &&
            units.back().end - units.front().begin <= options.max_tokens) {
            out.push_back(ChunkSpan{units.front().begin, units.back().end, section.path});
            continue;
        }
        for (Unit& unit : units) {
            unit.tokens = counter.token_offsets(text.substr(unit.begin, unit.end - unit.begin))
                              .size();
        }
        std::size_t first = 0;
        while (first < units.size()) {
            if (units[first].tokens > options.max_tokens) {
                split_long_unit(text, units[first], counter, options, section.path, out);
                ++first;
                continue;
            }
            std::size_t last = first;
            std::size_t tokens = 0;
            while (last < units.size() && tokens + units[last].tokens <= options.max_tokens) {
                tokens += units[last].tokens;
                ++last;
            }
            out.push_back(ChunkSpan{units[first].begin, units[last - 1].end, section.path});
            if (last == units.size()) {
                break;
            }
            if (units[last].tokens > options.max_tokens) {
                first = last;  // the oversized unit is cut with its own overlap
                continue;
            }
            // The next chunk starts with the trailing units of this one that fit in the overlap
            // and leave room for the unit after them, so that it always moves forward by at
            // least one unit at both ends (an overlap that left no room made a chunk that only
            // repeated the end of the one before).
            std::size_t next = last;
            std::size_t overlap = 0;
            while (next - 1 > first && overlap + units[next - 1].tokens <= options.overlap_tokens &&
                   overlap + units[next - 1].tokens + units[last].tokens <= options.max_tokens) {
                overlap += units[next - 1].tokens;
                --next;
            }
            first = next;
        }
    }
    return out;
}

}  // namespace sluice::retrieval
