#pragma once
// JSON Schema (a documented subset, see docs/grammar.md) compiled into a Grammar whose sentences
// are exactly the JSON texts the schema accepts, written in one canonical layout.
//
// Layout (the whitespace policy): no whitespace anywhere except one optional space after each
// ':' and ','. Object properties appear in the order the schema lists them (with
// nlohmann::json, whose objects sort their keys, that is alphabetical order; pass the schema as
// text to keep the author's order). Bounded whitespace matters: a model that may write spaces
// forever can loop without ever closing the object.
//
// Every keyword is either enforced or refused: an unsupported keyword, format or combination is
// kInvalidArgument naming it and where it sits, e.g.
//   unsupported JSON Schema keyword 'patternProperties' at /properties/x
// What is enforced and how (bounds, oneOf, additionalProperties defaults) is in docs/grammar.md.
//
// Thread safety: free functions.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "inference/grammar.h"

namespace sluice::inference {

struct JsonGrammarOptions {
    // Levels after which long bounded repetitions share token masks (Grammar::set_twin_depth);
    // GrammarCompiler sets it from its vocabulary. 0: no sharing.
    int32_t twin_depth = 0;
};

Result<Grammar> json_schema_to_grammar(const nlohmann::json& schema,
                                       const JsonGrammarOptions& options = {});
// The schema as JSON text, parsed so that property order is kept. kInvalidArgument when the text
// is not JSON.
Result<Grammar> json_schema_text_to_grammar(std::string_view schema_text,
                                            const JsonGrammarOptions& options = {});
// Any JSON object, same layout.
Grammar json_object_grammar(const JsonGrammarOptions& options = {});

// Tools as the chat template presents them (docs/chat-template.md): a call is one line
//   <tool_call>{"name": "<function>", "arguments": {...}}</tool_call>
// and, once begun, its arguments follow that function's parameter schema.
struct ToolSpec {
    std::string name;
    nlohmann::ordered_json parameters;  // a JSON schema of an object; null: no arguments
};

enum class ToolChoiceMode {
    kAuto,      // free text, then optionally one or more calls (each on its own line)
    kRequired,  // one or more calls, no text
    kNone,      // free text only; the text cannot contain "<tool_call>"
    kNamed,     // exactly one call, to `name`
};

struct ToolChoice {
    ToolChoiceMode mode = ToolChoiceMode::kAuto;
    std::string name;  // for kNamed
    // false: at most one call (OpenAI's `parallel_tool_calls: false`), so that generation ends
    // after it rather than spend tokens on calls that would be dropped.
    bool parallel = true;
};

// A call's arguments are a JSON object: a tool without parameters (or with `{}`) takes `{}`, a
// schema without "type" gets "object".
// kInvalidArgument for an empty tool list (other than kNone), a duplicate or unknown name, a
// name with characters that would need escaping, a parameter schema whose "type" is not
// "object" (or that has none and a top-level anyOf, oneOf, allOf, $ref, enum, const or not),
// or one that does not compile (the message names the tool).
Result<Grammar> tool_call_grammar(std::span<const ToolSpec> tools, const ToolChoice& choice,
                                  const JsonGrammarOptions& options = {});

// OpenAI request shapes: `tools` = [{"type": "function", "function": {"name", "description",
// "parameters"}}], `tool_choice` = "auto" | "none" | "required" |
// {"type": "function", "function": {"name": ...}}. kInvalidArgument naming the bad field.
Result<std::vector<ToolSpec>> parse_openai_tools(const nlohmann::json& tools);
Result<ToolChoice> parse_openai_tool_choice(const nlohmann::json& tool_choice);

}  // namespace sluice::inference
