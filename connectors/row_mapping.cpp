#include "connectors/row_mapping.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <optional>

namespace sluice::connectors {

using nlohmann::json;

const json* Row::find(std::string_view column) const {
    for (std::size_t i = 0; i < columns.size(); ++i) {
        if (columns[i] == column) {
            return &values[i];
        }
    }
    return nullptr;
}

std::string json_scalar_text(const json& value) {
    if (value.is_null()) {
        return "";
    }
    if (value.is_string()) {
        return value.get<std::string>();
    }
    return dump_json(value);
}

namespace {

bool contains(const std::vector<std::string>& list, std::string_view name) {
    return std::find(list.begin(), list.end(), name) != list.end();
}

std::vector<std::string> text_columns(const RowMapping& mapping, const Row& row) {
    if (!mapping.text.empty()) {
        return mapping.text;
    }
    std::vector<std::string> out;
    for (const std::string& column : row.columns) {
        if (column != mapping.key && column != mapping.acl_principals &&
            column != mapping.acl_groups && !contains(mapping.metadata, column)) {
            out.push_back(column);
        }
    }
    return out;
}

}  // namespace

Document row_document(const RowMapping& mapping, const Row& row, const json& base_metadata) {
    Document document;
    const std::vector<std::string> columns = text_columns(mapping, row);
    if (columns.size() == 1) {
        if (const json* value = row.find(columns[0])) {
            document.text = json_scalar_text(*value);
        }
    } else {
        for (const std::string& column : columns) {
            const json* value = row.find(column);
            if (value == nullptr || value->is_null()) {
                continue;
            }
            document.text += column + ": " + json_scalar_text(*value) + "\n";
        }
    }
    document.metadata = base_metadata.is_object() ? base_metadata : json::object();
    for (const std::string& column : mapping.metadata) {
        const json* value = row.find(column);
        document.metadata[column] = value != nullptr ? *value : json(nullptr);
    }
    if (!mapping.acl_principals.empty()) {
        if (const json* value = row.find(mapping.acl_principals)) {
            document.acl.principals = parse_name_list(json_scalar_text(*value));
        }
    }
    if (!mapping.acl_groups.empty()) {
        if (const json* value = row.find(mapping.acl_groups)) {
            document.acl.groups = parse_name_list(json_scalar_text(*value));
        }
    }
    if (document.acl.empty()) {
        document.acl = mapping.default_acl;
    }
    return document;
}

namespace {

constexpr std::pair<ColumnType, std::string_view> kColumnTypeNames[] = {
    {ColumnType::kInteger, "integer"},
    {ColumnType::kReal, "real"},
    {ColumnType::kBoolean, "boolean"},
    {ColumnType::kText, "text"}};

std::string_view column_type_name(ColumnType type) {
    for (const auto& [value, name] : kColumnTypeNames) {
        if (value == type) {
            return name;
        }
    }
    return "text";
}

std::string_view trimmed(std::string_view text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) {
        return {};
    }
    return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}

std::string lowercase(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

// `text` read as `type`; nullopt when it is not one.
std::optional<json> typed_text(ColumnType type, std::string_view text) {
    const char* begin = text.data();
    const char* end = begin + text.size();
    switch (type) {
        case ColumnType::kInteger: {
            std::int64_t value = 0;
            const char* digits = begin + (!text.empty() && text.front() == '+' ? 1 : 0);
            auto [at, error] = std::from_chars(digits, end, value);
            if (error != std::errc() || at != end || digits == end) {
                return std::nullopt;
            }
            return json(value);
        }
        case ColumnType::kReal: {
            double value = 0;
            const char* digits = begin + (!text.empty() && text.front() == '+' ? 1 : 0);
            auto [at, error] = std::from_chars(digits, end, value);
            if (error != std::errc() || at != end || digits == end || !std::isfinite(value)) {
                return std::nullopt;
            }
            return json(value);
        }
        case ColumnType::kBoolean: {
            const std::string word = lowercase(text);
            if (word == "true" || word == "yes" || word == "1") {
                return json(true);
            }
            if (word == "false" || word == "no" || word == "0") {
                return json(false);
            }
            return std::nullopt;
        }
        case ColumnType::kText:
            return json(std::string(text));
    }
    return std::nullopt;
}

// A value that is not text, of `type` already (an integer is a real too); nullopt otherwise.
std::optional<json> typed_value(ColumnType type, const json& value) {
    switch (type) {
        case ColumnType::kInteger:
            return value.is_number_integer() ? std::optional(value) : std::nullopt;
        case ColumnType::kReal:
            return value.is_number() ? std::optional(json(value.get<double>())) : std::nullopt;
        case ColumnType::kBoolean:
            return value.is_boolean() ? std::optional(value) : std::nullopt;
        case ColumnType::kText:
            return value.is_primitive() ? std::optional(json(json_scalar_text(value)))
                                        : std::nullopt;
    }
    return std::nullopt;
}

}  // namespace

Status type_row(const RowMapping& mapping, Row& row) {
    for (const auto& [column, type] : mapping.types) {
        for (std::size_t i = 0; i < row.columns.size(); ++i) {
            if (row.columns[i] != column) {
                continue;
            }
            json& value = row.values[i];
            if (value.is_null() || (value.is_string() && type == ColumnType::kText)) {
                break;
            }
            std::optional<json> typed;
            if (value.is_string()) {
                const std::string_view text = trimmed(value.get_ref<const std::string&>());
                typed = text.empty() ? json(nullptr) : typed_text(type, text);
            } else {
                typed = typed_value(type, value);
            }
            if (!typed) {
                std::string shown = json_scalar_text(value);
                if (shown.size() > 40) {
                    shown = shown.substr(0, 40) + "...";
                }
                return invalid_argument("column '" + column + "': expected " +
                                        (type == ColumnType::kInteger ? "an " : "a ") +
                                        std::string(column_type_name(type)) + ", found '" + shown +
                                        "'");
            }
            value = std::move(*typed);
            break;
        }
    }
    return Status();
}

Result<std::string> row_key(const RowMapping& mapping, const Row& row) {
    const json* value = row.find(mapping.key);
    if (value == nullptr) {
        return invalid_argument("key column '" + mapping.key + "' is missing");
    }
    if (value->is_null()) {
        return invalid_argument("key column '" + mapping.key + "' is null");
    }
    if (value->is_number_float()) {
        double number = value->get<double>();
        if (std::floor(number) == number && std::abs(number) < 1e15) {
            return std::to_string(static_cast<long long>(number));
        }
    }
    std::string key = json_scalar_text(*value);
    if (key.empty()) {
        return invalid_argument("key column '" + mapping.key + "' is empty");
    }
    return key;
}

namespace {

Result<std::vector<std::string>> names(const json& value, const std::string& where) {
    if (!value.is_array()) {
        return invalid_argument(where + ": expected an array of column names");
    }
    std::vector<std::string> out;
    for (const json& item : value) {
        if (!item.is_string() || item.get_ref<const std::string&>().empty()) {
            return invalid_argument(where + ": expected non-empty strings");
        }
        out.push_back(item.get<std::string>());
    }
    return out;
}

Result<std::map<std::string, ColumnType>> column_types(const json& value,
                                                       const std::string& where) {
    if (!value.is_object()) {
        return invalid_argument(where + ": expected an object of column: type");
    }
    std::map<std::string, ColumnType> out;
    for (const auto& [column, type] : value.items()) {
        const auto named = std::find_if(
            std::begin(kColumnTypeNames), std::end(kColumnTypeNames), [&](const auto& entry) {
                return type.is_string() && type.get_ref<const std::string&>() == entry.second;
            });
        if (named == std::end(kColumnTypeNames)) {
            return invalid_argument(where + "." + column +
                                    ": expected \"integer\", \"real\", \"boolean\" or \"text\"");
        }
        out[column] = named->first;
    }
    return out;
}

Result<std::string> name(const json& value, const std::string& where) {
    if (!value.is_string()) {
        return invalid_argument(where + ": expected a column name");
    }
    return value.get<std::string>();
}

}  // namespace

Result<RowMapping> row_mapping_from_json(const json& value, std::string_view where) {
    const std::string prefix(where);
    if (!value.is_object()) {
        return invalid_argument(prefix + ": expected an object");
    }
    RowMapping mapping;
    for (const auto& [field, item] : value.items()) {
        const std::string path = prefix + "." + field;
        if (field == "key") {
            SLUICE_ASSIGN_OR_RETURN(mapping.key, name(item, path));
        } else if (field == "text") {
            SLUICE_ASSIGN_OR_RETURN(mapping.text, names(item, path));
        } else if (field == "metadata") {
            SLUICE_ASSIGN_OR_RETURN(mapping.metadata, names(item, path));
        } else if (field == "acl_principals") {
            SLUICE_ASSIGN_OR_RETURN(mapping.acl_principals, name(item, path));
        } else if (field == "acl_groups") {
            SLUICE_ASSIGN_OR_RETURN(mapping.acl_groups, name(item, path));
        } else if (field == "acl") {
            SLUICE_ASSIGN_OR_RETURN(mapping.default_acl, acl_from_json(item, path));
        } else if (field == "types") {
            SLUICE_ASSIGN_OR_RETURN(mapping.types, column_types(item, path));
        } else if (field != "table") {
            return invalid_argument(path + ": unknown field");
        }
    }
    for (const auto& [column, type] : mapping.types) {
        if (!contains(mapping.metadata, column)) {
            return invalid_argument(prefix + ".types." + column +
                                    ": only metadata columns take a type; '" + column +
                                    "' is not in metadata");
        }
    }
    return mapping;
}

json to_json(const RowMapping& mapping) {
    json out{{"key", mapping.key}, {"text", mapping.text}, {"metadata", mapping.metadata}};
    if (!mapping.acl_principals.empty()) {
        out["acl_principals"] = mapping.acl_principals;
    }
    if (!mapping.acl_groups.empty()) {
        out["acl_groups"] = mapping.acl_groups;
    }
    if (!mapping.default_acl.empty()) {
        out["acl"] = to_json(mapping.default_acl);
    }
    if (!mapping.types.empty()) {
        json types = json::object();
        for (const auto& [column, type] : mapping.types) {
            types[column] = std::string(column_type_name(type));
        }
        out["types"] = std::move(types);
    }
    return out;
}

Result<std::vector<TableMapping>> table_mappings_from_json(const json& config) {
    auto tables = config.find("tables");
    if (tables == config.end() || !tables->is_array() || tables->empty()) {
        return invalid_argument("tables: expected a non-empty array");
    }
    std::vector<TableMapping> out;
    for (std::size_t i = 0; i < tables->size(); ++i) {
        const json& item = (*tables)[i];
        const std::string where = "tables[" + std::to_string(i) + "]";
        if (!item.is_object() || !item.contains("table") || !item["table"].is_string()) {
            return invalid_argument(where + ".table: expected a table name");
        }
        TableMapping table;
        table.table = item["table"].get<std::string>();
        SLUICE_ASSIGN_OR_RETURN(table.mapping, row_mapping_from_json(item, where));
        if (!table.mapping.types.empty()) {
            return invalid_argument(where +
                                    ".types: a table's columns have the database's own types");
        }
        out.push_back(std::move(table));
    }
    return out;
}

}  // namespace sluice::connectors
