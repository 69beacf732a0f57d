#pragma once
// The agents REST API (docs/agents.md):
//   POST /api/qa                               document QA (stream or not)
//   GET  /api/traces/{id}                      a trace (its principal or an admin)
//   GET  /api/traces/{id}/otlp                 the same as OTLP/JSON
//   PUT/GET /api/agents/{full_name}            an agent's definition (MANAGE / BROWSE)
//   PUT/GET /api/tools/{full_name}             a tool's definition (MANAGE / BROWSE)
//   PUT/GET /api/connections/{name}            a connection's definition (MANAGE / BROWSE)
//   POST /api/agents/{full_name}/invoke        run an agent (EXECUTE), events streamed
// and the chat delegate that serves `model: "agents/<full_name>"` on /v1/chat/completions.
// The catalog objects themselves (agents, functions, connections) are created, owned and
// granted through the catalog API; these routes attach what to run to them.
//
// Thread safety: handlers run on the server's worker threads; everything shared is thread-safe.

#include <functional>
#include <memory>
#include <mutex>

#include "agents/agent_runtime.h"
#include "agents/chat_model.h"
#include "agents/evaluation/monitor.h"
#include "app/http_server.h"
#include "app/model_host.h"
#include "app/openai_routes.h"
#include "governance/governance.h"
#include "retrieval/index_manager.h"

namespace sluice::app {

// The served model as a ChatModel, made once the engine has loaded.
class ServedChatModel {
public:
    explicit ServedChatModel(ModelHost& host) : host_(host) {}
    // kUnavailable while the model loads (or failed to).
    Result<std::shared_ptr<agents::ChatModel>> get();
    // The catalog model that governs it (/model/securable; "" for none).
    std::string securable() const;

private:
    ModelHost& host_;
    std::mutex mutex_;
    std::shared_ptr<agents::ChatModel> model_;  // guarded by mutex_
};

struct AgentServices {
    governance::Governance& gov;
    retrieval::IndexManager& indexes;
    agents::AgentStore& store;
    agents::TraceStore& traces;
    agents::AgentRuntime& runtime;
    ServedChatModel& model;
    // Offered every answer, to judge a sample of live traffic; null: no monitoring.
    agents::evaluation::Monitor* monitor = nullptr;
};

void add_agent_routes(HttpServer& server, AgentServices& services);
ChatDelegate agent_chat_delegate(AgentServices& services);

}  // namespace sluice::app
