#pragma once
// GuardedChatModel: a model used on a caller's behalf through a governed call (model_call.h),
// whose every turn passes the endpoint's guardrails: the input policy on each message the model
// reads but the system message (the operator's text: an agent's instructions, the QA prompt),
// the output policy on the text it writes, streamed (through an OutputGuard, a block stopping
// the turn at once) or whole. It counts the tokens of the turns that ran, for the call's
// settlement. Used by agent runs (agent_model_use.h) and document QA.
//
// Each input text is checked (its findings audited) once, though a conversation is sent again
// every turn. Tool-call arguments are not masked: they go to tools, not to the caller.
//
// Thread safety: thread-safe; the ModelCall is touched by one thread at a time under a lock.
// The call must outlive the model, and its owner uses it only while no turn runs.

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "agents/chat_model.h"
#include "app/model_call.h"

namespace sluice::app {

class GuardedChatModel final : public agents::ChatModel {
public:
    // What a blocked input becomes: given the message and the policy's refusal
    // (kInvalidArgument naming what was found), the error the turn fails with.
    using BlockedInput =
        std::function<Status(const inference::ChatMessage& message, const Status& refusal)>;

    GuardedChatModel(ModelCall& call, std::shared_ptr<agents::ChatModel> inner,
                     BlockedInput blocked_input = {});

    Result<agents::ModelReply> complete(const agents::ModelRequest& request) override;
    std::int64_t count_tokens(std::string_view text) const override {
        return inner_->count_tokens(text);
    }
    std::string name() const override { return inner_->name(); }

    // What `message` reads as under the input policy (masked, or as given); its error when
    // the policy blocks it.
    Result<std::string> guard_input(const inference::ChatMessage& message);

    // The tokens of the turns that ran, and how many turns did.
    inference::Usage spent() const;
    int turns() const;

private:
    Result<governance::OutputGuard> guard_stream();

    std::mutex call_mutex_;  // the ModelCall is used by one thread at a time
    ModelCall& call_;
    std::shared_ptr<agents::ChatModel> inner_;
    BlockedInput blocked_input_;
    mutable std::mutex mutex_;                              // guards what follows
    std::unordered_map<std::string, std::string> checked_;  // text → what the model reads
    inference::Usage spent_;
    int turns_ = 0;
};

}  // namespace sluice::app
