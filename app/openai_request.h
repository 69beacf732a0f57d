#pragma once
// Parsing and validation of OpenAI-compatible request bodies (/v1/chat/completions,
// /v1/completions) into what the engine needs. The accepted and ignored parameters are listed in
// docs/api.md; any other parameter is a 400 naming it, so that a client never believes a
// setting took effect when it did not.
//
// Structured output (response_format json_object / json_schema, and tools) is only recognised
// here; the grammar is compiled by the routes (structured_output.h), where an unsupported schema
// keyword becomes a 400 naming it.
//
// Errors: kInvalidArgument with OpenAI-style messages naming the parameter and the value found,
// kNotSupported (answered as 400 by the routes) for parameters this build cannot honour.
//
// Thread safety: free functions over values.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "app/request_members.h"
#include "common/result.h"
#include "inference/chat_template.h"
#include "inference/sampling.h"

namespace sluice::app {

// What chat and legacy completions share.
struct GenerationParams {
    std::string model;
    inference::SamplingParams sampling;
    std::optional<int32_t> max_tokens;  // absent: up to the end of the context
    int32_t n = 1;
    std::vector<std::string> stop;
    bool stream = false;
    bool include_usage = false;  // stream_options.include_usage
    bool logprobs = false;
    int32_t top_logprobs = 0;
    std::string user;
    bool skip_special_tokens = true;  // vLLM's extension; false writes them as their text
};

// response_format: what the answer's content must be.
enum class ResponseFormat { kText, kJsonObject, kJsonSchema };

struct ChatRequest {
    GenerationParams params;
    std::vector<inference::ChatMessage> messages;
    std::vector<inference::ToolDefinition> tools;
    bool use_tools = false;  // tools given and tool_choice is not "none"
    bool parallel_tool_calls = true;
    ResponseFormat response_format = ResponseFormat::kText;
    // For kJsonSchema: response_format.json_schema.schema. Its keys are sorted (nlohmann::json);
    // the routes take the author's order from the body text (schema_text_in_order).
    nlohmann::json schema;
    // As given, for the tool-call grammar: `tools` (null when absent) and `tool_choice`
    // ("auto" when absent).
    nlohmann::json tools_json;
    nlohmann::json tool_choice_json = "auto";
};

// A legacy completion prompt: text or token ids.
using PromptInput = std::variant<std::string, std::vector<int32_t>>;

struct CompletionRequest {
    GenerationParams params;
    std::vector<PromptInput> prompts;
    bool echo = false;
};

Result<ChatRequest> parse_chat_request(const nlohmann::json& body);
Result<CompletionRequest> parse_completion_request(const nlohmann::json& body);

// Body of /v1/embeddings: `input` as a string, strings, token ids or lists of token ids.
struct EmbeddingRequest {
    std::string model;
    std::vector<PromptInput> inputs;
    std::string encoding_format = "float";  // float | base64
};
Result<EmbeddingRequest> parse_embedding_request(const nlohmann::json& body);

// A JSON array of integers as token ids. An integer that no token id can be (beyond 32 bits) is
// an error naming it and its position, not a value cut to 32 bits; ids within 32 bits are
// checked against the vocabulary where they are used.
Result<std::vector<int32_t>> parse_token_ids(const nlohmann::json& array, const std::string& name);

// A random seed for requests that give none.
uint64_t fresh_seed();

}  // namespace sluice::app
