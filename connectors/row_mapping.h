#pragma once
// How a row (a table row, a CSV record, a JSON object) becomes a document: which column is the
// key, which columns make the text, which go to metadata, and which hold the ACL.
//
// Thread safety: immutable value types and pure functions.

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "connectors/change_event.h"

namespace sluice::connectors {

struct RowMapping {
    std::string key;                    // the key column (required for tables)
    std::vector<std::string> text;      // text columns; empty: every column not used otherwise
    std::vector<std::string> metadata;  // columns copied into metadata (with their JSON types)
    std::string acl_principals;         // column with a principal list (JSON array or a,b,c)
    std::string acl_groups;             // column with a group list
    Acl default_acl;                    // used when the ACL columns are absent or empty
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

// The key column's value as a key part: strings as they are, integers without a decimal point.
// Errors: kInvalidArgument when the value is null or missing.
Result<std::string> row_key(const RowMapping& mapping, const Row& row);

// Parses {"key", "text", "metadata", "acl_principals", "acl_groups", "acl"} from configuration.
// Errors: kInvalidArgument naming the field.
Result<RowMapping> row_mapping_from_json(const nlohmann::json& value, std::string_view where);
// A source table and how its rows become documents.
struct TableMapping {
    std::string table;
    RowMapping mapping;
};

// Parses the "tables" array of a table source's configuration: [{"table": ..., mapping...}].
// Errors: kInvalidArgument naming the entry and field ("tables[2].table: ...").
Result<std::vector<TableMapping>> table_mappings_from_json(const nlohmann::json& config);

nlohmann::json to_json(const RowMapping& mapping);

// A JSON value as text: strings verbatim, numbers and booleans in JSON form, null as "".
std::string json_scalar_text(const nlohmann::json& value);

}  // namespace sluice::connectors
