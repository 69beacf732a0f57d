#pragma once
// How evaluation sets and runs are governed. An evaluation set is a catalog table
// (`catalog.schema.name`, tagged kind=eval_set), as evaluation data sets are tables in a
// lakehouse catalog; so grants, ownership and inheritance are governance's own:
//
//   create a set            CREATE_TABLE on the schema (the caller then owns the set)
//   add a version           MODIFY on the set
//   read rows, runs of it   SELECT on the set
//
// A run belongs to its set: reading it needs SELECT on the set; running an agent needs, in
// addition, EXECUTE on the agent (checked by the agent runtime for every row). A run whose rows
// an agent or document QA answered holds what they read as the run's principal (passages its
// access lists admit, tool results): like that principal's traces, only it and admins read it.
// Every decision goes through Authorizer::require, which audits allows and denies alike.
//
// Thread safety: free functions; thread-safe.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "app/model_call.h"
#include "common/result.h"
#include "governance/governance.h"

namespace sluice::app {

inline constexpr std::string_view kEvalSetTag = "eval_set";

// kInvalidArgument for a name that is not catalog.schema.name.
Status check_eval_set_name(const std::string& name);

// Creates the set's securable when it does not exist (CREATE_TABLE on the schema, audited as
// securable.create) or requires MODIFY on it; kFailedPrecondition when the name is a table
// that is not an evaluation set. `holds_versions`: the evaluation store already holds versions
// of this name without a table (imported offline where the schema did not exist, or left by a
// table dropped before the catalog API refused to drop a set's table); making their table, whose
// owner reads them all, is then a metastore admin's decision.
Status authorize_eval_set_write(governance::Governance& gov,
                                const governance::RequestContext& context, const std::string& name,
                                bool holds_versions);

// SELECT on the set (audited). kNotFound when there is no such set: no table of that name, or
// one that is not tagged as an evaluation set (a plain table's grants say nothing of a set).
Status authorize_eval_set_read(governance::Governance& gov,
                               const governance::RequestContext& context, const std::string& name);

// Whether the caller may delete the set: MANAGE on its table (audited); for versions without a
// table (imported offline where the schema did not exist, or left by an older table drop), a
// metastore admin. Returns whether the set has a table. kNotFound when there is no such set (no
// versions and no table tagged as one).
Result<bool> authorize_eval_set_delete(governance::Governance& gov,
                                       const governance::RequestContext& context,
                                       const std::string& name, bool holds_versions);

// The set's securable for `eval import`, owned by `owner` (an admin), when it has none.
Status register_imported_eval_set(governance::Governance& gov, std::int64_t owner,
                                  const std::string& name);

// The same decision unaudited, for filtering listings (the listing itself is audited).
bool may_read_eval_set(governance::Governance& gov, const governance::RequestContext& context,
                       const std::string& name);

// Whether the caller may see the rows of a run that `principal` started: true for a run that
// judged its set's own responses (`agent` empty), else for that principal and for admins.
// Checked after SELECT on the run's set.
bool may_see_run_answers(governance::Governance& gov, const governance::RequestContext& context,
                         const std::string& agent, const std::string& principal);

// The judging model's use for an evaluation request (a run or a best-of-N call), governed as
// the OpenAI routes govern theirs (model_call.h): EXECUTE on the served model's catalog
// securable ("" for none; audited) and room under the caller's limits when it starts. Errors
// as open_governed_use (a 429 hint in `retry_after_s`).
Result<std::unique_ptr<ModelCall>> open_judge_use(governance::Governance& gov,
                                                  const governance::RequestContext& context,
                                                  const std::string& endpoint,
                                                  const std::string& securable,
                                                  std::optional<std::int64_t>* retry_after_s);

// Charges the tokens the request used to the caller (token spend, limits, the usage audit
// record) as agent "eval.judges" on the judging model's endpoint. A failure to record is
// logged, not returned: the evaluation has already happened.
void settle_judge_use(ModelCall& call, std::int64_t prompt_tokens, std::int64_t completion_tokens,
                      bool ok);

}  // namespace sluice::app
