#pragma once
// AgentChatChunks: an agent run's events as OpenAI `chat.completion.chunk` objects, for agents
// served as models (`model: "agents/<name>"`) on /v1/chat/completions with `stream: true`.
//
//   "trace" event        the opening {"delta": {"role": "assistant", "content": ""}}; this and
//                        every later chunk carry the run's "trace_id"
//   "tokens" event       {"delta": {"content": <text>}}, as the model produces it
//   "final" event        a budget stop's message as content (it was never streamed), then
//                        {"delta": {}, "finish_reason": "stop" | "length"} with "trace_id",
//                        then, with include_usage, {"choices": [], "usage": {...}}
//   other events         nothing: tool calls run inside the agent and are not the client's to
//                        answer, so they stay out of the OpenAI stream (the trace has them)
//
// The text of every model turn is streamed as it comes, since whether a turn ends in tool calls
// is known only at its end; turns are separated by a blank line. A model that writes text before
// calling tools therefore streams that text too, ahead of the answer.
//
// Thread safety: owned by one thread (the run's).

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agents/planner.h"

namespace sluice::app {

class AgentChatChunks {
public:
    AgentChatChunks(std::string model, bool include_usage);

    nlohmann::json opening() const;
    // The chunks `event` becomes, in order (often none).
    std::vector<nlohmann::json> on_event(const agents::AgentEvent& event);

private:
    nlohmann::json chunk(nlohmann::json choices) const;
    nlohmann::json content(std::string text);

    std::string id_;
    std::int64_t created_;
    std::string model_;
    bool include_usage_;
    bool said_ = false;           // some text has been streamed
    bool new_turn_ = false;       // a turn began since the last text
    std::string trace_id_;        // from the "trace" event
};

}  // namespace sluice::app
