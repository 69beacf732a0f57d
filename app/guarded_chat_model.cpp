#include "app/guarded_chat_model.h"

#include <optional>
#include <stop_token>
#include <utility>

namespace sluice::app {

GuardedChatModel::GuardedChatModel(ModelCall& call, std::shared_ptr<agents::ChatModel> inner,
                                   BlockedInput blocked_input)
    : call_(call), inner_(std::move(inner)), blocked_input_(std::move(blocked_input)) {}

Result<agents::ModelReply> GuardedChatModel::complete(const agents::ModelRequest& request) {
    agents::ModelRequest guarded = request;
    for (auto& message : guarded.messages) {
        if (message.role != "system") {  // the operator's text
            SLUICE_ASSIGN_OR_RETURN(message.content, guard_input(message));
        }
    }
    // The caller's stop also stops this turn; a blocked answer stops it early as well.
    std::stop_source turn_stop;
    std::stop_callback follow(request.stop, [&turn_stop] { turn_stop.request_stop(); });
    guarded.stop = turn_stop.get_token();

    std::optional<governance::OutputGuard> stream_guard;
    std::string streamed;  // raw text the model streamed
    std::string shown;     // what of it passed the output policy
    Status blocked;
    auto show = [&](Result<std::string> passed) {
        if (!passed.ok()) {
            blocked = passed.status();
            turn_stop.request_stop();
        } else if (!passed->empty()) {
            shown += *passed;
            request.on_text(*passed);
        }
    };
    if (request.on_text) {
        Result<governance::OutputGuard> made = guard_stream();
        if (!made.ok()) {
            return made.status();
        }
        stream_guard.emplace(std::move(*made));
        guarded.on_text = [&](std::string_view text) {
            streamed += text;
            if (blocked.ok()) {
                show(stream_guard->push(text));
            }
        };
    }
    auto reply = inner_->complete(guarded);
    if (!reply.ok()) {
        return reply.status();
    }
    {
        std::lock_guard lock(mutex_);
        spent_.prompt_tokens += reply->prompt_tokens;
        spent_.completion_tokens += reply->completion_tokens;
        ++turns_;
    }
    if (stream_guard && blocked.ok()) {
        show(stream_guard->finish());
    }
    if (!blocked.ok()) {
        return blocked;
    }
    if (stream_guard && reply->text == streamed) {
        reply->text = std::move(shown);
    } else {
        std::lock_guard lock(call_mutex_);
        SLUICE_ASSIGN_OR_RETURN(reply->text, call_.guard_output(reply->text));
    }
    return reply;
}

Result<std::string> GuardedChatModel::guard_input(const inference::ChatMessage& message) {
    {
        std::lock_guard lock(mutex_);
        if (auto seen = checked_.find(message.content); seen != checked_.end()) {
            return seen->second;
        }
    }
    Result<std::string> passed = [&] {
        std::lock_guard lock(call_mutex_);
        return call_.guard_input(message.content);
    }();
    if (!passed.ok()) {
        return blocked_input_ ? blocked_input_(message, passed.status()) : passed.status();
    }
    std::lock_guard lock(mutex_);
    checked_.emplace(message.content, *passed);
    return passed;
}

Result<governance::OutputGuard> GuardedChatModel::guard_stream() {
    std::lock_guard lock(call_mutex_);
    return call_.stream_guard();
}

inference::Usage GuardedChatModel::spent() const {
    std::lock_guard lock(mutex_);
    return spent_;
}

int GuardedChatModel::turns() const {
    std::lock_guard lock(mutex_);
    return turns_;
}

}  // namespace sluice::app
