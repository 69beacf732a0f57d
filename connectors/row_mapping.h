#pragma once
// How a row (a table row, a CSV record, a JSON object) becomes a document: which column is the
// key, which columns make the text, which go to metadata, and which hold the ACL.
//
// Thread safety: immutable value types and pure functions.

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "connectors/change_event.h"

namespace sluice::connectors {

// What a metadata column of a file's rows holds, for rows whose values are text (CSV fields)
// or may be: declared, the text becomes a typed value that range and equality filters compare
// as such ("3" is the integer 3, "true" the boolean true).
enum class ColumnType { kInteger, kReal, kBoolean, kText };

struct RowMapping {
    std::string key;                    // the key column (required for tables)
    std::vector<std::string> text;      // text columns; empty: every column not used otherwise
    std::vector<std::string> metadata;  // columns copied into metadata (with their JSON types)
    std::string acl_principals;         // column with a principal list (JSON array or a,b,c)
    std::string acl_groups;             // column with a group list
    Acl default_acl;                    // used when the ACL columns are absent or empty
    // Declared types of metadata columns of file rows (CSV, JSON lines), applied by type_row().
    std::map<std::string, ColumnType> types;
};

// A row as column names and JSON values (null, number, string, bool).
struct Row {
    std::vector<std::string> columns;
    std::vector<nlohmann::json> values;

    const nlohmann::json* find(std::string_view column) const;
};

// Builds the document. The text is the single text column's value, or "column: value" lines
// when there are several (null values are left out). Metadata holds the metadata columns plus
// whatever `base_metadata` carries (e.g. {"table": "Track"}).
Document row_document(const RowMapping& mapping, const Row& row,
                      const nlohmann::json& base_metadata);

// Gives the row's typed columns (mapping.types) their types, in place: text is read as the
// type (surrounding blanks ignored; an empty field is null), a value already of the type stays.
// Integers are whole numbers within 64 bits, without a decimal point; reals any finite number;
// booleans true/false, yes/no or 1/0 (any case). Errors: kInvalidArgument naming the column and
// the value that is not of its type.
Status type_row(const RowMapping& mapping, Row& row);

// The key column's value as a key part: strings as they are, integers without a decimal point.
// Errors: kInvalidArgument when the value is null or missing.
Result<std::string> row_key(const RowMapping& mapping, const Row& row);

// Parses {"key", "text", "metadata", "acl_principals", "acl_groups", "acl", "types"} from
// configuration; "types" maps metadata columns to "integer", "real", "boolean" or "text".
// Errors: kInvalidArgument naming the field.
Result<RowMapping> row_mapping_from_json(const nlohmann::json& value, std::string_view where);
// A source table and how its rows become documents.
struct TableMapping {
    std::string table;
    RowMapping mapping;
};

// Parses the "tables" array of a table source's configuration: [{"table": ..., mapping...}].
// Errors: kInvalidArgument naming the entry and field ("tables[2].table: ..."); "types" is
// refused there (a database's columns have their own types).
Result<std::vector<TableMapping>> table_mappings_from_json(const nlohmann::json& config);

nlohmann::json to_json(const RowMapping& mapping);

// A JSON value as text: strings verbatim, numbers and booleans in JSON form, null as "".
std::string json_scalar_text(const nlohmann::json& value);

}  // namespace sluice::connectors
