#include "agents/model_use.h"

#include <algorithm>
#include <chrono>

#include "common/log.h"

namespace sluice::agents {
namespace {

class RecordedModelUse : public ModelUse {
public:
    RecordedModelUse(governance::Governance& gov, ModelUseRequest request,
                     std::shared_ptr<ChatModel> model)
        : gov_(gov),
          request_(std::move(request)),
          model_(std::move(model)),
          started_(std::chrono::steady_clock::now()) {}

    ChatModel& model() override { return *model_; }

    void finish(const RunResult* run) override {
        if (run == nullptr) {
            return;  // a failed run reports nothing it could count
        }
        governance::UsageReport report;
        report.tokens.input_tokens = run->prompt_tokens;
        report.tokens.output_tokens = run->completion_tokens;
        report.latency_ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started_)
                .count();
        report.agent = request_.agent;
        report.status = run->stop == StopReason::kCancelled ? "cancelled" : "ok";
        auto recorded = gov_.usage().record(request_.caller, request_.endpoint, report);
        if (!recorded.ok()) {
            // The answer stands; the missing row is logged where it can be reconciled.
            log::error("agents", "agent tokens not recorded",
                       {{"agent", request_.agent},
                        {"request_id", request_.caller.request_id},
                        {"error", recorded.status().message()}});
        }
    }

private:
    governance::Governance& gov_;
    ModelUseRequest request_;
    std::shared_ptr<ChatModel> model_;
    std::chrono::steady_clock::time_point started_;
};

}  // namespace

std::unique_ptr<ModelUse> recorded_model_use(governance::Governance& gov, ModelUseRequest request,
                                             std::shared_ptr<ChatModel> model) {
    return std::make_unique<RecordedModelUse>(gov, std::move(request), std::move(model));
}

std::int64_t first_turn_estimate(const ChatModel& model, const RunRequest& request) {
    std::int64_t tokens = model.count_tokens(request.instructions) + request.max_tokens_per_turn;
    for (const auto& message : request.messages) {
        tokens += model.count_tokens(message.content);
    }
    return std::min(tokens, request.budgets.max_tokens);
}

}  // namespace sluice::agents
