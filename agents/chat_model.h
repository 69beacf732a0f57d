#pragma once
// ChatModel: what planners and document QA need from a language model — one assistant turn for
// a conversation, optionally constrained to tool calls or to a JSON schema, streamed as text.
// Two implementations: EngineChatModel (engine_chat_model.h, the in-process engine) and
// ScriptedChatModel (deterministic replies from a script, for tests and benchmarks of
// everything around the model).
//
// Thread safety: implementations are thread-safe (concurrent runs share one model).

#include <cstdint>
#include <functional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "inference/chat_template.h"

namespace sluice::agents {

struct ModelRequest {
    std::vector<inference::ChatMessage> messages;
    std::vector<inference::ToolDefinition> tools;  // offered; calls are constrained to them
    // A JSON Schema the whole reply must follow (plans); null for free text or tool calls.
    nlohmann::json response_schema;
    int max_tokens = 256;
    double temperature = 0.0;
    double top_p = 1.0;  // nucleus sampling; 1: off
    // Sampling seed: with a temperature above 0, the same seed gives the same reply, and
    // different seeds give independent draws (best-of-N candidates, judge calls).
    std::uint64_t seed = 0;
    // Receives answer text as it is produced (not tool-call markup); may be empty.
    std::function<void(std::string_view)> on_text;
    // When a stop is requested (the caller hung up) the turn ends early: the engine request is
    // cancelled, which frees its KV blocks, and the reply comes back with `cancelled` set and
    // the tokens spent so far. Not an error: what was spent is still counted.
    std::stop_token stop;
};

struct ModelReply {
    std::string text;                         // the answer text (tool-call markup removed)
    std::vector<inference::ToolCall> calls;   // proposed calls, in order
    std::int64_t prompt_tokens = 0;
    std::int64_t completion_tokens = 0;
    double prefill_seconds = 0;  // until the first token
    double decode_seconds = 0;   // after it
    bool cancelled = false;      // cut short by ModelRequest::stop; text and calls are partial
};

class ChatModel {
public:
    virtual ~ChatModel() = default;
    virtual Result<ModelReply> complete(const ModelRequest& request) = 0;
    // Tokens `text` takes in prompts (the real tokenizer's count for the engine model).
    virtual std::int64_t count_tokens(std::string_view text) const = 0;
    virtual std::string name() const = 0;
};

// Splits "<tool_call>{...}</tool_call>" lines off model text, as the chat template asks models
// to write them (docs/chat-template.md). A marked line that does not parse stays in the text.
// Call ids are "call_<n>" in order.
void split_tool_calls(const std::string& text, std::string* content,
                      std::vector<inference::ToolCall>* calls);

}  // namespace sluice::agents
