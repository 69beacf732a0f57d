#include "app/model_call.h"

#include <chrono>

#include "common/log.h"

namespace sluice::app {
namespace {

std::int64_t now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace

ModelCall::ModelCall(governance::Governance& gov, governance::RequestContext context,
                     std::string endpoint, std::string securable)
    : gov_(gov),
      context_(std::move(context)),
      endpoint_(std::move(endpoint)),
      securable_(std::move(securable)),
      started_us_(now_us()) {}

ModelCall::~ModelCall() {
    if (reservation_ && !finished_) {
        // The request ended before it could settle (an early error): nothing was generated.
        Status settled = finish(inference::Usage{}, "cancelled");
        if (!settled.ok()) {
            log::error("openai", "cannot settle an abandoned model call",
                       {{"request_id", context_.request_id}, {"error", settled.message()}});
        }
    }
}

Status ModelCall::authorize() {
    if (securable_.empty()) {
        return Status();
    }
    return gov_.authorizer().require(context_, governance::Privilege::kExecute,
                                     governance::SecurableType::kModel, securable_);
}

Result<std::string> ModelCall::guard_input(std::string_view text) {
    SLUICE_ASSIGN_OR_RETURN(governance::GuardrailOutcome outcome,
                            gov_.guardrails().check_input(context_, endpoint_, text));
    return std::move(outcome.text);
}

Status ModelCall::reserve(std::int64_t estimated_tokens,
                          std::optional<std::int64_t>* retry_after_s) {
    governance::LimitDenial denial;
    auto reservation = gov_.usage().reserve(context_, endpoint_, estimated_tokens, &denial);
    if (!reservation.ok()) {
        if (reservation.status().code() == StatusCode::kResourceExhausted &&
            retry_after_s != nullptr) {
            *retry_after_s = denial.retry_after_s;
        }
        return reservation.status();
    }
    reservation_.emplace(std::move(*reservation));
    return Status();
}

Result<std::string> ModelCall::guard_output(std::string_view text) {
    SLUICE_ASSIGN_OR_RETURN(governance::GuardrailOutcome outcome,
                            gov_.guardrails().check_output(context_, endpoint_, text));
    return std::move(outcome.text);
}

Result<governance::OutputGuard> ModelCall::stream_guard() {
    return gov_.guardrails().guard_output(context_, endpoint_);
}

Status ModelCall::allow_token_logprobs() {
    SLUICE_ASSIGN_OR_RETURN(governance::EndpointSettings settings, gov_.endpoints().get(endpoint_));
    const governance::PiiAction output = settings.guardrails.output;
    if (output == governance::PiiAction::kNone) {
        return Status();
    }
    return invalid_argument("'logprobs' is not available on endpoint '" + endpoint_ +
                            "': its output guardrail (" +
                            std::string(governance::pii_action_name(output)) +
                            ") applies to answers, and token logprobs would show the text it "
                            "checks");
}

Status ModelCall::finish(const inference::Usage& usage, std::string status) {
    if (finished_ || !reservation_) {
        return Status();
    }
    finished_ = true;
    governance::UsageReport report;
    report.tokens.input_tokens = usage.prompt_tokens;
    report.tokens.output_tokens = usage.completion_tokens;
    report.tokens.cached_tokens = usage.cached_tokens;
    report.latency_ms = static_cast<double>(now_us() - started_us_) / 1000.0;
    report.status = std::move(status);
    report.agent = agent_;
    auto settled = gov_.usage().settle(std::move(*reservation_), report);
    reservation_.reset();
    if (!settled.ok()) {
        return settled.status();
    }
    if (securable_.empty()) {
        return Status();
    }
    // The answer (this request) came from the model: queryable from either end.
    governance::LineageEdge edge{{governance::LineageNodeType::kModel, securable_},
                                 {governance::LineageNodeType::kAnswer, context_.request_id}};
    Status recorded = gov_.lineage().record(context_, {edge});
    if (!recorded.ok()) {
        // The call is billed and audited; a lost lineage edge does not undo the answer.
        log::error("openai", "cannot record lineage of an answer",
                   {{"request_id", context_.request_id}, {"error", recorded.message()}});
    }
    return Status();
}

void ModelCall::release() {
    reservation_.reset();
    finished_ = true;
}

Result<std::unique_ptr<ModelCall>> open_governed_use(
    governance::Governance& gov, const governance::RequestContext& context,
    const std::string& endpoint, const std::string& securable, std::int64_t estimated_tokens,
    std::string agent, std::optional<std::int64_t>* retry_after_s) {
    auto call = std::make_unique<ModelCall>(gov, context, endpoint, securable);
    SLUICE_RETURN_IF_ERROR(call->authorize());
    SLUICE_RETURN_IF_ERROR(call->reserve(estimated_tokens, retry_after_s));
    call->set_agent(std::move(agent));
    return call;
}

}  // namespace sluice::app
