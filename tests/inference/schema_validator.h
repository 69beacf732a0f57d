#pragma once
// A JSON Schema validator for the tests, written apart from the grammar compiler (it shares no
// code with inference/): it checks parsed values with standard JSON Schema semantics (absent
// additionalProperties allows anything, oneOf means exactly one), std::regex for patterns and
// hand-written format checks. `validate_prefix` checks that cut-off output text can still
// become a valid document.

#include <cmath>
#include <cstdint>
#include <regex>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

namespace sluice::inference::testing {

class SchemaValidator {
public:
    explicit SchemaValidator(nlohmann::json root) : root_(std::move(root)) {}

    // Empty when `value` is valid; otherwise what failed and where.
    std::string validate(const nlohmann::json& value) const { return check(value, root_, "$"); }

    // Empty when `text` is a prefix of some valid document; otherwise what failed.
    std::string validate_prefix(const std::string& text) const;

    static size_t code_points(const std::string& s) {
        size_t n = 0;
        for (unsigned char c : s) {
            n += (c & 0xC0) != 0x80;
        }
        return n;
    }

    static bool check_format(const std::string& format, const std::string& s) {
        auto digits = [&](size_t at, size_t n) {
            if (at + n > s.size()) return false;
            for (size_t i = at; i < at + n; ++i) {
                if (s[i] < '0' || s[i] > '9') return false;
            }
            return true;
        };
        auto number = [&](size_t at, size_t n) { return std::stoi(s.substr(at, n)); };
        auto date_ok = [&](size_t at) {
            if (!digits(at, 4) || s[at + 4] != '-' || !digits(at + 5, 2) || s[at + 7] != '-' ||
                !digits(at + 8, 2)) {
                return false;
            }
            const int year = number(at, 4), month = number(at + 5, 2), day = number(at + 8, 2);
            static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
            if (month < 1 || month > 12 || day < 1) return false;
            const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            return day <= days[month - 1] + (month == 2 && leap ? 1 : 0);
        };
        auto time_ok = [&](size_t at) {
            if (!digits(at, 2) || s.size() < at + 8 || s[at + 2] != ':' || !digits(at + 3, 2) ||
                s[at + 5] != ':' || !digits(at + 6, 2)) {
                return false;
            }
            if (number(at, 2) > 23 || number(at + 3, 2) > 59 || number(at + 6, 2) > 60) return false;
            size_t i = at + 8;
            if (i < s.size() && s[i] == '.') {
                const size_t start = ++i;
                while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
                if (i == start) return false;
            }
            if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) return i + 1 == s.size();
            if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
                return s.size() == i + 6 && digits(i + 1, 2) && s[i + 3] == ':' &&
                       digits(i + 4, 2) && number(i + 1, 2) <= 23 && number(i + 4, 2) <= 59;
            }
            return false;
        };
        if (format == "date") return s.size() == 10 && date_ok(0);
        if (format == "time") return time_ok(0);
        if (format == "date-time") {
            return s.size() > 11 && (s[10] == 'T' || s[10] == 't') && date_ok(0) && time_ok(11);
        }
        if (format == "uuid") {
            if (s.size() != 36) return false;
            for (size_t i = 0; i < 36; ++i) {
                const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
                if (dash != (s[i] == '-')) return false;
                if (!dash && !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
            }
            return true;
        }
        if (format == "email") {
            const size_t at = s.find('@');
            if (at == std::string::npos || at == 0 || s.find('@', at + 1) != std::string::npos) {
                return false;
            }
            const std::string local = s.substr(0, at), domain = s.substr(at + 1);
            if (local.front() == '.' || local.back() == '.' || local.find("..") != std::string::npos) {
                return false;
            }
            const size_t dot = domain.rfind('.');
            if (dot == std::string::npos || dot == 0 || domain.size() - dot - 1 < 2) return false;
            for (char c : domain) {
                if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') return false;
            }
            return domain.find("..") == std::string::npos;
        }
        if (format == "ipv4") {
            int parts = 0;
            size_t i = 0;
            while (i <= s.size()) {
                size_t j = i;
                while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j;
                if (j == i || j - i > 3 || (j - i > 1 && s[i] == '0') || std::stoi(s.substr(i, j - i)) > 255) {
                    return false;
                }
                ++parts;
                if (j == s.size()) break;
                if (s[j] != '.') return false;
                i = j + 1;
            }
            return parts == 4;
        }
        return false;
    }

private:
    const nlohmann::json& resolve(const nlohmann::json& schema) const {
        if (schema.is_object() && schema.contains("$ref")) {
            const std::string ref = schema["$ref"];
            return resolve(ref == "#" ? root_ : root_.at(nlohmann::json::json_pointer(ref.substr(1))));
        }
        if (schema.is_object() && schema.contains("allOf") && schema["allOf"].size() == 1) {
            return resolve(schema["allOf"][0]);
        }
        return schema;
    }

    static bool has_type(const nlohmann::json& value, const std::string& type) {
        if (type == "object") return value.is_object();
        if (type == "array") return value.is_array();
        if (type == "string") return value.is_string();
        if (type == "boolean") return value.is_boolean();
        if (type == "null") return value.is_null();
        if (type == "number") return value.is_number();
        if (type == "integer") {
            return value.is_number_integer() ||
                   (value.is_number_float() && std::trunc(value.get<double>()) == value.get<double>());
        }
        return false;
    }

    std::string check(const nlohmann::json& value, const nlohmann::json& schema_in,
                      const std::string& at) const {
        const nlohmann::json& schema = resolve(schema_in);
        if (schema.is_boolean()) {
            return schema.get<bool>() ? "" : at + ": schema false";
        }
        if (schema.contains("anyOf")) {
            for (const auto& branch : schema["anyOf"]) {
                if (check(value, branch, at).empty()) return "";
            }
            return at + ": no anyOf branch matches";
        }
        if (schema.contains("oneOf")) {
            int n = 0;
            for (const auto& branch : schema["oneOf"]) {
                n += check(value, branch, at).empty();
            }
            return n == 1 ? "" : at + ": " + std::to_string(n) + " oneOf branches match";
        }
        if (schema.contains("enum")) {
            bool found = false;
            for (const auto& option : schema["enum"]) {
                found = found || option == value;
            }
            if (!found) return at + ": not in enum";
        }
        if (schema.contains("const") && schema["const"] != value) {
            return at + ": not the const";
        }
        if (schema.contains("type")) {
            bool ok = false;
            if (schema["type"].is_string()) {
                ok = has_type(value, schema["type"]);
            } else {
                for (const auto& t : schema["type"]) ok = ok || has_type(value, t);
            }
            if (!ok) return at + ": wrong type";
        }
        if (value.is_object()) return check_object(value, schema, at);
        if (value.is_array()) {
            if (schema.contains("minItems") && value.size() < schema["minItems"].get<size_t>()) {
                return at + ": too few items";
            }
            if (schema.contains("maxItems") && value.size() > schema["maxItems"].get<size_t>()) {
                return at + ": too many items";
            }
            if (schema.contains("items")) {
                for (size_t i = 0; i < value.size(); ++i) {
                    std::string e = check(value[i], schema["items"], at + "[" + std::to_string(i) + "]");
                    if (!e.empty()) return e;
                }
            }
            return "";
        }
        if (value.is_string()) {
            const std::string s = value.get<std::string>();
            const size_t n = code_points(s);
            if (schema.contains("minLength") && n < schema["minLength"].get<size_t>()) return at + ": too short";
            if (schema.contains("maxLength") && n > schema["maxLength"].get<size_t>()) return at + ": too long";
            if (schema.contains("pattern") &&
                !std::regex_search(s, std::regex(schema["pattern"].get<std::string>(), std::regex::ECMAScript))) {
                return at + ": pattern mismatch";
            }
            if (schema.contains("format") && !check_format(schema["format"], s)) return at + ": bad format";
            return "";
        }
        if (value.is_number()) {
            const double v = value.get<double>();
            if (schema.contains("minimum") && v < schema["minimum"].get<double>()) return at + ": below minimum";
            if (schema.contains("maximum") && v > schema["maximum"].get<double>()) return at + ": above maximum";
            if (schema.contains("exclusiveMinimum") && v <= schema["exclusiveMinimum"].get<double>()) {
                return at + ": not above exclusiveMinimum";
            }
            if (schema.contains("exclusiveMaximum") && v >= schema["exclusiveMaximum"].get<double>()) {
                return at + ": not below exclusiveMaximum";
            }
        }
        return "";
    }

    std::string check_object(const nlohmann::json& value, const nlohmann::json& schema,
                             const std::string& at) const {
        if (schema.contains("required")) {
            for (const auto& name : schema["required"]) {
                if (!value.contains(name.get<std::string>())) return at + ": missing " + name.get<std::string>();
            }
        }
        for (const auto& [key, member] : value.items()) {
            const nlohmann::json* sub = nullptr;
            if (schema.contains("properties") && schema["properties"].contains(key)) {
                sub = &schema["properties"][key];
            } else if (schema.contains("additionalProperties")) {
                sub = &schema["additionalProperties"];
            }
            if (sub != nullptr) {
                std::string e = check(member, *sub, at + "." + key);
                if (!e.empty()) return e;
            }
        }
        return "";
    }

    friend class PrefixChecker;
    nlohmann::json root_;
};

}  // namespace sluice::inference::testing

#include "schema_prefix_checker.h"
