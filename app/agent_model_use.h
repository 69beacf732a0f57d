#pragma once
// The server's governance of an agent run's use of the served model (agents/model_use.h), the
// same as for a call of the OpenAI routes (model_call.h):
//   - EXECUTE on the catalog model, for the identity the run acts as (the caller, or the agent's
//     run_as service principal, whose rights the agent lends), audited;
//   - room under the caller's limits for the first turn (429 naming the limit), and every
//     token of the run charged to the caller when it ends, under the agent's name;
//   - the endpoint's input policy on everything the model reads but the agent's instructions:
//     the conversation and the tool results (a blocked user message is a 400; a blocked tool
//     result stops the run with a 403, the data never reaching the model);
//   - the endpoint's output policy on the answer text the model writes, streamed or not.
//   Tool-call arguments go to the agent's tools, not to the caller, and are not masked.

#include <functional>
#include <string>

#include "agents/model_use.h"
#include "governance/governance.h"

namespace sluice::app {

// `securable`: the catalog model governing the served endpoint ("" for none, as for the
// OpenAI routes). `gov` must outlive the governor and the uses it opens.
agents::ModelGovernor agent_model_governor(governance::Governance& gov,
                                           std::function<std::string()> securable);

}  // namespace sluice::app
