#pragma once
// Tool calls in generated text: the chat template (docs/chat-template.md) asks the model to end
// its answer with one `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` line per call.
// The markers, and the fresh ids the OpenAI shape gives each call and answer. The text is read
// by tool_call_stream.h, streamed or whole.
//
// Thread safety: free functions over values.

#include <string>
#include <string_view>

namespace sluice::app {

inline constexpr std::string_view kToolCallOpen = "<tool_call>";
inline constexpr std::string_view kToolCallClose = "</tool_call>";

// A fresh OpenAI-style id: `prefix` and 24 hex digits ("call_", "chatcmpl-", "cmpl-").
std::string fresh_id(std::string_view prefix);

}  // namespace sluice::app
