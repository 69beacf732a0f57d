#pragma once
// SchemaValidator::validate_prefix: a recursive-descent JSON reader over text that may stop
// anywhere. Complete values are checked with the full validator; a value the text stops inside
// is checked as far as its kind allows: object keys seen so far (no duplicates, and declared
// ones when additionalProperties is false), item counts, string lengths and enum prefixes, and
// literal and number spellings. Patterns and formats of an unfinished string are not checked.

#include <optional>
#include <string>
#include <vector>

namespace sluice::inference::testing {

class PrefixChecker {
public:
    PrefixChecker(const SchemaValidator& v, const std::string& text) : v_(v), t_(text) {}

    // Possible outcomes of reading one value at `pos`: the positions where it can end, or that
    // the text ran out inside it with nothing wrong so far.
    struct Outcome {
        bool ran_out = false;
        std::vector<size_t> ends;
        std::string error;
    };

    std::string run() {
        Outcome o = value(0, v_.root_, "$");
        if (o.ran_out) return "";
        for (size_t end : o.ends) {
            if (skip_ws(end) == t_.size()) return "";
        }
        return o.error.empty() ? "text continues after a complete document" : o.error;
    }

private:
    size_t skip_ws(size_t pos) const {
        while (pos < t_.size() && (t_[pos] == ' ' || t_[pos] == '\n' || t_[pos] == '\t' || t_[pos] == '\r')) ++pos;
        return pos;
    }

    // The end of the JSON string starting at `pos` ('"'), or nullopt when the text ends first.
    std::optional<size_t> string_end(size_t pos) const {
        for (size_t i = pos + 1; i < t_.size(); ++i) {
            if (t_[i] == '\\') {
                ++i;
            } else if (t_[i] == '"') {
                return i + 1;
            }
        }
        return std::nullopt;
    }

    Outcome fail(const std::string& e) const { return {false, {}, e}; }

    Outcome value(size_t pos, const nlohmann::json& schema_in, const std::string& at) {
        const nlohmann::json& schema = v_.resolve(schema_in);
        pos = skip_ws(pos);
        if (pos >= t_.size()) return {true, {}, ""};
        for (const char* key : {"anyOf", "oneOf"}) {
            if (schema.is_object() && schema.contains(key)) {
                Outcome all;
                for (const auto& branch : schema[key]) {
                    Outcome o = value(pos, branch, at);
                    all.ran_out = all.ran_out || o.ran_out;
                    all.ends.insert(all.ends.end(), o.ends.begin(), o.ends.end());
                    if (all.error.empty()) all.error = o.error;
                }
                if (all.ran_out || !all.ends.empty()) all.error.clear();
                return all;
            }
        }
        const char c = t_[pos];
        if (c == '{') return object(pos, schema, at);
        if (c == '[') return array(pos, schema, at);
        // Scalars: the extent of the token, then the full validator when it is complete.
        size_t end = pos;
        bool complete = false;
        if (c == '"') {
            auto e = string_end(pos);
            complete = e.has_value();
            end = e.value_or(t_.size());
        } else {
            while (end < t_.size() && std::string("+-.0123456789eEtruefalsn").find(t_[end]) != std::string::npos) ++end;
            complete = end < t_.size();
        }
        const std::string piece = t_.substr(pos, end - pos);
        if (complete) {
            auto parsed = nlohmann::json::parse(piece, nullptr, false);
            if (parsed.is_discarded()) return fail(at + ": malformed scalar " + piece);
            std::string e = v_.check(parsed, schema, at);
            if (!e.empty()) return fail(e);
            return {false, {end}, ""};
        }
        return partial_scalar(piece, schema, at);
    }

    Outcome partial_scalar(const std::string& piece, const nlohmann::json& schema, const std::string& at) {
        if (schema.is_object() && (schema.contains("enum") || schema.contains("const"))) {
            std::vector<nlohmann::json> options;
            if (schema.contains("const")) options.push_back(schema["const"]);
            if (schema.contains("enum")) options.insert(options.end(), schema["enum"].begin(), schema["enum"].end());
            for (const auto& option : options) {
                if (option.dump().compare(0, piece.size(), piece) == 0) return {true, {}, ""};
            }
            return fail(at + ": no enum value starts with " + piece);
        }
        if (piece[0] == '"') {
            // Decode what is there; an unfinished escape at the end is left out.
            auto decoded = nlohmann::json::parse(piece + "\"", nullptr, false);
            for (size_t cut = 1; decoded.is_discarded() && cut < 7 && cut < piece.size(); ++cut) {
                decoded = nlohmann::json::parse(piece.substr(0, piece.size() - cut) + "\"", nullptr, false);
            }
            if (decoded.is_discarded()) return fail(at + ": malformed string start");
            if (schema.is_object() && schema.contains("maxLength") &&
                SchemaValidator::code_points(decoded.get<std::string>()) > schema["maxLength"].get<size_t>()) {
                return fail(at + ": string already too long");
            }
            return {true, {}, ""};
        }
        for (const char* word : {"true", "false", "null"}) {
            if (std::string(word).compare(0, piece.size(), piece) == 0) return {true, {}, ""};
        }
        static const std::regex number_prefix(R"(-?(0|[1-9][0-9]*)?(\.[0-9]*)?([eE][+-]?[0-9]*)?)");
        if (std::regex_match(piece, number_prefix)) return {true, {}, ""};
        return fail(at + ": malformed scalar start " + piece);
    }

    bool allows_type(const nlohmann::json& schema, const std::string& type) const {
        if (!schema.is_object() || !schema.contains("type")) return true;
        if (schema["type"].is_string()) return schema["type"] == type;
        for (const auto& t : schema["type"]) {
            if (t == type) return true;
        }
        return false;
    }

    Outcome object(size_t pos, const nlohmann::json& schema, const std::string& at) {
        if (!allows_type(schema, "object")) return fail(at + ": an object where the schema has no object type");
        std::set<std::string> seen;
        pos = skip_ws(pos + 1);
        if (pos >= t_.size()) return {true, {}, ""};
        if (t_[pos] == '}') return close_object(pos, schema, seen, at);
        return member(pos, schema, seen, at);
    }

    Outcome close_object(size_t pos, const nlohmann::json& schema, const std::set<std::string>& seen,
                         const std::string& at) {
        if (schema.is_object() && schema.contains("required")) {
            for (const auto& name : schema["required"]) {
                if (!seen.contains(name.get<std::string>())) return fail(at + ": closed without " + name.get<std::string>());
            }
        }
        return {false, {pos + 1}, ""};
    }

    Outcome member(size_t pos, const nlohmann::json& schema, std::set<std::string> seen, const std::string& at) {
        if (t_[pos] != '"') return fail(at + ": expected a key");
        const bool closed = schema.is_object() && schema.contains("additionalProperties") &&
                            schema["additionalProperties"] == false;
        auto key_end = string_end(pos);
        if (!key_end) {
            if (!closed) return {true, {}, ""};
            const std::string partial = t_.substr(pos + 1);
            for (const auto& [name, sub] : schema["properties"].items()) {
                if (name.compare(0, partial.size(), partial) == 0) return {true, {}, ""};
            }
            return fail(at + ": no declared key starts with " + partial);
        }
        const std::string key = nlohmann::json::parse(t_.substr(pos, *key_end - pos)).get<std::string>();
        if (!seen.insert(key).second) return fail(at + ": duplicate key " + key);
        nlohmann::json sub = true;
        if (schema.is_object() && schema.contains("properties") && schema["properties"].contains(key)) {
            sub = schema["properties"][key];
        } else if (schema.is_object() && schema.contains("additionalProperties")) {
            sub = schema["additionalProperties"];
            if (sub == false) return fail(at + ": undeclared key " + key);
        }
        pos = skip_ws(*key_end);
        if (pos >= t_.size()) return {true, {}, ""};
        if (t_[pos] != ':') return fail(at + ": expected ':'");
        Outcome v = value(pos + 1, sub, at + "." + key);
        if (v.ran_out) return v;
        Outcome all;
        for (size_t end : v.ends) {
            size_t p = skip_ws(end);
            Outcome next;
            if (p >= t_.size()) {
                next.ran_out = true;
            } else if (t_[p] == '}') {
                next = close_object(p, schema, seen, at);
            } else if (t_[p] == ',') {
                p = skip_ws(p + 1);
                next = p >= t_.size() ? Outcome{true, {}, ""} : member(p, schema, seen, at);
            } else {
                next = fail(at + ": expected ',' or '}'");
            }
            all.ran_out = all.ran_out || next.ran_out;
            all.ends.insert(all.ends.end(), next.ends.begin(), next.ends.end());
            if (all.error.empty()) all.error = next.error;
        }
        if (all.ends.empty() && !all.ran_out && all.error.empty()) all.error = v.error;
        return all;
    }

    Outcome array(size_t pos, const nlohmann::json& schema, const std::string& at) {
        if (!allows_type(schema, "array")) return fail(at + ": an array where the schema has no array type");
        const nlohmann::json items = schema.is_object() && schema.contains("items") ? schema["items"] : nlohmann::json(true);
        const size_t max = schema.is_object() && schema.contains("maxItems") ? schema["maxItems"].get<size_t>() : SIZE_MAX;
        const size_t min = schema.is_object() && schema.contains("minItems") ? schema["minItems"].get<size_t>() : 0;
        pos = skip_ws(pos + 1);
        if (pos >= t_.size()) return {true, {}, ""};
        if (t_[pos] == ']') return min == 0 ? Outcome{false, {pos + 1}, ""} : fail(at + ": too few items");
        return element(pos, items, 0, min, max, at);
    }

    Outcome element(size_t pos, const nlohmann::json& items, size_t index, size_t min, size_t max,
                    const std::string& at) {
        if (index >= max) return fail(at + ": too many items");
        Outcome v = value(pos, items, at + "[" + std::to_string(index) + "]");
        if (v.ran_out) return v;
        Outcome all;
        for (size_t end : v.ends) {
            size_t p = skip_ws(end);
            Outcome next;
            if (p >= t_.size()) {
                next.ran_out = true;
            } else if (t_[p] == ']') {
                next = index + 1 >= min ? Outcome{false, {p + 1}, ""} : fail(at + ": too few items");
            } else if (t_[p] == ',') {
                p = skip_ws(p + 1);
                next = p >= t_.size() ? Outcome{true, {}, ""} : element(p, items, index + 1, min, max, at);
            } else {
                next = fail(at + ": expected ',' or ']'");
            }
            all.ran_out = all.ran_out || next.ran_out;
            all.ends.insert(all.ends.end(), next.ends.begin(), next.ends.end());
            if (all.error.empty()) all.error = next.error;
        }
        if (all.ends.empty() && !all.ran_out && all.error.empty()) all.error = v.error;
        return all;
    }

    const SchemaValidator& v_;
    const std::string& t_;
};

inline std::string SchemaValidator::validate_prefix(const std::string& text) const {
    return PrefixChecker(*this, text).run();
}

}  // namespace sluice::inference::testing
