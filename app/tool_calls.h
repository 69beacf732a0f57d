#pragma once
// Tool calls in generated text: the chat template (docs/chat-template.md) asks the model to end
// its answer with one `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` line per call.
// This turns such text into the OpenAI shape: the content before the first call, and the calls.
//
// A call is taken only when every marked line parses: a JSON object whose "name" is one of the
// offered tools and whose "arguments" is an object (or a string holding one). Otherwise the text
// is left as content, whole, so that nothing the model wrote is lost.
//
// Thread safety: free functions over values.

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "inference/chat_template.h"

namespace sluice::app {

inline constexpr std::string_view kToolCallOpen = "<tool_call>";
inline constexpr std::string_view kToolCallClose = "</tool_call>";

struct ParsedToolCalls {
    std::string content;                      // text before the first call (trailing space cut)
    std::vector<inference::ToolCall> calls;  // each with a fresh "call_..." id
};

ParsedToolCalls parse_tool_calls(std::string_view text,
                                 std::span<const inference::ToolDefinition> tools);

// A fresh OpenAI-style id: `prefix` and 24 hex digits ("call_", "chatcmpl-", "cmpl-").
std::string fresh_id(std::string_view prefix);

}  // namespace sluice::app
