#pragma once
// ScriptedChatModel: replies from a script, in order, so that planners, tools, budgets and
// traces run end to end with known model output. A script is a JSON array of turns:
//
//   [{"content": "Looking it up."},
//    {"tool_calls": [{"name": "sql_query", "arguments": {"query": "SELECT 1"}}]},
//    {"content": "<tool_call>{\"name\": \"x\", \"arguments\": {}}</tool_call>"},
//    {"content": "The answer is 1."}]
//
// Content may carry tool-call markup, which is split off as the engine model's output is. With
// `repeat_last`, the last turn answers every call past the end (a runaway model); otherwise a
// call past the end is kFailedPrecondition ("the script has no turn N").
// Tokens are counted as whitespace-separated words, and a reply's usage is counted so; a reply's
// text ends at the request's max_tokens words (its tool calls are kept). Text is streamed word
// by word; a stop requested between words cuts the reply there (`cancelled`).
//
// Thread safety: thread-safe; turns are handed out in call order across threads.

#include <atomic>
#include <mutex>

#include "agents/chat_model.h"

namespace sluice::agents {

class ScriptedChatModel final : public ChatModel {
public:
    // kInvalidArgument for a script that is not an array of turn objects.
    static Result<std::unique_ptr<ScriptedChatModel>> make(const nlohmann::json& script,
                                                           bool repeat_last = false);
    ScriptedChatModel(std::vector<ModelReply> turns, bool repeat_last);

    Result<ModelReply> complete(const ModelRequest& request) override;
    std::int64_t count_tokens(std::string_view text) const override;
    std::string name() const override { return "scripted"; }

    // Requests seen so far, for tests to check what the model was shown.
    std::vector<ModelRequest> requests() const;
    size_t calls() const;

private:
    std::vector<ModelReply> turns_;
    bool repeat_last_;
    mutable std::mutex mutex_;
    size_t next_ = 0;                     // guarded by mutex_
    std::vector<ModelRequest> requests_;  // guarded by mutex_
};

}  // namespace sluice::agents
