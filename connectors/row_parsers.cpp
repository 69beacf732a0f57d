// CSV (RFC 4180) and JSON/JSONL rows → one document per record.
#include <algorithm>
#include <set>

#include "connectors/parsers.h"

namespace sluice::connectors {

using nlohmann::json;

namespace {

struct CsvRecord {
    std::vector<std::string> fields;
    std::size_t line = 0;       // 1-based line where the record starts
    bool unterminated = false;  // a quoted field ran to the end of the input
};

// Reads one record starting at `pos` (advanced past it). Quoted fields may hold commas,
// doubled quotes and line breaks; CRLF and LF both end records.
CsvRecord read_record(std::string_view s, std::size_t& pos, std::size_t& line) {
    CsvRecord record;
    record.line = line;
    std::string field;
    bool quoted = false;
    bool field_was_quoted = false;
    while (pos < s.size()) {
        const char c = s[pos];
        if (quoted) {
            if (c == '"') {
                if (pos + 1 < s.size() && s[pos + 1] == '"') {
                    field += '"';
                    pos += 2;
                    continue;
                }
                quoted = false;
                ++pos;
                continue;
            }
            if (c == '\n') {
                ++line;
            }
            field += c;
            ++pos;
            continue;
        }
        if (c == '"' && field.empty() && !field_was_quoted) {
            quoted = true;
            field_was_quoted = true;
            ++pos;
            continue;
        }
        if (c == ',') {
            record.fields.push_back(std::move(field));
            field.clear();
            field_was_quoted = false;
            ++pos;
            continue;
        }
        if (c == '\r' && pos + 1 < s.size() && s[pos + 1] == '\n') {
            ++pos;
            continue;
        }
        if (c == '\n') {
            ++pos;
            ++line;
            record.fields.push_back(std::move(field));
            return record;
        }
        field += c;
        ++pos;
    }
    record.unterminated = quoted;
    record.fields.push_back(std::move(field));
    return record;
}

bool blank(const CsvRecord& record) {
    return record.fields.size() == 1 && record.fields[0].empty();
}

// Adds a row: resolves its key and rejects a duplicate within the file.
void add_row(const RowMapping& mapping, Row row, const std::string& where, std::size_t ordinal,
             std::set<std::string>& seen, RowParse& out) {
    if (Status typed = type_row(mapping, row); !typed.ok()) {
        out.errors.push_back({where, typed.message()});
        return;
    }
    std::string key;
    if (mapping.key.empty()) {
        key = std::to_string(ordinal);
    } else {
        auto found = row_key(mapping, row);
        if (!found) {
            out.errors.push_back({where, found.status().message()});
            return;
        }
        key = *found;
    }
    if (!seen.insert(key).second) {
        out.errors.push_back({where, "duplicate key '" + key + "' in the same file"});
        return;
    }
    // No record number in the metadata: inserting a record above would change every document
    // below it, and unchanged rows are recognised by their document's hash.
    out.rows.push_back({key, row_document(mapping, row, json::object())});
}

}  // namespace

Result<RowParse> parse_csv(std::string_view bytes, const RowMapping& mapping) {
    if (bytes.starts_with("\xEF\xBB\xBF")) {
        bytes.remove_prefix(3);  // a UTF-8 byte order mark from spreadsheet exports
    }
    std::size_t pos = 0;
    std::size_t line = 1;
    CsvRecord header = read_record(bytes, pos, line);
    if (blank(header) || header.unterminated) {
        return invalid_argument("csv has no header row");
    }
    const std::vector<std::string>& columns = header.fields;
    if (!mapping.key.empty() &&
        std::find(columns.begin(), columns.end(), mapping.key) == columns.end()) {
        return invalid_argument("csv header has no key column '" + mapping.key + "'");
    }
    RowParse out;
    std::set<std::string> seen;
    std::size_t ordinal = 0;
    while (pos < bytes.size()) {
        CsvRecord record = read_record(bytes, pos, line);
        if (blank(record)) {
            continue;
        }
        ++ordinal;
        const std::string where = "line " + std::to_string(record.line);
        if (record.unterminated) {
            out.errors.push_back({where, "unterminated quoted field"});
            break;
        }
        if (record.fields.size() != columns.size()) {
            out.errors.push_back({where, std::to_string(record.fields.size()) +
                                             " fields, expected " +
                                             std::to_string(columns.size())});
            continue;
        }
        Row row;
        row.columns = columns;
        for (std::string& field : record.fields) {
            row.values.emplace_back(std::move(field));
        }
        add_row(mapping, std::move(row), where, ordinal, seen, out);
    }
    return out;
}

namespace {

Row object_row(const json& object) {
    Row row;
    for (const auto& [name, value] : object.items()) {
        row.columns.push_back(name);
        row.values.push_back(value);
    }
    return row;
}

}  // namespace

Result<RowParse> parse_json_rows(std::string_view bytes, const RowMapping& mapping, bool lines) {
    RowParse out;
    std::set<std::string> seen;
    if (!lines) {
        json value = json::parse(bytes, nullptr, /*allow_exceptions=*/false);
        if (value.is_discarded()) {
            return invalid_argument("json does not parse");
        }
        if (value.is_object()) {
            value = json::array({std::move(value)});
        }
        if (!value.is_array()) {
            return invalid_argument("json must be an array of objects or one object");
        }
        for (std::size_t i = 0; i < value.size(); ++i) {
            const std::string where = "record " + std::to_string(i + 1);
            if (!value[i].is_object()) {
                out.errors.push_back({where, "expected an object"});
                continue;
            }
            add_row(mapping, object_row(value[i]), where, i + 1, seen, out);
        }
        return out;
    }
    std::size_t pos = 0;
    std::size_t line = 0;
    std::size_t ordinal = 0;
    while (pos < bytes.size()) {
        std::size_t end = bytes.find('\n', pos);
        if (end == std::string_view::npos) {
            end = bytes.size();
        }
        std::string_view text = bytes.substr(pos, end - pos);
        pos = end + 1;
        ++line;
        if (text.find_first_not_of(" \t\r") == std::string_view::npos) {
            continue;
        }
        ++ordinal;
        const std::string where = "line " + std::to_string(line);
        json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
        if (value.is_discarded()) {
            out.errors.push_back({where, "json does not parse"});
            continue;
        }
        if (!value.is_object()) {
            out.errors.push_back({where, "expected an object"});
            continue;
        }
        add_row(mapping, object_row(value), where, ordinal, seen, out);
    }
    return out;
}

}  // namespace sluice::connectors
