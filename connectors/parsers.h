#pragma once
// Document parsers: bytes of a file → text plus structure metadata.
//
//   text      the bytes as text
//   Markdown  the source text; metadata "title" (first level-1 heading) and "headings":
//             [{"level", "text", "offset"}] with byte offsets into the text (ATX and setext
//             headings, not inside fenced code)
//   HTML      visible text (tags, comments, scripts, styles dropped; entities decoded; block
//             elements end lines); metadata "title" and "headings" with offsets into that text
//   PDF       the text of each page (poppler), pages separated by "\f"; metadata "pages" (count)
//             and "page_starts": the byte offset at which page i+1 starts
//   CSV       one document per record (header row names the columns), through a RowMapping
//   JSON      an array of objects (or one object), one document per object
//   JSONL     one object per line
//
// Thread safety: pure functions.

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "connectors/change_event.h"
#include "connectors/row_mapping.h"

namespace sluice::connectors {

enum class Format { kText, kMarkdown, kHtml, kPdf, kCsv, kJson, kJsonl, kUnknown };

std::string_view format_name(Format format);
// By extension, case-insensitively: .txt .text .log → text; .md .markdown; .html .htm; .pdf;
// .csv; .json; .jsonl .ndjson. Anything else is kUnknown (not read).
Format format_for_path(std::string_view path);
bool is_row_format(Format format);

Document parse_text(std::string_view bytes);
Document parse_markdown(std::string_view bytes);
Document parse_html(std::string_view bytes);
// Errors: kInvalidArgument when the bytes are not a readable PDF (corrupt, or locked by a
// password); the message says which.
Result<Document> parse_pdf(std::string_view bytes);

// One document from a row file, with the key it was found under (the key column's value, or
// the 1-based record number when the mapping has no key).
struct RowDocument {
    std::string key;
    Document document;
};

// A problem with one record; `where` is "line N" (the record's first line) or "record N".
struct RowError {
    std::string where;
    std::string message;
};

struct RowParse {
    std::vector<RowDocument> rows;
    std::vector<RowError> errors;
};

// Records with the wrong number of fields, a missing or null key, a key seen before in the same
// file, or an unterminated quote are RowErrors; the other records are parsed.
// Errors: kInvalidArgument for a file that has no header row or whose header lacks the key.
Result<RowParse> parse_csv(std::string_view bytes, const RowMapping& mapping);
// `lines`: JSONL. Errors: kInvalidArgument when a .json file is not an array or object.
Result<RowParse> parse_json_rows(std::string_view bytes, const RowMapping& mapping, bool lines);

}  // namespace sluice::connectors
