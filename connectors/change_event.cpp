#include "connectors/change_event.h"

#include <algorithm>

namespace sluice::connectors {

using nlohmann::json;

std::string_view op_name(Op op) {
    switch (op) {
        case Op::kUpsert: return "upsert";
        case Op::kDelete: return "delete";
    }
    return "upsert";
}

Result<Op> parse_op(std::string_view name) {
    if (name == "upsert") {
        return Op::kUpsert;
    }
    if (name == "delete") {
        return Op::kDelete;
    }
    return invalid_argument("op '" + std::string(name) + "': expected 'upsert' or 'delete'");
}

json to_json(const Acl& acl) {
    return json{{"principals", acl.principals}, {"groups", acl.groups}};
}

json to_json(const ChangeEvent& event) {
    json out{{"key", event.key}, {"op", op_name(event.op)}, {"offset", event.offset}};
    if (event.op == Op::kUpsert) {
        out["document"] = json{{"text", event.document.text},
                               {"metadata", event.document.metadata},
                               {"acl", to_json(event.document.acl)}};
    }
    return out;
}

json to_json(const ErrorRecord& error) {
    return json{{"error", error.message}, {"key", error.key}, {"offset", error.offset}};
}

namespace {

Result<std::vector<std::string>> string_list(const json& value, const std::string& where) {
    if (!value.is_array()) {
        return invalid_argument(where + ": expected an array of strings");
    }
    std::vector<std::string> out;
    for (std::size_t i = 0; i < value.size(); ++i) {
        if (!value[i].is_string() || value[i].get_ref<const std::string&>().empty()) {
            return invalid_argument(where + "[" + std::to_string(i) +
                                    "]: expected a non-empty string");
        }
        out.push_back(value[i].get<std::string>());
    }
    return out;
}

}  // namespace

Result<Acl> acl_from_json(const json& value, std::string_view where) {
    const std::string prefix(where);
    if (!value.is_object()) {
        return invalid_argument(prefix + ": expected an object with 'principals' and 'groups'");
    }
    Acl acl;
    for (const auto& [field, item] : value.items()) {
        if (field == "principals") {
            SLUICE_ASSIGN_OR_RETURN(acl.principals, string_list(item, prefix + ".principals"));
        } else if (field == "groups") {
            SLUICE_ASSIGN_OR_RETURN(acl.groups, string_list(item, prefix + ".groups"));
        } else {
            return invalid_argument(prefix + "." + field + ": unknown field");
        }
    }
    return acl;
}

Result<ChangeEvent> change_event_from_json(const json& value, std::string_view where) {
    const std::string prefix(where);
    if (!value.is_object()) {
        return invalid_argument(prefix + ": expected an object");
    }
    ChangeEvent event;
    auto key = value.find("key");
    if (key == value.end() || !key->is_string() || key->get_ref<const std::string&>().empty()) {
        return invalid_argument(prefix + ".key: expected a non-empty string");
    }
    event.key = key->get<std::string>();
    if (event.key.size() > 1024) {
        return invalid_argument(prefix + ".key: longer than 1024 bytes");
    }
    auto op = value.find("op");
    if (op == value.end() || !op->is_string()) {
        return invalid_argument(prefix + ".op: expected 'upsert' or 'delete'");
    }
    auto parsed_op = parse_op(op->get<std::string>());
    if (!parsed_op) {
        return parsed_op.status().with_context(prefix + ".op");
    }
    event.op = *parsed_op;
    for (const auto& [field, item] : value.items()) {
        if (field != "key" && field != "op" && field != "document") {
            return invalid_argument(prefix + "." + field + ": unknown field");
        }
    }
    auto document = value.find("document");
    if (event.op == Op::kDelete) {
        if (document != value.end() && !document->is_null()) {
            return invalid_argument(prefix + ".document: a delete carries no document");
        }
        return event;
    }
    if (document == value.end() || !document->is_object()) {
        return invalid_argument(prefix + ".document: expected an object");
    }
    for (const auto& [field, item] : document->items()) {
        const std::string name = prefix + ".document." + field;
        if (field == "text") {
            if (!item.is_string()) {
                return invalid_argument(name + ": expected a string");
            }
            event.document.text = item.get<std::string>();
        } else if (field == "metadata") {
            if (!item.is_object()) {
                return invalid_argument(name + ": expected an object");
            }
            event.document.metadata = item;
        } else if (field == "acl") {
            SLUICE_ASSIGN_OR_RETURN(event.document.acl, acl_from_json(item, name));
        } else {
            return invalid_argument(name + ": unknown field");
        }
    }
    if (document->find("text") == document->end()) {
        return invalid_argument(prefix + ".document.text: missing");
    }
    return event;
}

std::string dump_json(const json& value) {
    return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::vector<std::string> parse_name_list(std::string_view text) {
    std::vector<std::string> out;
    auto trimmed = [](std::string_view s) {
        while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
            s.remove_prefix(1);
        }
        while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
            s.remove_suffix(1);
        }
        return s;
    };
    std::string_view body = trimmed(text);
    if (!body.empty() && body.front() == '[') {
        json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
        if (parsed.is_array()) {
            for (const json& item : parsed) {
                if (item.is_string() && !item.get_ref<const std::string&>().empty()) {
                    out.push_back(item.get<std::string>());
                }
            }
            return out;
        }
    }
    std::size_t start = 0;
    while (start <= body.size()) {
        std::size_t comma = body.find(',', start);
        if (comma == std::string_view::npos) {
            comma = body.size();
        }
        std::string_view name = trimmed(body.substr(start, comma - start));
        if (!name.empty() && std::find(out.begin(), out.end(), name) == out.end()) {
            out.emplace_back(name);
        }
        start = comma + 1;
    }
    return out;
}

}  // namespace sluice::connectors
