#include "app/agent_model_use.h"

#include <mutex>
#include <optional>
#include <stop_token>
#include <unordered_map>
#include <utility>

#include "app/model_call.h"
#include "common/log.h"

namespace sluice::app {
namespace {

// One run's governed model: the ModelUse and the model it hands the planner, in one object.
class GovernedModelUse final : public agents::ModelUse, private agents::ChatModel {
public:
    GovernedModelUse(std::unique_ptr<ModelCall> call, std::shared_ptr<agents::ChatModel> inner)
        : call_(std::move(call)), inner_(std::move(inner)) {}

    ~GovernedModelUse() override {
        if (!finished_) {
            call_->release();  // prepared but never run: nothing reached the model
        }
    }

    agents::ChatModel& model() override { return *this; }

    // The conversation the first turn will send, through the input policy now: a blocked
    // message refuses the run before it starts.
    Status admit(const std::vector<inference::ChatMessage>& conversation) {
        for (const auto& message : conversation) {
            if (message.role != "system") {
                SLUICE_RETURN_IF_ERROR(guard_input(message).status());
            }
        }
        return Status();
    }

    Status reserve(std::int64_t estimated_tokens, std::optional<std::int64_t>* retry_after_s) {
        std::lock_guard lock(call_mutex_);
        return call_->reserve(estimated_tokens, retry_after_s);
    }

    void finish(const agents::RunResult* run) override {
        finished_ = true;
        inference::Usage usage;
        int turns = 0;
        {
            std::lock_guard lock(mutex_);
            usage.prompt_tokens = prompt_tokens_;
            usage.completion_tokens = completion_tokens_;
            turns = turns_;
        }
        std::lock_guard lock(call_mutex_);
        if (turns == 0 && run == nullptr) {
            call_->release();  // refused before the model ran: nothing to charge
            return;
        }
        std::string status = run == nullptr                                ? "error"
                             : run->stop == agents::StopReason::kCancelled ? "cancelled"
                                                                           : "ok";
        Status settled = call_->finish(usage, std::move(status));
        if (!settled.ok()) {
            log::error("agents", "agent tokens not recorded",
                       {{"request_id", call_->context().request_id}, {"error", settled.message()}});
        }
    }

    Result<agents::ModelReply> complete(const agents::ModelRequest& request) override {
        agents::ModelRequest guarded = request;
        for (auto& message : guarded.messages) {
            if (message.role != "system") {  // the instructions are the agent owner's text
                SLUICE_ASSIGN_OR_RETURN(message.content, guard_input(message));
            }
        }
        // The run's stop also stops this turn; a blocked answer stops it early as well.
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
            prompt_tokens_ += reply->prompt_tokens;
            completion_tokens_ += reply->completion_tokens;
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
            SLUICE_ASSIGN_OR_RETURN(reply->text, call_->guard_output(reply->text));
        }
        return reply;
    }

    std::int64_t count_tokens(std::string_view text) const override {
        return inner_->count_tokens(text);
    }
    std::string name() const override { return inner_->name(); }

private:
    // What the model reads of `message` under the input policy; each text is checked (and its
    // findings audited) once per run, though the conversation is sent again every turn.
    Result<std::string> guard_input(const inference::ChatMessage& message) {
        {
            std::lock_guard lock(mutex_);
            if (auto seen = checked_.find(message.content); seen != checked_.end()) {
                return seen->second;
            }
        }
        Result<std::string> passed = [&] {
            std::lock_guard lock(call_mutex_);
            return call_->guard_input(message.content);
        }();
        if (!passed.ok()) {
            if (message.role == "tool") {
                // Not the caller's input: the run stops before the data reaches the model.
                return Status(
                    StatusCode::kPermissionDenied,
                    "a tool result: " + passed.status().message() + "; the run is stopped");
            }
            return passed.status().with_context(message.role + " message");
        }
        std::lock_guard lock(mutex_);
        checked_.emplace(message.content, *passed);
        return passed;
    }

    Result<governance::OutputGuard> guard_stream() {
        std::lock_guard lock(call_mutex_);
        return call_->stream_guard();
    }

    std::mutex call_mutex_;  // the ModelCall is used by one thread at a time
    std::unique_ptr<ModelCall> call_;
    std::shared_ptr<agents::ChatModel> inner_;
    std::mutex mutex_;                                      // guards what follows
    std::unordered_map<std::string, std::string> checked_;  // text → what the model reads
    std::int64_t prompt_tokens_ = 0;
    std::int64_t completion_tokens_ = 0;
    int turns_ = 0;          // model turns that ran
    bool finished_ = false;  // finish() has run (on the run's thread)
};

}  // namespace

agents::ModelGovernor agent_model_governor(governance::Governance& gov,
                                           std::function<std::string()> securable) {
    return [&gov, securable = std::move(securable)](const agents::ModelUseRequest& request,
                                                    std::shared_ptr<agents::ChatModel> model,
                                                    std::optional<std::int64_t>* retry_after_s)
               -> Result<std::unique_ptr<agents::ModelUse>> {
        const std::string model_securable = securable();
        if (!model_securable.empty()) {
            SLUICE_RETURN_IF_ERROR(
                gov.authorizer().require(request.identity, governance::Privilege::kExecute,
                                         governance::SecurableType::kModel, model_securable));
        }
        auto call =
            std::make_unique<ModelCall>(gov, request.caller, request.endpoint, model_securable);
        call->set_agent(request.agent);
        auto use = std::make_unique<GovernedModelUse>(std::move(call), std::move(model));
        // As on the OpenAI routes: input the policy blocks is refused before anything is
        // reserved, and nothing is billed for it.
        SLUICE_RETURN_IF_ERROR(use->admit(request.conversation));
        SLUICE_RETURN_IF_ERROR(use->reserve(request.estimated_tokens, retry_after_s));
        return std::unique_ptr<agents::ModelUse>(std::move(use));
    };
}

}  // namespace sluice::app
