#include "app/agent_model_use.h"

#include <optional>
#include <utility>

#include "app/guarded_chat_model.h"
#include "app/model_call.h"
#include "common/log.h"

namespace sluice::app {
namespace {

// What a blocked tool result becomes: not the caller's input, so not a 400; the run stops
// before the data reaches the model.
Status blocked_agent_input(const inference::ChatMessage& message, const Status& refusal) {
    if (message.role == "tool") {
        return Status(StatusCode::kPermissionDenied,
                      "a tool result: " + refusal.message() + "; the run is stopped");
    }
    return refusal.with_context(message.role + " message");
}

// One run's governed model: the call it settles and the guarded model the planner talks to.
class GovernedModelUse final : public agents::ModelUse {
public:
    GovernedModelUse(std::unique_ptr<ModelCall> call, std::shared_ptr<agents::ChatModel> inner)
        : call_(std::move(call)), model_(*call_, std::move(inner), blocked_agent_input) {}

    ~GovernedModelUse() override {
        if (!finished_) {
            call_->release();  // prepared but never run: nothing reached the model
        }
    }

    agents::ChatModel& model() override { return model_; }

    // The conversation the first turn will send, through the input policy now: a blocked
    // message refuses the run before it starts.
    Status admit(const std::vector<inference::ChatMessage>& conversation) {
        for (const auto& message : conversation) {
            if (message.role != "system") {
                SLUICE_RETURN_IF_ERROR(model_.guard_input(message).status());
            }
        }
        return Status();
    }

    Status reserve(std::int64_t estimated_tokens, std::optional<std::int64_t>* retry_after_s) {
        return call_->reserve(estimated_tokens, retry_after_s);
    }

    void finish(const agents::RunResult* run) override {
        finished_ = true;
        if (model_.turns() == 0 && run == nullptr) {
            call_->release();  // failed before the model ran: nothing to charge
            return;
        }
        std::string status = run == nullptr                                ? "error"
                             : run->stop == agents::StopReason::kCancelled ? "cancelled"
                                                                           : "ok";
        Status settled = call_->finish(model_.spent(), std::move(status));
        if (!settled.ok()) {
            log::error("agents", "agent tokens not recorded",
                       {{"request_id", call_->context().request_id}, {"error", settled.message()}});
        }
    }

private:
    std::unique_ptr<ModelCall> call_;
    GuardedChatModel model_;
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
