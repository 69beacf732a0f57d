#pragma once
// The evaluation REST API (docs/evaluation.md):
//   POST /api/eval/sets                         import a version ({name, rows} or {name, jsonl})
//   GET  /api/eval/sets                         sets the caller may read, latest versions
//   GET  /api/eval/sets/{name}                  a set's versions
//   GET  /api/eval/sets/{name}/rows?version=N   rows of a version (latest without N)
//   GET  /api/eval/sets/{name}/export?version=N the same as JSON lines
//   DELETE /api/eval/sets/{name}                the set: its versions and its table
//   POST /api/eval/sets/{name}/corrections      human corrections as a new version
//   POST /api/eval/runs                         run an agent or document QA over a set, judged
//   GET  /api/eval/runs                         runs of sets the caller may read
//   GET  /api/eval/runs/{id}                    one run with its rows
//   GET  /api/eval/runs/{id}/report.html        its HTML report
//   GET  /api/eval/compare?a=ID&b=ID            two runs compared
//   POST /api/feedback, GET /api/feedback?trace_id=   human feedback on a trace
//   GET  /api/eval/calibration?judge=NAME       judges against human labels
//   PUT/GET /api/eval/monitor                   live-traffic judging (admins)
//   POST /api/eval/best-of-n                    N candidates, the best by the judges
// Access (app/eval_access.h): sets are governed as catalog tables; runs through their set;
// feedback through its trace (the trace's principal or an admin). Every access is audited.
//
// Thread safety: handlers run on the server's worker threads; everything shared is thread-safe.

#include <functional>
#include <memory>

#include "agents/agent_runtime.h"
#include "agents/chat_model.h"
#include "agents/evaluation/eval_store.h"
#include "agents/evaluation/monitor.h"
#include "agents/trace.h"
#include "app/http_server.h"
#include "governance/governance.h"
#include "retrieval/index_manager.h"

namespace sluice::app {

struct EvalServices {
    governance::Governance& gov;
    retrieval::IndexManager& indexes;
    agents::evaluation::EvalStore& store;
    agents::TraceStore& traces;
    agents::AgentRuntime& runtime;
    // The served model: answers document QA and judges. kUnavailable while it loads.
    std::function<Result<std::shared_ptr<agents::ChatModel>>()> model;
    agents::evaluation::Monitor* monitor = nullptr;  // null: no live-traffic judging
    // The catalog model governing the served one (EXECUTE to use it); "" or empty for none.
    std::function<std::string()> model_securable = {};
};

void add_eval_routes(HttpServer& server, EvalServices& services);
void add_feedback_routes(HttpServer& server, EvalServices& services);

}  // namespace sluice::app
