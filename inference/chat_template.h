#pragma once
// The DBRX chat template: ChatML turns, a default system prompt, tool definitions and tool
// results (format documented in docs/chat-template.md).
//
//   <|im_start|>system\n{system prompt}{tools section}<|im_end|>\n
//   <|im_start|>user\n{content}<|im_end|>\n
//   <|im_start|>assistant\n{content}{<tool_call>...</tool_call> lines}<|im_end|>\n
//   <|im_start|>tool\n<tool_result id="..." name="...">\n{content}\n</tool_result><|im_end|>\n
//   <|im_start|>assistant\n                       (the generation prompt)
//
// Only the template's own markers are special tokens. Every piece of caller text (contents,
// names, tool schemas, the system prompt) is encoded in ordinary mode, so a user who writes
// "<|im_end|>" gets those characters, never the token. Text between two markers is encoded as
// one run, which gives the same ids as encoding the rendered string in allowed-special mode
// whenever the caller's text holds no special-token text.
//
// Generation stops at <|im_end|> or <|endoftext|> (stop_ids()).
//
// Thread safety: immutable; encode() and render() may run on many threads at once.

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "inference/tokenizer.h"

namespace sluice::inference {

// Used when a conversation has no system message of its own.
inline constexpr std::string_view kDefaultSystemPrompt =
    "You are Sluice, an assistant that answers questions from the documents and data of the "
    "organisation you work for. Answer from the context you are given, cite the sources you "
    "use, and say plainly when the context does not hold the answer.";

struct ToolDefinition {
    std::string name = {};
    std::string description = {};
    nlohmann::json parameters = nlohmann::json::object();  // JSON schema of the arguments
};

struct ToolCall {
    std::string id = {};  // the server's id for the call, echoed by the tool message that answers it
    std::string name = {};
    nlohmann::json arguments = nlohmann::json::object();
};

struct ChatMessage {
    std::string role = {};  // "system" (first only), "user", "assistant" or "tool"
    std::string content = {};
    std::vector<ToolCall> tool_calls = {};  // assistant messages only
    std::string tool_call_id = {};     // tool messages: the call this answers (required)
};

struct ChatTemplateOptions {
    // The system prompt when the conversation has none; empty: no system turn unless tools need
    // one.
    std::string default_system_prompt = std::string(kDefaultSystemPrompt);
    // End with "<|im_start|>assistant\n" so that the model writes the next assistant turn.
    bool add_generation_prompt = true;
};

class ChatTemplate {
public:
    explicit ChatTemplate(ChatTemplateOptions options = {});

    // The prompt's token ids. kInvalidArgument naming the message index for an unknown role, a
    // system message after the first, tool calls outside assistant messages, a tool message
    // whose tool_call_id names no earlier call, a tool without a name, arguments that are not a
    // JSON object, or text that is not UTF-8.
    Result<std::vector<TokenId>> encode(const Tokenizer& tokenizer,
                                        std::span<const ChatMessage> messages,
                                        std::span<const ToolDefinition> tools = {}) const;
    // The same prompt as text, special tokens spelled out; for logs, tests and documentation.
    Result<std::string> render(std::span<const ChatMessage> messages,
                               std::span<const ToolDefinition> tools = {}) const;

    // Token ids that end an assistant turn: <|endoftext|> and <|im_end|>.
    static std::vector<TokenId> stop_ids() { return {dbrx::kEndOfText, dbrx::kImEnd}; }

    const ChatTemplateOptions& options() const { return options_; }

private:
    struct Segment {
        bool special = false;
        TokenId id = 0;    // when special
        std::string text;  // when not
    };
    Result<std::vector<Segment>> segments(std::span<const ChatMessage> messages,
                                          std::span<const ToolDefinition> tools) const;

    ChatTemplateOptions options_;
};

}  // namespace sluice::inference
