#pragma once
// Streams tool calls as OpenAI does: for each call a first delta with its index, id, type and
// function name and empty arguments, then the arguments' JSON text in fragments as it is
// generated. Text is read in the chat template's format (tool_calls.h):
//   <tool_call>{"name": "f", "arguments": {...}}</tool_call>
// which the tool-call grammar (structured output) imposes whenever tools are offered, so a
// call's header can be trusted as soon as its "arguments" key has arrived.
//
// Text before the first call is content, released as it comes except for a tail that could
// still begin the call marker. A marked call whose header is not a known tool, or whose
// arguments are not a JSON object (or a string holding one), is released as content instead.
// With parallel tool calls off, calls after the first are dropped, as in the non-streamed
// answer.
//
// Thread safety: owned by one thread.

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "inference/chat_template.h"

namespace sluice::app {

struct ToolCallDelta {
    int index = 0;
    bool first = false;      // carries id, type and name (and empty arguments)
    std::string id;          // first delta only
    std::string name;        // first delta only
    std::string arguments;   // a fragment of the arguments' JSON text
};

struct ToolStreamPiece {
    std::string content;
    std::vector<ToolCallDelta> calls;
    bool empty() const { return content.empty() && calls.empty(); }
};

class ToolCallStreamer {
public:
    ToolCallStreamer(std::span<const inference::ToolDefinition> tools, bool parallel);

    ToolStreamPiece push(std::string_view text);
    // The end of the answer: whatever is still held is released as content.
    ToolStreamPiece finish();
    // Calls streamed so far.
    int calls() const { return next_index_; }

private:
    enum class State { kContent, kHeader, kArguments, kStringArguments, kTail, kDropped };

    void step(ToolStreamPiece& piece);
    bool known(const std::string& name) const;

    std::span<const inference::ToolDefinition> tools_;
    bool parallel_;
    State state_ = State::kContent;
    std::string buffer_;      // text of the current state not yet released or consumed
    std::string call_text_;   // the current call from its marker on (released if it fails)
    int next_index_ = 0;
    int depth_ = 0;
    bool in_string_ = false;
    bool escape_ = false;
};

// A whole answer read exactly as the stream reads it, so that an answer comes back the same
// streamed or not: also a call cut short by max_tokens, which keeps the arguments' text as far
// as it was generated (finish_reason "length" says it is incomplete, as OpenAI's does).
struct ToolCallAnswer {
    struct Call {
        std::string id;
        std::string name;
        std::string arguments;  // the arguments' JSON text as the model wrote it
    };
    std::string content;  // the streamed content; trailing whitespace cut when there are calls
    std::vector<Call> calls;
};

ToolCallAnswer read_tool_calls(std::string_view text,
                               std::span<const inference::ToolDefinition> tools, bool parallel);

}  // namespace sluice::app
