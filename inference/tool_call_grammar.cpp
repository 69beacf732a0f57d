// Tool-call grammars (declared in json_schema_grammar.h): free text that cannot spell the call
// opener, followed by calls in the chat template's line format.
#include "inference/json_schema_grammar.h"

#include <set>

#include "inference/detail/code_points.h"
#include "inference/detail/json_grammar_parts.h"
#include "inference/detail/json_schema_compiler.h"

namespace sluice::inference {

namespace {

constexpr std::string_view kCallOpen = "<tool_call>";
constexpr std::string_view kCallClose = "</tool_call>";

// Text (any UTF-8) in which `word` never occurs: one rule per length of the longest suffix that
// is a prefix of `word` (the Knuth-Morris-Pratt automaton), each able to end the text.
int32_t text_without(Grammar& g, std::string_view word) {
    const auto k = word.size();
    std::vector<size_t> fail(k, 0);
    for (size_t i = 1, j = 0; i < k; ++i) {
        while (j > 0 && word[i] != word[j]) {
            j = fail[j - 1];
        }
        if (word[i] == word[j]) {
            ++j;
        }
        fail[i] = j;
    }
    auto step = [&](size_t state, uint8_t b) {
        while (state > 0 && static_cast<uint8_t>(word[state]) != b) {
            state = fail[state - 1];
        }
        return static_cast<uint8_t>(word[state]) == b ? state + 1 : 0;
    };
    std::vector<int32_t> rules(k);
    for (size_t s = 0; s < k; ++s) {
        rules[s] = g.add_rule("text");
    }
    GrammarAlternatives multibyte;
    grammar_text::add_code_point_alternatives(g, {{0x80, detail::kMaxCodePoint}}, multibyte);
    for (size_t s = 0; s < k; ++s) {
        std::vector<ByteSet> to(k + 1);
        for (int b = 0; b < 0x80; ++b) {
            to[step(s, static_cast<uint8_t>(b))].set(static_cast<size_t>(b));
        }
        for (size_t t = 0; t < k; ++t) {  // t == k would complete the word
            if (to[t].any()) {
                g.add_alternative(rules[s], {g.bytes(to[t]), Grammar::ref(rules[t])});
            }
        }
        for (GrammarSequence alt : multibyte) {  // `word` is ASCII: a wide character resets
            alt.push_back(Grammar::ref(rules[0]));
            g.add_alternative(rules[s], std::move(alt));
        }
        g.add_alternative(rules[s], {});
    }
    return rules[0];
}

// Whether `object` has a member `name` that is the string `expected` (json::value() would throw
// on a member of another type).
bool has_string(const nlohmann::json& object, const char* name, std::string_view expected) {
    auto it = object.find(name);
    return it != object.end() && it->is_string() && it->get<std::string>() == expected;
}

Status check_name(const std::string& name) {
    if (name.empty() || name.size() > 256) {
        return invalid_argument("tool name must have 1 to 256 characters, found " +
                                std::to_string(name.size()));
    }
    for (unsigned char c : name) {
        if (c < 0x20 || c >= 0x7F || c == '"' || c == '\\' || c == '<' || c == '>') {
            return invalid_argument("tool name '" + name +
                                    "' has a character outside printable ASCII or one of \" \\ < >");
        }
    }
    return Status::ok_status();
}

// The schema a call's arguments are held to. They are a JSON object whatever the schema: OpenAI
// requires `"type": "object"` of a function's parameters, and a call whose arguments are not an
// object is no call (app/tool_calls.cpp, the chat template). No parameters, `{}` or `true`
// declare a function without parameters, which takes `{}`; a schema without "type" gets
// "object", unless its top is a combinator or a reference that the type could not sit beside.
Result<nlohmann::ordered_json> arguments_schema(const nlohmann::ordered_json& parameters) {
    const bool none = parameters.is_null() || (parameters.is_object() && parameters.empty()) ||
                     (parameters.is_boolean() && parameters.get<bool>());
    if (none) {
        return nlohmann::ordered_json{{"type", "object"},
                                      {"properties", nlohmann::ordered_json::object()}};
    }
    if (!parameters.is_object()) {
        return parameters;  // the schema compiler names what is wrong
    }
    auto type = parameters.find("type");
    if (type == parameters.end()) {
        for (const char* keyword : {"$ref", "anyOf", "oneOf", "allOf", "enum", "const", "not"}) {
            if (parameters.contains(keyword)) {
                return invalid_argument(std::string("the arguments are a JSON object: the schema "
                                                    "needs \"type\": \"object\" at its top, "
                                                    "found '") +
                                        keyword + "' without a type");
            }
        }
        nlohmann::ordered_json typed = parameters;
        typed["type"] = "object";
        return typed;
    }
    if (!type->is_string() || type->get<std::string>() != "object") {
        return invalid_argument(
            "the arguments are a JSON object: 'type' must be \"object\", found " +
            type->dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
    }
    return parameters;
}

}  // namespace

Result<Grammar> tool_call_grammar(std::span<const ToolSpec> tools, const ToolChoice& choice,
                                  const JsonGrammarOptions& options) {
    Grammar g;
    g.set_twin_depth(options.twin_depth);
    if (choice.mode == ToolChoiceMode::kNone) {
        g.set_root(g.rule_of("root", {{Grammar::ref(text_without(g, kCallOpen))}}));
        SLUICE_RETURN_IF_ERROR(g.validate());
        return g;
    }
    if (tools.empty()) {
        return invalid_argument("tool_choice needs at least one tool");
    }
    detail::JsonParts parts(g);
    std::set<std::string> names;
    GrammarAlternatives calls;
    for (const ToolSpec& tool : tools) {
        SLUICE_RETURN_IF_ERROR(check_name(tool.name));
        if (!names.insert(tool.name).second) {
            return invalid_argument("tool '" + tool.name + "' is listed twice");
        }
        if (choice.mode == ToolChoiceMode::kNamed && tool.name != choice.name) {
            continue;
        }
        auto schema = arguments_schema(tool.parameters);
        if (!schema.ok()) {
            return schema.status().with_context("tool '" + tool.name + "' parameters");
        }
        const nlohmann::ordered_json& parameters = *schema;
        detail::SchemaCompiler compiler(parts, parameters);
        auto arguments = compiler.compile(parameters, "");
        if (!arguments.ok()) {
            return arguments.status().with_context("tool '" + tool.name + "' parameters");
        }
        // <tool_call>{"name": "f", "arguments": {...}}</tool_call>, spaces optional as elsewhere.
        GrammarSequence open = g.literal(kCallOpen);
        for (const GrammarSymbol& symbol : g.literal("{\"name\":")) {
            open.push_back(symbol);
        }
        std::string quoted_name = "\"";
        quoted_name += tool.name;
        quoted_name += "\",";
        GrammarSequence name_comma = g.literal(quoted_name);
        GrammarSequence arguments_key = g.literal("\"arguments\":");
        GrammarSequence tail{Grammar::ref(*arguments), g.byte('}')};
        for (const GrammarSymbol& symbol : g.literal(kCallClose)) {
            tail.push_back(symbol);
        }
        GrammarAlternatives forms{{}};
        for (const GrammarSequence* part : {&open, &name_comma, &arguments_key, &tail}) {
            GrammarAlternatives next;
            for (const GrammarSequence& base : forms) {
                for (bool space : {false, true}) {
                    if (space && (base.empty() || part == &open)) {
                        continue;
                    }
                    GrammarSequence s = base;
                    if (space) {
                        s.push_back(g.byte(' '));
                    }
                    s.insert(s.end(), part->begin(), part->end());
                    next.push_back(std::move(s));
                }
            }
            forms = std::move(next);
        }
        calls.push_back({Grammar::ref(g.rule_of("call_" + tool.name, std::move(forms)))});
    }
    if (calls.empty()) {
        return invalid_argument("tool_choice names '" + choice.name + "', which is not a tool");
    }
    const int32_t call = g.rule_of("call", std::move(calls));
    if (choice.mode == ToolChoiceMode::kNamed) {
        g.set_root(g.rule_of("root", {{Grammar::ref(call)}}));
    } else {
        int32_t call_lines = call;
        if (choice.parallel) {
            const int32_t more =
                g.repeat("more_calls", {{g.byte('\n'), Grammar::ref(call)}}, 0, -1);
            call_lines = g.rule_of("calls", {{Grammar::ref(call), Grammar::ref(more)}});
        }
        if (choice.mode == ToolChoiceMode::kRequired) {
            g.set_root(g.rule_of("root", {{Grammar::ref(call_lines)}}));
        } else {
            const int32_t text = text_without(g, kCallOpen);
            g.set_root(g.rule_of("root", {{Grammar::ref(text)}, {Grammar::ref(text), Grammar::ref(call_lines)}}));
        }
    }
    SLUICE_RETURN_IF_ERROR(g.validate());
    return g;
}

Result<std::vector<ToolSpec>> parse_openai_tools(const nlohmann::json& tools) {
    if (!tools.is_array()) {
        return invalid_argument("'tools' must be an array");
    }
    std::vector<ToolSpec> out;
    for (size_t i = 0; i < tools.size(); ++i) {
        const nlohmann::json& tool = tools[i];
        const std::string where = "tools[" + std::to_string(i) + "]";
        if (!tool.is_object() || !has_string(tool, "type", "function") ||
            !tool.contains("function") || !tool["function"].is_object()) {
            return invalid_argument(where + " must be {\"type\": \"function\", \"function\": {...}}");
        }
        const nlohmann::json& function = tool["function"];
        if (!function.contains("name") || !function["name"].is_string()) {
            return invalid_argument(where + ".function.name must be a string");
        }
        ToolSpec spec;
        spec.name = function["name"].get<std::string>();
        if (function.contains("parameters") && !function["parameters"].is_null()) {
            spec.parameters = nlohmann::ordered_json::parse(function["parameters"].dump());
        }
        out.push_back(std::move(spec));
    }
    return out;
}

Result<ToolChoice> parse_openai_tool_choice(const nlohmann::json& tool_choice) {
    if (tool_choice.is_null()) {
        return ToolChoice{};
    }
    if (tool_choice.is_string()) {
        const std::string mode = tool_choice.get<std::string>();
        if (mode == "auto") return ToolChoice{ToolChoiceMode::kAuto, ""};
        if (mode == "none") return ToolChoice{ToolChoiceMode::kNone, ""};
        if (mode == "required") return ToolChoice{ToolChoiceMode::kRequired, ""};
        return invalid_argument("'tool_choice' must be auto, none, required or a function, found '" +
                                mode + "'");
    }
    if (tool_choice.is_object() && has_string(tool_choice, "type", "function") &&
        tool_choice.contains("function") && tool_choice["function"].is_object() &&
        tool_choice["function"].contains("name") && tool_choice["function"]["name"].is_string()) {
        return ToolChoice{ToolChoiceMode::kNamed, tool_choice["function"]["name"].get<std::string>()};
    }
    return invalid_argument("'tool_choice' object must be {\"type\": \"function\", \"function\": "
                            "{\"name\": ...}}");
}

}  // namespace sluice::inference
