#include "agents/argument_check.h"

#include <string>

namespace sluice::agents {
namespace {

using nlohmann::json;

std::string type_of(const json& value) {
    if (value.is_null()) return "null";
    if (value.is_boolean()) return "boolean";
    if (value.is_number_integer() || value.is_number_unsigned()) return "integer";
    if (value.is_number()) return "number";
    if (value.is_string()) return "string";
    if (value.is_array()) return "array";
    return "object";
}

bool has_type(const json& value, const std::string& type) {
    std::string actual = type_of(value);
    if (actual == type) {
        return true;
    }
    // An integral double (3.0) is an integer in JSON Schema; every integer is a number.
    if (type == "number" && actual == "integer") {
        return true;
    }
    return type == "integer" && value.is_number_float() &&
           value.get<double>() == static_cast<double>(static_cast<long long>(value.get<double>()));
}

Status fail(const std::string& path, const std::string& what) {
    return invalid_argument(path + ": " + what);
}

Status check(const json& schema, const json& value, const std::string& path) {
    if (schema.is_boolean()) {
        return schema.get<bool>() ? Status() : fail(path, "no value is allowed here");
    }
    if (!schema.is_object()) {
        return Status();
    }
    if (auto type = schema.find("type"); type != schema.end()) {
        bool match = false;
        std::string expected;
        if (type->is_string()) {
            match = has_type(value, type->get<std::string>());
            expected = type->get<std::string>();
        } else if (type->is_array()) {
            for (const json& one : *type) {
                if (one.is_string()) {
                    match = match || has_type(value, one.get<std::string>());
                    expected += (expected.empty() ? "" : " or ") + one.get<std::string>();
                }
            }
        } else {
            match = true;
        }
        if (!match) {
            return fail(path, "expected " + expected + ", found " + type_of(value));
        }
    }
    if (auto allowed = schema.find("enum"); allowed != schema.end() && allowed->is_array()) {
        bool found = false;
        for (const json& one : *allowed) {
            found = found || one == value;
        }
        if (!found) {
            return fail(path, "expected one of " + allowed->dump() + ", found " + value.dump());
        }
    }
    if (auto constant = schema.find("const"); constant != schema.end() && *constant != value) {
        return fail(path, "expected " + constant->dump() + ", found " + value.dump());
    }
    if (value.is_number()) {
        double number = value.get<double>();
        if (schema.contains("minimum") && schema["minimum"].is_number() &&
            number < schema["minimum"].get<double>()) {
            return fail(path, "expected at least " + schema["minimum"].dump() + ", found " +
                                  value.dump());
        }
        if (schema.contains("maximum") && schema["maximum"].is_number() &&
            number > schema["maximum"].get<double>()) {
            return fail(path, "expected at most " + schema["maximum"].dump() + ", found " +
                                  value.dump());
        }
    }
    if (value.is_string()) {
        // Lengths count code points, as JSON Schema does.
        size_t length = 0;
        for (unsigned char c : value.get_ref<const std::string&>()) {
            length += (c & 0xC0) != 0x80 ? 1 : 0;
        }
        if (schema.contains("minLength") && schema["minLength"].is_number_integer() &&
            length < static_cast<size_t>(schema["minLength"].get<std::int64_t>())) {
            return fail(path, "expected at least " + schema["minLength"].dump() +
                                  " characters, found " + std::to_string(length));
        }
        if (schema.contains("maxLength") && schema["maxLength"].is_number_integer() &&
            length > static_cast<size_t>(schema["maxLength"].get<std::int64_t>())) {
            return fail(path, "expected at most " + schema["maxLength"].dump() +
                                  " characters, found " + std::to_string(length));
        }
    }
    if (value.is_array()) {
        if (schema.contains("minItems") && schema["minItems"].is_number_integer() &&
            value.size() < static_cast<size_t>(schema["minItems"].get<std::int64_t>())) {
            return fail(path, "expected at least " + schema["minItems"].dump() + " items, found " +
                                  std::to_string(value.size()));
        }
        if (schema.contains("maxItems") && schema["maxItems"].is_number_integer() &&
            value.size() > static_cast<size_t>(schema["maxItems"].get<std::int64_t>())) {
            return fail(path, "expected at most " + schema["maxItems"].dump() + " items, found " +
                                  std::to_string(value.size()));
        }
        if (auto items = schema.find("items"); items != schema.end()) {
            for (size_t i = 0; i < value.size(); ++i) {
                SLUICE_RETURN_IF_ERROR(check(*items, value[i], path + "[" + std::to_string(i) + "]"));
            }
        }
    }
    if (value.is_object()) {
        const json properties = schema.value("properties", json::object());
        if (auto required = schema.find("required"); required != schema.end() &&
                                                     required->is_array()) {
            for (const json& name : *required) {
                if (name.is_string() && !value.contains(name.get<std::string>())) {
                    return fail(path, "missing required property '" + name.get<std::string>() +
                                          "'");
                }
            }
        }
        for (const auto& [key, member] : value.items()) {
            std::string member_path = path + "." + key;
            if (properties.contains(key)) {
                SLUICE_RETURN_IF_ERROR(check(properties[key], member, member_path));
                continue;
            }
            if (auto extra = schema.find("additionalProperties"); extra != schema.end()) {
                if (extra->is_boolean() && !extra->get<bool>()) {
                    return fail(path, "unknown property '" + key + "'");
                }
                SLUICE_RETURN_IF_ERROR(check(*extra, member, member_path));
            }
        }
    }
    return Status();
}

}  // namespace

Status check_arguments(const json& schema, const json& value) {
    return check(schema, value, "arguments");
}

}  // namespace sluice::agents
