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

namespace {

bool tagged_eval_set(const governance::Securable& table) {
    auto kind = table.tags.find("kind");
    return kind != table.tags.end() && kind->second == kEvalSetTag;
}

Status not_a_set(const std::string& name) {
    return not_found("evaluation set '" + name + "' does not exist ('" + name +
                     "' is a table that is not an evaluation set)");
}

}  // namespace

Status register_imported_eval_set(governance::Governance& gov, std::int64_t owner,
                                  const std::string& name) {
    auto existing = gov.store().securable(SecurableType::kTable, name);
    if (existing.ok()) {
        return tagged_eval_set(*existing)
                   ? Status()
                   : failed_precondition("'" + name + "' is a table, not an evaluation set");
    }
    if (existing.status().code() != StatusCode::kNotFound) {
        return existing.status();
    }
    return gov.store()
        .create_securable(SecurableType::kTable, name, owner, "evaluation set",
                          {{"kind", std::string(kEvalSetTag)}})
        .status();
}

Status authorize_eval_set_write(governance::Governance& gov,
                                const governance::RequestContext& context, const std::string& name,
                                bool holds_versions) {
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
    if (holds_versions) {
        SLUICE_RETURN_IF_ERROR(require_admin(gov, context, "eval_set.reclaim"));
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
    if (auto table = gov.store().securable(SecurableType::kTable, name);
        table.ok() && !tagged_eval_set(*table)) {
        return not_a_set(name);
    }
    return gov.authorizer().require(context, Privilege::kSelect, SecurableType::kTable, name);
}

Result<bool> authorize_eval_set_delete(governance::Governance& gov,
                                       const governance::RequestContext& context,
                                       const std::string& name, bool holds_versions) {
    SLUICE_RETURN_IF_ERROR(check_eval_set_name(name));
    auto table = gov.store().securable(SecurableType::kTable, name);
    if (table.ok()) {
        if (!tagged_eval_set(*table)) {
            return not_a_set(name);
        }
        SLUICE_RETURN_IF_ERROR(
            gov.authorizer().require(context, Privilege::kManage, SecurableType::kTable, name));
        return true;
    }
    if (table.status().code() != StatusCode::kNotFound) {
        return table.status();
    }
    if (!holds_versions) {
        return not_found("evaluation set '" + name + "' does not exist");
    }
    SLUICE_RETURN_IF_ERROR(require_admin(gov, context, "eval_set.delete_without_table"));
    return false;
}

bool may_read_eval_set(governance::Governance& gov, const governance::RequestContext& context,
                       const std::string& name) {
    if (auto table = gov.store().securable(SecurableType::kTable, name);
        !table.ok() || !tagged_eval_set(*table)) {
        return false;
    }
    auto decision =
        gov.authorizer().check(context.principal_id, Privilege::kSelect, SecurableType::kTable, name);
    return decision.ok() && decision->allowed;
}

bool may_see_run_answers(governance::Governance& gov, const governance::RequestContext& context,
                         const std::string& agent, const std::string& principal) {
    if (agent.empty() || principal == context.principal) {
        return true;
    }
    auto admin = gov.authorizer().is_admin(context.principal_id);
    return admin.ok() && *admin;
}

Result<std::unique_ptr<ModelCall>> open_judge_use(governance::Governance& gov,
                                                  const governance::RequestContext& context,
                                                  const std::string& endpoint,
                                                  const std::string& securable,
                                                  std::optional<std::int64_t>* retry_after_s) {
    // How many tokens a run will take is not known before it runs: the caller needs room under
    // its limits to start, and is charged what the run used when it ends.
    constexpr std::int64_t kStartingEstimate = 1;
    return open_governed_use(gov, context, endpoint, securable, kStartingEstimate, "eval.judges",
                             retry_after_s);
}

void settle_judge_use(ModelCall& call, std::int64_t prompt_tokens, std::int64_t completion_tokens,
                      bool ok) {
    inference::Usage usage;
    usage.prompt_tokens = prompt_tokens;
    usage.completion_tokens = completion_tokens;
    Status settled = call.finish(usage, ok ? "ok" : "error");
    if (!settled.ok()) {
        log::warn("eval", "judge tokens not recorded",
                  {{"error", settled.message()}, {"request_id", call.context().request_id}});
    }
}

}  // namespace sluice::app
