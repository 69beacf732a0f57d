#include "connectors/row_mapping.h"

#include <algorithm>
#include <cmath>

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
        } else if (field != "table") {
            return invalid_argument(path + ": unknown field");
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
        out.push_back(std::move(table));
    }
    return out;
}

}  // namespace sluice::connectors
