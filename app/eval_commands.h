#pragma once
// `sluice eval ...`: evaluation from the command line, on a data directory no server holds
// (like `sluice ask`):
//   sluice eval import --set c.s.name FILE.jsonl     a new version of a set
//   sluice eval sets                                 sets and their latest versions
//   sluice eval run --set NAME (--agent NAME | --qa-index NAME) [--version N]
//                   [--judges a,b] [--principal P] [--group G]... [--concurrency N] [--json]
//   sluice eval compare RUN_A RUN_B [--json]
//   sluice eval report RUN_ID [--out FILE.html] [--json]
// The operator who owns the data directory acts directly on it; an agent still runs as
// --principal, whose EXECUTE on the agent and rights below it are checked and audited.

#include "app/cli.h"

namespace sluice::app {

void add_eval_commands(Cli& cli);

}  // namespace sluice::app
