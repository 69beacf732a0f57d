#pragma once
// What makes agents, tools and connections catalog objects beyond their securables: their
// definitions, kept in catalog.db (table agent_objects) beside the securables governance owns.
// Governance holds names, owners and grants; this holds what to run.
//
//   AgentSpec       an agent (securable type agent, "catalog.schema.name"): model endpoint,
//                   instructions, tools (function full names), budgets, planner, and an
//                   optional service principal it runs as
//   ToolSpec        a tool (securable type function): kind and its configuration
//   ConnectionSpec  a connection (securable type connection): allowed hosts, secret, limits
//
// JSON shapes (docs/agents.md) are parsed with field-naming errors; a connection's secret is
// never part of to_json() unless asked for storage. In catalog.db a connection's secret is
// sealed by governance's SecretBox (AES-256-GCM, "connection:<name>" as associated data);
// open() seals the secrets of rows stored before that, in one transaction.
//
// Errors reading a connection whose secret does not open (another key, an altered row) are
// kDataLoss naming the connection, never the secret. open() refuses a catalog holding secrets
// sealed with another key than `secrets` (the key file was lost or replaced): restoring the key
// or forget_foreign_secrets() is the way on.
//
// Thread safety: thread-safe.

#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agents/http_tools.h"
#include "agents/planner.h"
#include "common/result.h"
#include "governance/secret_box.h"

namespace sluice::agents {

struct AgentSpec {
    std::string name;      // catalog.schema.agent
    std::string endpoint;  // model endpoint; "" for the served model
    std::string instructions;
    std::vector<std::string> tools;  // function full names
    Budgets budgets;
    std::string planner = "function_calling";
    std::string run_as;  // a service principal, or "" to run as the caller
};
Result<AgentSpec> agent_from_json(const nlohmann::json& json);
nlohmann::json agent_to_json(const AgentSpec& spec);

enum class ToolKind { kSqlQuery, kSqlTemplate, kVectorSearch, kHttpRequest, kHttpEndpoint };
std::string_view tool_kind_name(ToolKind kind);

struct ToolSpec {
    std::string name;  // catalog.schema.function
    ToolKind kind = ToolKind::kSqlQuery;
    std::string description;
    // sql_query: {"schema", "database"}; sql_template: + {"sql", "parameters"};
    // vector_search: {"index"}; http_request: {"connection"};
    // http_endpoint: {"connection", "method", "url", "parameters"}.
    nlohmann::json config = nlohmann::json::object();
};
Result<ToolSpec> tool_from_json(const nlohmann::json& json);
nlohmann::json tool_to_json(const ToolSpec& spec);

Result<Connection> connection_from_json(const nlohmann::json& json);
nlohmann::json connection_to_json(const Connection& connection, bool with_secret);
// A connection defined again without a "secret" member (as GET shows it: has_secret, never the
// secret) keeps the stored secret, so that reading a definition, editing it and sending it back
// loses nothing. Only where it goes is unchanged, though: with other allowed_hosts or another
// secret_header the secret would reach places it was not given for, and that is
// kInvalidArgument asking for the secret again. Nothing to keep when `stored` has none.
Status keep_stored_secret(Connection& incoming, const Connection& stored);

class AgentStore {
public:
    // `secrets` must outlive the store.
    static Result<std::unique_ptr<AgentStore>> open(const std::filesystem::path& db_path,
                                                    const governance::SecretBox& secrets);
    ~AgentStore();

    // A connection whose secret was sealed with a key other than the one given.
    struct ForeignSecret {
        std::string connection;
        std::string key_id;  // the key it was sealed with
    };
    // Removes, in one transaction, the secrets sealed with another key than `secrets`: when that
    // key is lost for good, they can never be read again, and each connection's secret is then
    // set anew. Returns the connections changed.
    static Result<std::vector<ForeignSecret>> forget_foreign_secrets(
        const std::filesystem::path& db_path, const governance::SecretBox& secrets);

    Status put_agent(const AgentSpec& spec);
    Result<AgentSpec> agent(const std::string& name);
    Status put_tool(const ToolSpec& spec);
    Result<ToolSpec> tool(const std::string& name);
    Status put_connection(const Connection& connection);
    Result<Connection> connection(const std::string& name);
    // kNotFound when absent. kind: "agent", "tool", "connection".
    Status remove(const std::string& kind, const std::string& name);

    struct Impl;
    explicit AgentStore(std::unique_ptr<Impl> impl);

private:
    Status put(const std::string& kind, const std::string& name, const nlohmann::json& spec);
    Result<nlohmann::json> get(const std::string& kind, const std::string& name);
    std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::agents
