#include "app/eval_access.h"

#include "app/governance_http.h"
#include "common/log.h"

namespace sluice::app {

using governance::Privilege;
using governance::SecurableType;

Status check_eval_set_name(const std::string& name) {
    auto parts = governance::split_full_name(SecurableType::kTable, name);
    if (!parts.ok()) {
        return invalid_argument("name: evaluation sets are named catalog.schema.name (" +
                                parts.status().message() + ")");
    }
    return Status();
}

Status authorize_eval_set_write(governance::Governance& gov,
                                const governance::RequestContext& context,
                                const std::string& name) {
    SLUICE_RETURN_IF_ERROR(check_eval_set_name(name));
    auto existing = gov.store().securable(SecurableType::kTable, name);
    if (existing.ok()) {
        auto kind = existing->tags.find("kind");
        if (kind == existing->tags.end() || kind->second != kEvalSetTag) {
            return failed_precondition("'" + name + "' is a table, not an evaluation set");
        }
        return gov.authorizer().require(context, Privilege::kModify, SecurableType::kTable, name);
    }
    if (existing.status().code() != StatusCode::kNotFound) {
        return existing.status();
    }
    std::string schema = name.substr(0, name.rfind('.'));
    SLUICE_RETURN_IF_ERROR(gov.authorizer().require(context, Privilege::kCreateTable,
                                                    SecurableType::kSchema, schema));
    auto created = gov.store().create_securable(SecurableType::kTable, name, context.principal_id,
                                                "evaluation set",
                                                {{"kind", std::string(kEvalSetTag)}});
    SLUICE_RETURN_IF_ERROR(
        audit_action(gov, context, "securable.create", "table:" + name, created.status(),
                     "evaluation set"));
    return created.status();
}

Status authorize_eval_set_read(governance::Governance& gov,
                               const governance::RequestContext& context, const std::string& name) {
    SLUICE_RETURN_IF_ERROR(check_eval_set_name(name));
    return gov.authorizer().require(context, Privilege::kSelect, SecurableType::kTable, name);
}

bool may_read_eval_set(governance::Governance& gov, const governance::RequestContext& context,
                       const std::string& name) {
    auto decision =
        gov.authorizer().check(context.principal_id, Privilege::kSelect, SecurableType::kTable, name);
    return decision.ok() && decision->allowed;
}

void record_judge_usage(governance::Governance& gov, const governance::RequestContext& context,
                        const std::string& endpoint, std::int64_t prompt_tokens,
                        std::int64_t completion_tokens) {
    governance::UsageReport report;
    report.tokens.input_tokens = prompt_tokens;
    report.tokens.output_tokens = completion_tokens;
    report.agent = "eval.judges";
    auto recorded = gov.usage().record(context, endpoint, report);
    if (!recorded.ok()) {
        log::warn("eval", "judge tokens not recorded",
                  {{"error", recorded.status().message()}, {"request_id", context.request_id}});
    }
}

}  // namespace sluice::app
