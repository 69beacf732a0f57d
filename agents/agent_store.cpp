#include "agents/agent_store.h"

#include <algorithm>

#include "agents/detail/known_fields.h"
#include "agents/detail/sqlite.h"
#include "common/log.h"

namespace sluice::agents {
namespace {

using nlohmann::json;

Result<std::string> string_field(const json& value, const char* field, bool required,
                                 const std::string& fallback = "") {
    if (!value.contains(field)) {
        if (required) {
            return invalid_argument(std::string(field) + ": required");
        }
        return fallback;
    }
    if (!value[field].is_string()) {
        return invalid_argument(std::string(field) + ": expected a string");
    }
    return value[field].get<std::string>();
}

Status three_part(const std::string& name, const char* what) {
    int dots = 0;
    for (char c : name) {
        dots += c == '.' ? 1 : 0;
    }
    if (dots != 2 || name.front() == '.' || name.back() == '.' ||
        name.find("..") != std::string::npos) {
        return invalid_argument(std::string(what) + " '" + name +
                                "': expected catalog.schema.name");
    }
    return Status();
}

}  // namespace

Result<AgentSpec> agent_from_json(const json& value) {
    if (!value.is_object()) {
        return invalid_argument("agent: expected an object");
    }
    SLUICE_RETURN_IF_ERROR(detail::refuse_unknown_fields(
        value, "agent",
        {"name", "endpoint", "instructions", "tools", "budgets", "planner", "run_as"}));
    AgentSpec spec;
    SLUICE_ASSIGN_OR_RETURN(spec.name, string_field(value, "name", true));
    SLUICE_RETURN_IF_ERROR(three_part(spec.name, "name"));
    SLUICE_ASSIGN_OR_RETURN(spec.endpoint, string_field(value, "endpoint", false));
    SLUICE_ASSIGN_OR_RETURN(spec.instructions, string_field(value, "instructions", false));
    SLUICE_ASSIGN_OR_RETURN(spec.planner,
                            string_field(value, "planner", false, "function_calling"));
    SLUICE_RETURN_IF_ERROR(planner_named(spec.planner).status());
    SLUICE_ASSIGN_OR_RETURN(spec.run_as, string_field(value, "run_as", false));
    if (value.contains("tools")) {
        if (!value["tools"].is_array()) {
            return invalid_argument("tools: expected an array of function names");
        }
        for (const json& tool : value["tools"]) {
            if (!tool.is_string()) {
                return invalid_argument("tools: expected an array of function names");
            }
            SLUICE_RETURN_IF_ERROR(three_part(tool.get<std::string>(), "tools"));
            spec.tools.push_back(tool.get<std::string>());
        }
    }
    SLUICE_ASSIGN_OR_RETURN(spec.budgets, budgets_from_json(value.value("budgets", json())));
    return spec;
}

json agent_to_json(const AgentSpec& spec) {
    return {{"name", spec.name},          {"endpoint", spec.endpoint},
            {"instructions", spec.instructions}, {"tools", spec.tools},
            {"budgets", budgets_to_json(spec.budgets)}, {"planner", spec.planner},
            {"run_as", spec.run_as}};
}

std::string_view tool_kind_name(ToolKind kind) {
    switch (kind) {
        case ToolKind::kSqlQuery: return "sql_query";
        case ToolKind::kSqlTemplate: return "sql_template";
        case ToolKind::kVectorSearch: return "vector_search";
        case ToolKind::kHttpRequest: return "http_request";
        case ToolKind::kHttpEndpoint: return "http_endpoint";
    }
    return "sql_query";
}

Result<ToolSpec> tool_from_json(const json& value) {
    if (!value.is_object()) {
        return invalid_argument("tool: expected an object");
    }
    SLUICE_RETURN_IF_ERROR(
        detail::refuse_unknown_fields(value, "tool", {"name", "kind", "description", "config"}));
    ToolSpec spec;
    SLUICE_ASSIGN_OR_RETURN(spec.name, string_field(value, "name", true));
    SLUICE_RETURN_IF_ERROR(three_part(spec.name, "name"));
    SLUICE_ASSIGN_OR_RETURN(std::string kind, string_field(value, "kind", true));
    bool known = false;
    for (ToolKind k : {ToolKind::kSqlQuery, ToolKind::kSqlTemplate, ToolKind::kVectorSearch,
                       ToolKind::kHttpRequest, ToolKind::kHttpEndpoint}) {
        if (tool_kind_name(k) == kind) {
            spec.kind = k;
            known = true;
        }
    }
    if (!known) {
        return invalid_argument("kind '" + kind +
                                "': expected sql_query, sql_template, vector_search, "
                                "http_request or http_endpoint");
    }
    SLUICE_ASSIGN_OR_RETURN(spec.description, string_field(value, "description", false));
    spec.config = value.value("config", json::object());
    if (!spec.config.is_object()) {
        return invalid_argument("config: expected an object");
    }
    auto need = [&](const char* field) -> Status {
        if (!spec.config.contains(field) || !spec.config[field].is_string()) {
            return invalid_argument(std::string("config.") + field + ": required string for a " +
                                    kind + " tool");
        }
        return Status();
    };
    switch (spec.kind) {
        case ToolKind::kSqlTemplate:
            SLUICE_RETURN_IF_ERROR(need("sql"));
            if (!spec.config.contains("parameters") || !spec.config["parameters"].is_object()) {
                return invalid_argument("config.parameters: required JSON Schema object");
            }
            [[fallthrough]];
        case ToolKind::kSqlQuery:
            SLUICE_RETURN_IF_ERROR(need("schema"));
            SLUICE_RETURN_IF_ERROR(need("database"));
            break;
        case ToolKind::kVectorSearch:
            SLUICE_RETURN_IF_ERROR(need("index"));
            break;
        case ToolKind::kHttpEndpoint:
            SLUICE_RETURN_IF_ERROR(need("method"));
            SLUICE_RETURN_IF_ERROR(need("url"));
            if (!spec.config.contains("parameters") || !spec.config["parameters"].is_object()) {
                return invalid_argument("config.parameters: required JSON Schema object");
            }
            [[fallthrough]];
        case ToolKind::kHttpRequest:
            SLUICE_RETURN_IF_ERROR(need("connection"));
            break;
    }
    return spec;
}

json tool_to_json(const ToolSpec& spec) {
    return {{"name", spec.name},
            {"kind", tool_kind_name(spec.kind)},
            {"description", spec.description},
            {"config", spec.config}};
}

Result<Connection> connection_from_json(const json& value) {
    if (!value.is_object()) {
        return invalid_argument("connection: expected an object");
    }
    // has_secret is what GET shows in place of the secret: a definition read, edited and put
    // back holds it.
    SLUICE_RETURN_IF_ERROR(
        detail::refuse_unknown_fields(value, "connection",
                                      {"name", "allowed_hosts", "secret_header", "secret",
                                       "timeout_ms", "max_response_bytes", "has_secret"}));
    Connection connection;
    SLUICE_ASSIGN_OR_RETURN(connection.name, string_field(value, "name", true));
    if (connection.name.empty() || connection.name.find('.') != std::string::npos) {
        return invalid_argument("name '" + connection.name + "': a connection name has one part");
    }
    if (!value.contains("allowed_hosts") || !value["allowed_hosts"].is_array() ||
        value["allowed_hosts"].empty()) {
        return invalid_argument("allowed_hosts: expected a non-empty array of host[:port]");
    }
    for (const json& host : value["allowed_hosts"]) {
        if (!host.is_string() || host.get<std::string>().empty()) {
            return invalid_argument("allowed_hosts: expected a non-empty array of host[:port]");
        }
        connection.allowed_hosts.push_back(host.get<std::string>());
    }
    SLUICE_ASSIGN_OR_RETURN(connection.secret_header, string_field(value, "secret_header", false));
    SLUICE_ASSIGN_OR_RETURN(connection.secret, string_field(value, "secret", false));
    if (value.contains("timeout_ms")) {
        // Compared as a 64-bit number: read as int, 4294967297 became 1 and passed.
        const json& v = value["timeout_ms"];
        if (!v.is_number_integer() || v.get<std::int64_t>() < 1 || v.get<std::int64_t>() > 600000) {
            return invalid_argument("timeout_ms: expected an integer in 1..600000");
        }
        connection.timeout_ms = v.get<int>();
    }
    if (value.contains("max_response_bytes")) {
        const json& v = value["max_response_bytes"];
        if (!v.is_number_integer() || v.get<std::int64_t>() < 1 ||
            v.get<std::int64_t>() > 64 * 1024 * 1024) {
            return invalid_argument("max_response_bytes: expected an integer in 1..67108864");
        }
        connection.max_response_bytes = v.get<size_t>();
    }
    return connection;
}

Status keep_stored_secret(Connection& incoming, const Connection& stored) {
    if (stored.secret.empty()) {
        return Status();
    }
    auto hosts = [](std::vector<std::string> list) {
        std::sort(list.begin(), list.end());
        list.erase(std::unique(list.begin(), list.end()), list.end());
        return list;
    };
    if (hosts(incoming.allowed_hosts) != hosts(stored.allowed_hosts) ||
        incoming.secret_header != stored.secret_header) {
        return invalid_argument(
            "secret: connection '" + incoming.name +
            "' changes its allowed_hosts or secret_header, and its stored secret is not carried "
            "to them: send the secret again, or \"secret\": \"\" to remove it");
    }
    incoming.secret = stored.secret;
    return Status();
}

json connection_to_json(const Connection& connection, bool with_secret) {
    json out = {{"name", connection.name},
                {"allowed_hosts", connection.allowed_hosts},
                {"secret_header", connection.secret_header},
                {"timeout_ms", connection.timeout_ms},
                {"max_response_bytes", connection.max_response_bytes}};
    if (with_secret) {
        out["secret"] = connection.secret;
    } else {
        out["has_secret"] = !connection.secret.empty();
    }
    return out;
}

struct AgentStore::Impl {
    std::mutex mutex;
    detail::DbPtr db;  // guarded by mutex
    const governance::SecretBox* secrets = nullptr;
};

namespace {

// The associated data a connection's secret is sealed with: a sealed value moved onto another
// connection's row does not open.
std::string secret_identity(const std::string& connection) { return "connection:" + connection; }

// Seals, in one transaction, the secrets of connection rows stored before secrets were
// encrypted. Returns how many rows changed.
Result<int> seal_plaintext_secrets(sqlite3* db, const governance::SecretBox& secrets) {
    SLUICE_RETURN_IF_ERROR(detail::exec(db, "BEGIN IMMEDIATE"));
    auto sealed = [&]() -> Result<int> {
        SLUICE_ASSIGN_OR_RETURN(auto select,
                                detail::prepare(db, "SELECT name, spec FROM agent_objects "
                                                    "WHERE kind = 'connection'"));
        std::vector<std::pair<std::string, json>> plain;
        int rc = 0;
        while ((rc = sqlite3_step(select.get())) == SQLITE_ROW) {
            std::string name = detail::column_text(select.get(), 0);
            json spec = json::parse(detail::column_text(select.get(), 1), nullptr, false);
            if (spec.is_discarded()) {
                return data_loss("connection '" + name + "': stored definition is not JSON");
            }
            if (spec.contains("secret") && spec["secret"].is_string() &&
                !spec["secret"].get<std::string>().empty() &&
                !governance::SecretBox::is_sealed(spec["secret"].get<std::string>())) {
                plain.emplace_back(std::move(name), std::move(spec));
            }
        }
        if (rc != SQLITE_DONE) {
            return detail::sqlite_error(db, "reading connections");
        }
        SLUICE_ASSIGN_OR_RETURN(auto update,
                                detail::prepare(db, "UPDATE agent_objects SET spec = ? "
                                                    "WHERE kind = 'connection' AND name = ?"));
        for (auto& [name, spec] : plain) {
            SLUICE_ASSIGN_OR_RETURN(std::string value,
                                    secrets.seal(secret_identity(name),
                                                 spec["secret"].get<std::string>()));
            spec["secret"] = std::move(value);
            sqlite3_reset(update.get());
            detail::bind_text(update.get(), 1, dump_safe(spec));
            detail::bind_text(update.get(), 2, name);
            if (sqlite3_step(update.get()) != SQLITE_DONE) {
                return detail::sqlite_error(db, "sealing the secret of connection '" + name + "'");
            }
        }
        return static_cast<int>(plain.size());
    }();
    if (!sealed.ok()) {
        (void)detail::exec(db, "ROLLBACK");
        return sealed.status();
    }
    SLUICE_RETURN_IF_ERROR(detail::exec(db, "COMMIT"));
    return sealed;
}

// A connection whose secret was sealed with another key, with its stored definition.
struct ForeignRow {
    AgentStore::ForeignSecret secret;
    json spec;
};

// The connections whose secrets were sealed with a key other than `secrets`.
Result<std::vector<ForeignRow>> foreign_secrets(sqlite3* db, const governance::SecretBox& secrets) {
    SLUICE_ASSIGN_OR_RETURN(auto select,
                            detail::prepare(db,
                                            "SELECT name, spec FROM agent_objects "
                                            "WHERE kind = 'connection' ORDER BY name"));
    std::vector<ForeignRow> out;
    int rc = 0;
    while ((rc = sqlite3_step(select.get())) == SQLITE_ROW) {
        std::string name = detail::column_text(select.get(), 0);
        json spec = json::parse(detail::column_text(select.get(), 1), nullptr, false);
        if (spec.is_discarded() || !spec.contains("secret") || !spec["secret"].is_string()) {
            continue;  // reading the connection names what is wrong with it
        }
        std::string key_id =
            governance::SecretBox::sealed_key_id(spec["secret"].get<std::string>());
        if (!key_id.empty() && key_id != secrets.key_id()) {
            out.push_back({{std::move(name), std::move(key_id)}, std::move(spec)});
        }
    }
    if (rc != SQLITE_DONE) {
        return detail::sqlite_error(db, "reading connections");
    }
    return out;
}

// A definition lives as long as its catalog object. Left behind, it would be taken over by the
// next object made with that name, by anyone allowed to create one: an agent running as the
// service principal an admin chose for it, a SQL tool on an admin's database, a connection's
// sealed secret. A trigger on governance's table removes it in the same transaction as the
// object, whichever way the object goes (its own DELETE, a forced delete of its schema or
// catalog). Definitions orphaned before the trigger existed are removed when it is installed.
// Where catalog.db has no securables table (a store used on its own), there is nothing to follow.
Status follow_securables(sqlite3* db) {
    SLUICE_ASSIGN_OR_RETURN(auto tables,
                            detail::prepare(db,
                                            "SELECT name FROM sqlite_master WHERE type = "
                                            "'table' AND name = 'securables' UNION ALL "
                                            "SELECT name FROM sqlite_master WHERE type = "
                                            "'trigger' AND name = 'agent_objects_follow'"));
    bool has_securables = false;
    bool has_trigger = false;
    int rc = 0;
    while ((rc = sqlite3_step(tables.get())) == SQLITE_ROW) {
        std::string name = detail::column_text(tables.get(), 0);
        (name == "securables" ? has_securables : has_trigger) = true;
    }
    if (rc != SQLITE_DONE) {
        return detail::sqlite_error(db, "reading catalog.db's schema");
    }
    if (!has_securables || has_trigger) {
        return Status();
    }
    // The definition kind of a securable row's type.
    auto kind_of = [](std::string_view row) {
        std::string out = "CASE ";
        out += row;
        out +=
            ".type WHEN 'agent' THEN 'agent' WHEN 'function' THEN 'tool' "
            "WHEN 'connection' THEN 'connection' END";
        return out;
    };
    SLUICE_RETURN_IF_ERROR(detail::exec(db, "BEGIN IMMEDIATE"));
    auto installed = [&]() -> Result<int> {
        SLUICE_RETURN_IF_ERROR(
            detail::exec(db,
                         "CREATE TRIGGER agent_objects_follow AFTER DELETE ON securables "
                         "WHEN OLD.type IN ('agent', 'function', 'connection') BEGIN "
                         "DELETE FROM agent_objects WHERE name = OLD.full_name AND kind = " +
                             kind_of("OLD") + "; END"));
        SLUICE_RETURN_IF_ERROR(detail::exec(
            db,
            "DELETE FROM agent_objects WHERE NOT EXISTS (SELECT 1 FROM securables s WHERE "
            "s.full_name = agent_objects.name AND " +
                kind_of("s") + " = agent_objects.kind)"));
        return sqlite3_changes(db);
    }();
    if (!installed.ok()) {
        (void)detail::exec(db, "ROLLBACK");
        return installed.status();
    }
    SLUICE_RETURN_IF_ERROR(detail::exec(db, "COMMIT"));
    if (*installed > 0) {
        log::warn("agents", "removed definitions whose catalog objects were deleted",
                  {{"definitions", *installed}});
    }
    return Status();
}

}  // namespace

Result<std::vector<AgentStore::ForeignSecret>> AgentStore::forget_foreign_secrets(
    const std::filesystem::path& db_path, const governance::SecretBox& secrets) {
    SLUICE_ASSIGN_OR_RETURN(detail::DbPtr db, detail::open_db(db_path, SQLITE_OPEN_READWRITE));
    sqlite3* handle = db.get();
    SLUICE_RETURN_IF_ERROR(detail::exec(handle, "BEGIN IMMEDIATE"));
    auto forgotten = [&]() -> Result<std::vector<ForeignSecret>> {
        SLUICE_ASSIGN_OR_RETURN(auto foreign, foreign_secrets(handle, secrets));
        SLUICE_ASSIGN_OR_RETURN(auto update,
                                detail::prepare(handle,
                                                "UPDATE agent_objects SET spec = ? "
                                                "WHERE kind = 'connection' AND name = ?"));
        std::vector<ForeignSecret> removed;
        for (ForeignRow& row : foreign) {
            row.spec.erase("secret");
            sqlite3_reset(update.get());
            detail::bind_text(update.get(), 1, dump_safe(row.spec));
            detail::bind_text(update.get(), 2, row.secret.connection);
            if (sqlite3_step(update.get()) != SQLITE_DONE) {
                return detail::sqlite_error(
                    handle, "removing the secret of connection '" + row.secret.connection + "'");
            }
            removed.push_back(std::move(row.secret));
        }
        return removed;
    }();
    if (!forgotten.ok()) {
        (void)detail::exec(handle, "ROLLBACK");
        return forgotten.status();
    }
    SLUICE_RETURN_IF_ERROR(detail::exec(handle, "COMMIT"));
    return forgotten;
}

AgentStore::AgentStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AgentStore::~AgentStore() = default;

Result<std::unique_ptr<AgentStore>> AgentStore::open(const std::filesystem::path& db_path,
                                                     const governance::SecretBox& secrets) {
    SLUICE_ASSIGN_OR_RETURN(detail::DbPtr db,
                            detail::open_db(db_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE));
    SLUICE_RETURN_IF_ERROR(detail::exec(db.get(), R"sql(
        CREATE TABLE IF NOT EXISTS agent_objects (
            kind TEXT NOT NULL, name TEXT NOT NULL, spec TEXT NOT NULL,
            updated_at_us INTEGER NOT NULL, PRIMARY KEY (kind, name));
    )sql"));
    SLUICE_RETURN_IF_ERROR(follow_securables(db.get()));
    // Checked before anything is sealed: a key made in place of a lost one must not start
    // sealing beside secrets it can never open.
    SLUICE_ASSIGN_OR_RETURN(auto foreign, foreign_secrets(db.get(), secrets));
    if (!foreign.empty()) {
        std::string names;
        for (const ForeignRow& row : foreign) {
            names += (names.empty() ? "'" : ", '") + row.secret.connection + "' (key id " +
                     row.secret.key_id + ")";
        }
        return failed_precondition(
            "the secrets of connection" + std::string(foreign.size() > 1 ? "s " : " ") + names +
            " were sealed with another key than this data directory's secret key (key id " +
            secrets.key_id() +
            "): the key file was lost or replaced. Restore the file that sealed them "
            "(governance.secret_key_file, by default secrets.key in the data directory), or, if "
            "it is lost for good, run `sluice connection forget-secrets --data-dir " +
            db_path.parent_path().string() + "` and set each connection's secret again");
    }
    SLUICE_ASSIGN_OR_RETURN(int sealed, seal_plaintext_secrets(db.get(), secrets));
    if (sealed > 0) {
        log::info("agents", "sealed connection secrets stored in plain text",
                  {{"connections", sealed}});
    }
    auto impl = std::make_unique<Impl>();
    impl->db = std::move(db);
    impl->secrets = &secrets;
    return std::make_unique<AgentStore>(std::move(impl));
}

Status AgentStore::put(const std::string& kind, const std::string& name, const json& spec) {
    std::lock_guard lock(impl_->mutex);
    sqlite3* db = impl_->db.get();
    SLUICE_ASSIGN_OR_RETURN(auto stmt, detail::prepare(db, "INSERT OR REPLACE INTO agent_objects "
                                                           "VALUES (?, ?, ?, ?)"));
    detail::bind_text(stmt.get(), 1, kind);
    detail::bind_text(stmt.get(), 2, name);
    detail::bind_text(stmt.get(), 3, dump_safe(spec));
    sqlite3_bind_int64(stmt.get(), 4, now_us());
    if (sqlite3_step(stmt.get()) != SQLITE_DONE) {
        return detail::sqlite_error(db, kind + " '" + name + "'");
    }
    return Status();
}

Result<json> AgentStore::get(const std::string& kind, const std::string& name) {
    std::lock_guard lock(impl_->mutex);
    sqlite3* db = impl_->db.get();
    SLUICE_ASSIGN_OR_RETURN(auto stmt, detail::prepare(db, "SELECT spec FROM agent_objects "
                                                           "WHERE kind = ? AND name = ?"));
    detail::bind_text(stmt.get(), 1, kind);
    detail::bind_text(stmt.get(), 2, name);
    int rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_DONE) {
        return not_found(kind + " '" + name + "' has no definition");
    }
    if (rc != SQLITE_ROW) {
        return detail::sqlite_error(db, kind + " '" + name + "'");
    }
    json spec = json::parse(detail::column_text(stmt.get(), 0), nullptr, false);
    if (spec.is_discarded()) {
        return data_loss(kind + " '" + name + "': stored definition is not JSON");
    }
    return spec;
}

Status AgentStore::put_agent(const AgentSpec& spec) {
    return put("agent", spec.name, agent_to_json(spec));
}
Result<AgentSpec> AgentStore::agent(const std::string& name) {
    SLUICE_ASSIGN_OR_RETURN(json spec, get("agent", name));
    return agent_from_json(spec);
}
Status AgentStore::put_tool(const ToolSpec& spec) {
    return put("tool", spec.name, tool_to_json(spec));
}
Result<ToolSpec> AgentStore::tool(const std::string& name) {
    SLUICE_ASSIGN_OR_RETURN(json spec, get("tool", name));
    return tool_from_json(spec);
}
Status AgentStore::put_connection(const Connection& connection) {
    json spec = connection_to_json(connection, true);
    if (!connection.secret.empty()) {
        SLUICE_ASSIGN_OR_RETURN(std::string sealed,
                                impl_->secrets->seal(secret_identity(connection.name),
                                                     connection.secret));
        spec["secret"] = std::move(sealed);
    }
    return put("connection", connection.name, spec);
}
Result<Connection> AgentStore::connection(const std::string& name) {
    SLUICE_ASSIGN_OR_RETURN(json spec, get("connection", name));
    std::string sealed = spec.value("secret", "");
    spec.erase("secret");
    SLUICE_ASSIGN_OR_RETURN(Connection connection, connection_from_json(spec));
    if (!sealed.empty()) {
        // open() names the connection in its errors ("connection:<name>: cannot decrypt ...").
        SLUICE_ASSIGN_OR_RETURN(connection.secret,
                                impl_->secrets->open(secret_identity(name), sealed));
    }
    return connection;
}

Status AgentStore::remove(const std::string& kind, const std::string& name) {
    std::lock_guard lock(impl_->mutex);
    sqlite3* db = impl_->db.get();
    SLUICE_ASSIGN_OR_RETURN(auto stmt, detail::prepare(db, "DELETE FROM agent_objects "
                                                           "WHERE kind = ? AND name = ?"));
    detail::bind_text(stmt.get(), 1, kind);
    detail::bind_text(stmt.get(), 2, name);
    if (sqlite3_step(stmt.get()) != SQLITE_DONE) {
        return detail::sqlite_error(db, kind + " '" + name + "'");
    }
    if (sqlite3_changes(db) == 0) {
        return not_found(kind + " '" + name + "' has no definition");
    }
    return Status();
}

}  // namespace sluice::agents
