#include "inference/detail/json_schema_compiler.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace sluice::inference::detail {

namespace {

using OJson = nlohmann::ordered_json;

// Keywords that describe without constraining; accepted anywhere and ignored.
const std::set<std::string, std::less<>> kAnnotations = {
    "title",    "description", "default",  "examples",  "$schema", "$id",
    "$comment", "deprecated",  "readOnly", "writeOnly", "$defs",   "definitions"};

const std::set<std::string, std::less<>> kObjectKeywords = {"properties", "required",
                                                            "additionalProperties"};
const std::set<std::string, std::less<>> kArrayKeywords = {"items", "minItems", "maxItems"};
const std::set<std::string, std::less<>> kStringKeywords = {"minLength", "maxLength", "pattern",
                                                            "format"};
const std::set<std::string, std::less<>> kNumberKeywords = {"minimum", "maximum",
                                                            "exclusiveMinimum", "exclusiveMaximum"};
const std::set<std::string, std::less<>> kOtherKeywords = {"type", "enum",  "const", "anyOf",
                                                           "oneOf", "allOf", "$ref", "nullable"};

bool is_annotation(const std::string& key) {
    return kAnnotations.contains(key) || key.starts_with("x-");
}

std::string shown_path(const std::string& path) { return path.empty() ? "/" : path; }

// JSON pointer escaping of one path segment.
std::string segment(const std::string& key) {
    std::string out;
    for (char c : key) {
        out += c == '~' ? std::string("~0") : c == '/' ? std::string("~1") : std::string(1, c);
    }
    return out;
}

bool matches_type(const OJson& value, const std::string& type) {
    if (type == "object") return value.is_object();
    if (type == "array") return value.is_array();
    if (type == "string") return value.is_string();
    if (type == "boolean") return value.is_boolean();
    if (type == "null") return value.is_null();
    if (type == "number") return value.is_number();
    if (type == "integer") {
        return value.is_number_integer() ||
               (value.is_number_float() && std::floor(value.get<double>()) == value.get<double>());
    }
    return false;
}

}  // namespace

SchemaCompiler::SchemaCompiler(JsonParts& parts, const OJson& root) : parts_(parts), root_(root) {}

Status SchemaCompiler::error(const std::string& what, const std::string& path) const {
    return invalid_argument(what + " at " + shown_path(path));
}

Result<int32_t> SchemaCompiler::compile(const OJson& schema, const std::string& path) {
    if (++depth_ > 128) {
        return error("schema nested more than 128 levels", path);
    }
    auto result = compile_inner(schema, path);
    --depth_;
    return result;
}

Result<int32_t> SchemaCompiler::compile_inner(const OJson& schema, const std::string& path) {
    Grammar& g = parts_.grammar();
    if (schema.is_boolean()) {
        if (!schema.get<bool>()) {
            return error("schema 'false' matches nothing", path);
        }
        return parts_.any_value();
    }
    if (!schema.is_object()) {
        return error("a schema must be an object or a boolean", path);
    }
    std::vector<std::string> constraints;
    for (const auto& [key, value] : schema.items()) {
        if (is_annotation(key)) {
            continue;
        }
        if (!kObjectKeywords.contains(key) && !kArrayKeywords.contains(key) &&
            !kStringKeywords.contains(key) && !kNumberKeywords.contains(key) &&
            !kOtherKeywords.contains(key)) {
            return error("unsupported JSON Schema keyword '" + key + "'", path);
        }
        constraints.push_back(key);
    }
    auto only = [&](const std::string& keyword,
                    std::initializer_list<const char*> also) -> Status {
        for (const std::string& key : constraints) {
            if (key == keyword) {
                continue;
            }
            bool allowed = false;
            for (const char* a : also) {
                allowed = allowed || key == a;
            }
            if (!allowed) {
                return error("keyword '" + key + "' next to '" + keyword + "' is unsupported", path);
            }
        }
        return Status::ok_status();
    };
    const bool nullable = schema.contains("nullable") && schema["nullable"].is_boolean() &&
                          schema["nullable"].get<bool>();
    auto with_null = [&](int32_t rule) {
        if (!nullable) {
            return rule;
        }
        return g.rule_of("nullable", {{Grammar::ref(rule)}, g.literal("null")});
    };
    if (schema.contains("$ref")) {
        SLUICE_RETURN_IF_ERROR(only("$ref", {}));
        if (!schema["$ref"].is_string()) {
            return error("'$ref' must be a string", path);
        }
        return resolve_ref(schema["$ref"].get<std::string>(), path);
    }
    if (schema.contains("allOf")) {
        SLUICE_RETURN_IF_ERROR(only("allOf", {}));
        if (!schema["allOf"].is_array() || schema["allOf"].size() != 1) {
            return error("'allOf' with other than exactly one subschema is unsupported", path);
        }
        return compile(schema["allOf"][0], path + "/allOf/0");
    }
    for (const char* keyword : {"anyOf", "oneOf"}) {
        if (!schema.contains(keyword)) {
            continue;
        }
        SLUICE_RETURN_IF_ERROR(only(keyword, {"nullable"}));
        const OJson& branches = schema[keyword];
        if (!branches.is_array() || branches.empty()) {
            return error(std::string("'") + keyword + "' must be a non-empty array", path);
        }
        GrammarAlternatives alts;
        for (size_t i = 0; i < branches.size(); ++i) {
            SLUICE_ASSIGN_OR_RETURN(
                int32_t branch,
                compile(branches[i], path + "/" + keyword + "/" + std::to_string(i)));
            alts.push_back({Grammar::ref(branch)});
        }
        return with_null(g.rule_of(keyword, std::move(alts)));
    }

    // Types: listed, or implied by the keywords present, or any.
    std::vector<std::string> types;
    if (schema.contains("type")) {
        const OJson& type = schema["type"];
        if (type.is_string()) {
            types.push_back(type.get<std::string>());
        } else if (type.is_array() && !type.empty()) {
            for (const OJson& t : type) {
                if (!t.is_string()) {
                    return error("'type' entries must be strings", path);
                }
                types.push_back(t.get<std::string>());
            }
        } else {
            return error("'type' must be a string or a non-empty array", path);
        }
        for (const std::string& t : types) {
            if (t != "object" && t != "array" && t != "string" && t != "number" &&
                t != "integer" && t != "boolean" && t != "null") {
                return error("unknown type '" + t + "'", path);
            }
        }
    }
    if (nullable) {
        types.push_back("null");
    }

    if (schema.contains("enum") || schema.contains("const")) {
        const bool is_enum = schema.contains("enum");
        SLUICE_RETURN_IF_ERROR(only(is_enum ? "enum" : "const", {"type", "nullable"}));
        std::vector<OJson> values;
        if (is_enum) {
            if (!schema["enum"].is_array() || schema["enum"].empty()) {
                return error("'enum' must be a non-empty array", path);
            }
            values.assign(schema["enum"].begin(), schema["enum"].end());
        } else {
            values.push_back(schema["const"]);
        }
        GrammarAlternatives alts;
        std::set<std::string> seen;
        for (const OJson& value : values) {
            bool typed = types.empty();
            for (const std::string& t : types) {
                typed = typed || matches_type(value, t);
            }
            const std::string text = value.dump();
            if (typed && seen.insert(text).second) {
                alts.push_back({Grammar::ref(parts_.literal(text))});
            }
        }
        if (nullable && !seen.contains("null")) {
            alts.push_back(g.literal("null"));
        }
        if (alts.empty()) {
            return error("no value of 'enum' or 'const' has the schema's type", path);
        }
        return g.rule_of("enum", std::move(alts));
    }

    if (types.empty() || (types.size() == 1 && nullable)) {
        auto has_any = [&](const std::set<std::string, std::less<>>& keywords) {
            for (const std::string& key : constraints) {
                if (keywords.contains(key)) {
                    return true;
                }
            }
            return false;
        };
        if (has_any(kObjectKeywords)) types.push_back("object");
        if (has_any(kArrayKeywords)) types.push_back("array");
        if (has_any(kStringKeywords)) types.push_back("string");
        if (has_any(kNumberKeywords)) types.push_back("number");
        if (types.empty() || (types.size() == 1 && nullable)) {
            return with_null(parts_.any_value());
        }
    }
    const bool has_number = std::find(types.begin(), types.end(), "number") != types.end();
    GrammarAlternatives alts;
    std::set<std::string> done;
    for (const std::string& type : types) {
        if (!done.insert(type).second || (type == "integer" && has_number)) {
            continue;
        }
        int32_t rule = -1;
        if (type == "object") {
            SLUICE_ASSIGN_OR_RETURN(rule, object_rule(schema, path));
        } else if (type == "array") {
            SLUICE_ASSIGN_OR_RETURN(rule, array_rule(schema, path));
        } else if (type == "string") {
            SLUICE_ASSIGN_OR_RETURN(rule, string_rule(schema, path));
        } else if (type == "number" || type == "integer") {
            SLUICE_ASSIGN_OR_RETURN(rule, number_rule(schema, path, type == "integer"));
        } else if (type == "boolean") {
            rule = g.rule_of("boolean", {g.literal("true"), g.literal("false")});
        } else {
            rule = parts_.literal("null");
        }
        alts.push_back({Grammar::ref(rule)});
    }
    if (alts.size() == 1) {
        return alts[0][0].index;
    }
    return g.rule_of("types", std::move(alts));
}

Result<int32_t> SchemaCompiler::resolve_ref(const std::string& ref, const std::string& path) {
    if (auto it = refs_.find(ref); it != refs_.end()) {
        return it->second;
    }
    if (ref.empty() || ref[0] != '#') {
        return error("'$ref' to '" + ref + "' is unsupported (only '#', '#/$defs/...' and "
                     "'#/definitions/...' within the schema)", path);
    }
    const OJson* target = &root_;
    std::string pointer = ref.substr(1);
    try {
        if (!pointer.empty()) {
            target = &root_.at(OJson::json_pointer(pointer));
        }
    } catch (const std::exception&) {
        return error("'$ref' to '" + ref + "' names nothing in the schema", path);
    }
    // The rule exists before its body compiles, so recursive references find it.
    Grammar& g = parts_.grammar();
    const int32_t rule = g.add_rule("ref");
    refs_[ref] = rule;
    SLUICE_ASSIGN_OR_RETURN(int32_t body, compile(*target, pointer));
    g.add_alternative(rule, {Grammar::ref(body)});
    return rule;
}


Result<int32_t> SchemaCompiler::object_rule(const OJson& schema, const std::string& path) {
    Grammar& g = parts_.grammar();
    struct Property {
        std::string name;
        int32_t value;
        bool required;
    };
    std::vector<Property> properties;
    std::set<std::string> required;
    if (schema.contains("required")) {
        if (!schema["required"].is_array()) {
            return error("'required' must be an array of strings", path);
        }
        for (const OJson& name : schema["required"]) {
            if (!name.is_string()) {
                return error("'required' must be an array of strings", path);
            }
            required.insert(name.get<std::string>());
        }
    }
    if (schema.contains("properties")) {
        if (!schema["properties"].is_object()) {
            return error("'properties' must be an object", path);
        }
        for (const auto& [name, sub] : schema["properties"].items()) {
            SLUICE_ASSIGN_OR_RETURN(int32_t value,
                                    compile(sub, path + "/properties/" + segment(name)));
            properties.push_back({name, value, required.contains(name)});
        }
    }
    for (const std::string& name : required) {
        const bool listed = std::any_of(properties.begin(), properties.end(),
                                        [&](const Property& p) { return p.name == name; });
        if (!listed) {
            properties.push_back({name, parts_.any_value(), true});
        }
    }
    // additionalProperties: absent means false, as in OpenAI's strict structured outputs: a
    // generated object holds the declared properties only.
    int32_t extra_value = -1;
    if (schema.contains("additionalProperties")) {
        const OJson& additional = schema["additionalProperties"];
        if (!additional.is_boolean() || additional.get<bool>()) {
            SLUICE_ASSIGN_OR_RETURN(extra_value, compile(additional, path + "/additionalProperties"));
        }
    }
    const GrammarSequence comma{g.byte(',')};
    const GrammarSequence close{g.byte('}')};
    int32_t after_some = -1;  // the rest once a property was written
    int32_t after_none = -1;  // the rest while none was
    if (extra_value >= 0) {
        std::vector<std::string> names;
        for (const Property& p : properties) {
            for (unsigned char c : p.name) {
                if (c < 0x20 || c >= 0x7F || c == '"' || c == '\\') {
                    return error("'additionalProperties' next to property names with characters "
                                 "that need escaping or are not ASCII is unsupported", path);
                }
            }
            names.push_back(p.name);
        }
        const GrammarSequence key_colon{Grammar::ref(parts_.string_except(names)), g.byte(':')};
        const GrammarSequence value{Grammar::ref(extra_value)};
        after_some = g.repeat("extra_properties", spaced_parts({comma, key_colon, value}), 0, -1,
                              close);
        after_none = g.add_rule("extra_properties");
        g.add_alternative(after_none, close);
        for (GrammarSequence s : spaced_parts({key_colon, value})) {
            s.push_back(Grammar::ref(after_some));
            g.add_alternative(after_none, std::move(s));
        }
    } else {
        after_some = g.rule_of("object_end", {close});
        after_none = after_some;
    }
    for (auto it = properties.rbegin(); it != properties.rend(); ++it) {
        GrammarSequence key_colon = g.literal(OJson(it->name).dump());
        key_colon.push_back(g.byte(':'));
        const GrammarSequence value{Grammar::ref(it->value)};
        const int32_t some = g.add_rule("properties");
        const int32_t none = g.add_rule("properties");
        for (GrammarSequence s : spaced_parts({comma, key_colon, value})) {
            s.push_back(Grammar::ref(after_some));
            g.add_alternative(some, std::move(s));
        }
        for (GrammarSequence s : spaced_parts({key_colon, value})) {
            s.push_back(Grammar::ref(after_some));
            g.add_alternative(none, std::move(s));
        }
        if (!it->required) {
            g.add_alternative(some, {Grammar::ref(after_some)});
            g.add_alternative(none, {Grammar::ref(after_none)});
        }
        after_some = some;
        after_none = none;
    }
    return g.rule_of("object", {{g.byte('{'), Grammar::ref(after_none)}});
}

GrammarAlternatives SchemaCompiler::spaced_parts(const std::vector<GrammarSequence>& parts) {
    // One optional space between parts: after ',' and after ':' in this layout.
    Grammar& g = parts_.grammar();
    GrammarAlternatives out{parts.front()};
    for (size_t i = 1; i < parts.size(); ++i) {
        GrammarAlternatives next;
        for (const GrammarSequence& base : out) {
            next.push_back(base);
            next.back().insert(next.back().end(), parts[i].begin(), parts[i].end());
            next.push_back(base);
            next.back().push_back(g.byte(' '));
            next.back().insert(next.back().end(), parts[i].begin(), parts[i].end());
        }
        out = std::move(next);
    }
    return out;
}

Result<int64_t> SchemaCompiler::count(const OJson& schema, const char* keyword,
                                      const std::string& path) const {
    const OJson& value = schema[keyword];
    if (value.is_number_unsigned() ||
        (value.is_number_integer() && value.get<int64_t>() >= 0)) {
        return std::min<int64_t>(value.get<int64_t>(), int64_t{1} << 40);
    }
    if (value.is_number_float() && value.get<double>() >= 0 &&
        std::floor(value.get<double>()) == value.get<double>()) {
        return static_cast<int64_t>(std::min(value.get<double>(), 1e12));
    }
    return error(std::string("'") + keyword + "' must be a non-negative integer", path);
}

Result<int32_t> SchemaCompiler::array_rule(const OJson& schema, const std::string& path) {
    Grammar& g = parts_.grammar();
    int64_t min = 0;
    int64_t max = -1;
    if (schema.contains("minItems")) {
        SLUICE_ASSIGN_OR_RETURN(min, count(schema, "minItems", path));
    }
    if (schema.contains("maxItems")) {
        SLUICE_ASSIGN_OR_RETURN(max, count(schema, "maxItems", path));
    }
    if (max >= 0 && max < min) {
        return error("'maxItems' is below 'minItems'", path);
    }
    if (max > kMaxRepetition || min > kMaxRepetition) {
        return error("'minItems' or 'maxItems' above " + std::to_string(kMaxRepetition) +
                     " is unsupported", path);
    }
    const OJson items = schema.contains("items") ? schema["items"] : OJson(true);
    if (items.is_boolean() && !items.get<bool>()) {
        if (min > 0) {
            return error("'items' is false but 'minItems' is above zero", path);
        }
        max = 0;
    }
    const int32_t array = g.add_rule("array");
    if (min == 0) {
        g.add_alternative(array, {g.byte('['), g.byte(']')});
    }
    if (max != 0) {
        SLUICE_ASSIGN_OR_RETURN(int32_t item, compile(items, path + "/items"));
        const int32_t rest =
            g.repeat("items", spaced_parts({{g.byte(',')}, {Grammar::ref(item)}}),
                     std::max<int64_t>(min - 1, 0), max < 0 ? -1 : max - 1, {g.byte(']')});
        g.add_alternative(array, {g.byte('['), Grammar::ref(item), Grammar::ref(rest)});
    }
    return array;
}

Result<int32_t> SchemaCompiler::string_rule(const OJson& schema, const std::string& path) {
    const bool has_length = schema.contains("minLength") || schema.contains("maxLength");
    const int n_kinds = (has_length ? 1 : 0) + (schema.contains("pattern") ? 1 : 0) +
                        (schema.contains("format") ? 1 : 0);
    if (n_kinds > 1) {
        return error("more than one of length bounds, 'pattern' and 'format' on one string is "
                     "unsupported", path);
    }
    if (schema.contains("pattern")) {
        if (!schema["pattern"].is_string()) {
            return error("'pattern' must be a string", path);
        }
        auto rule = parts_.string_matching(schema["pattern"].get<std::string>());
        if (!rule.ok()) {
            return rule.status().with_context("at " + shown_path(path));
        }
        return rule;
    }
    if (schema.contains("format")) {
        const std::string format =
            schema["format"].is_string() ? schema["format"].get<std::string>() : "";
        auto rule = parts_.string_of_format(format);
        if (!rule) {
            return error("unsupported string format '" + format + "'", path);
        }
        return *rule;
    }
    int64_t min = 0;
    int64_t max = -1;
    if (schema.contains("minLength")) {
        SLUICE_ASSIGN_OR_RETURN(min, count(schema, "minLength", path));
    }
    if (schema.contains("maxLength")) {
        SLUICE_ASSIGN_OR_RETURN(max, count(schema, "maxLength", path));
    }
    if (max >= 0 && max < min) {
        return error("'maxLength' is below 'minLength'", path);
    }
    if (max > kMaxRepetition || min > kMaxRepetition) {
        return error("'minLength' or 'maxLength' above " + std::to_string(kMaxRepetition) +
                     " is unsupported", path);
    }
    return parts_.string_of_length(min, max);
}

Result<int32_t> SchemaCompiler::number_rule(const OJson& schema, const std::string& path,
                                            bool integer) {
    // Bounds become integers: exact for integer bounds; a non-integer bound is rounded inwards
    // (minimum 0.5 allows 1 and above), so every generated value satisfies the schema.
    std::optional<IntBound> lo;
    std::optional<IntBound> hi;
    auto tighter = [](std::optional<IntBound>& current, IntBound candidate, bool lower) {
        if (!current) {
            current = candidate;
            return;
        }
        const int64_t a = lower ? current->value : -current->value;
        const int64_t b = lower ? candidate.value : -candidate.value;
        if (b > a || (b == a && candidate.exclusive)) {
            current = candidate;
        }
    };
    const bool draft4_min = schema.contains("exclusiveMinimum") && schema["exclusiveMinimum"].is_boolean();
    const bool draft4_max = schema.contains("exclusiveMaximum") && schema["exclusiveMaximum"].is_boolean();
    for (const char* keyword : {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}) {
        if (!schema.contains(keyword) || schema[keyword].is_boolean()) {
            continue;
        }
        if (!schema[keyword].is_number() || !std::isfinite(schema[keyword].get<double>())) {
            return error(std::string("'") + keyword + "' must be a number", path);
        }
        const std::string k = keyword;
        const bool lower = k == "minimum" || k == "exclusiveMinimum";
        bool exclusive = k.starts_with("exclusive");
        if (k == "minimum" && draft4_min) {
            exclusive = schema["exclusiveMinimum"].get<bool>();
        }
        if (k == "maximum" && draft4_max) {
            exclusive = schema["exclusiveMaximum"].get<bool>();
        }
        const double v = std::clamp(schema[keyword].get<double>(), -1e16, 1e16);
        const double rounded = lower ? std::ceil(v) : std::floor(v);
        IntBound bound{static_cast<int64_t>(rounded), exclusive && rounded == v};
        if (schema[keyword].is_number_integer()) {
            bound.value = schema[keyword].get<int64_t>();
        }
        tighter(lower ? lo : hi, bound, lower);
    }
    if (!lo && !hi) {
        if (integer) {
            return *parts_.integer_in(std::nullopt, std::nullopt);
        }
        return parts_.any_number();
    }
    auto rule = integer ? parts_.integer_in(lo, hi) : parts_.number_in(lo, hi);
    if (!rule) {
        return error("no " + std::string(integer ? "integer" : "number") +
                     " satisfies the bounds", path);
    }
    return *rule;
}

}  // namespace sluice::inference::detail
