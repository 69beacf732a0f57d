#include "app/governance_commands.h"

#include <httplib.h>

#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "app/data_dir.h"
#include "app/governance_http.h"
#include "app/local_user.h"
#include "governance/audit_key_rotation.h"
#include "governance/governance.h"

namespace sluice::app {
namespace {

using nlohmann::json;

struct TokenOptions {
    std::string data_dir;
    std::string principal;
    bool admin = false;
    std::string comment = "created offline";
    std::int64_t lifetime_s = 0;
};

// Governance for an offline command: its audit records take the checkpoint interval from the
// log (the server's configuration may differ from the default), so that checkpoints stay where
// verify expects them.
Result<std::unique_ptr<governance::Governance>> open_offline(const std::string& data_dir,
                                                             DataDirMode mode) {
    SLUICE_RETURN_IF_ERROR(prepare_data_dir(data_dir, mode));
    governance::GovernanceOptions options;
    options.audit.checkpoint_every = 0;
    return governance::Governance::open(data_dir, options);
}

int token_create(const TokenOptions& options) {
    // The first token of a new installation is made before the server has ever run.
    auto gov = open_offline(options.data_dir, DataDirMode::kCreate);
    if (!gov.ok()) {
        std::cerr << "sluice token create: " << gov.status().message() << "\n";
        return 1;
    }
    auto token = (*gov)->issue_token(options.principal, options.admin, options.comment,
                                     options.lifetime_s, local_user());
    if (!token.ok()) {
        std::cerr << "sluice token create: " << token.status().message() << "\n";
        return 1;
    }
    std::cerr << "token " << token->info.id << " for '" << options.principal << "'"
              << (options.admin ? " (metastore admin)" : "") << "; shown once\n";
    std::cout << json{{"token", token->secret}, {"token_id", token->info.id}}.dump() << "\n";
    return 0;
}

void add_token_commands(Cli& cli) {
    auto* group = cli.root().add_subcommand("token", "Manage API tokens offline (break-glass)");
    group->require_subcommand(1);
    auto* create = group->add_subcommand("create", "Issue a token against a data directory");
    auto options = std::make_shared<TokenOptions>();
    create->add_option("--data-dir", options->data_dir, "Data directory")->required();
    create->add_option("--principal", options->principal, "User or service principal")
        ->required();
    create->add_flag("--admin", options->admin, "Make the principal a metastore admin");
    create->add_option("--comment", options->comment, "What the token is for");
    create->add_option("--lifetime-seconds", options->lifetime_s, "0: never expires")
        ->check(CLI::NonNegativeNumber);
    cli.on_run(create, [options] { return token_create(*options); });
}

struct AuditOptions {
    std::string data_dir;
    std::int64_t after_seq = 0;
    std::int64_t limit = 0;
    std::int64_t up_to_seq = 0;
    std::string file;
    governance::AuditVerifyOptions verify;
    std::string archive_dir;
    bool previous_key_lost = false;
};

// The catalog of the data directory the audit commands read: they never create one.
Result<std::filesystem::path> existing_catalog(const AuditOptions& o) {
    SLUICE_RETURN_IF_ERROR(prepare_data_dir(o.data_dir, DataDirMode::kMustExist));
    return std::filesystem::path(o.data_dir) / governance::kCatalogFile;
}

// The key the checkpoints must be signed with, only ever read: a verifier that made a missing
// key would then trust whatever that new key signs. nullopt when there is none and the log holds
// nothing it could vouch for (no record, checkpoint or archive), which verifies as it is.
Result<std::optional<std::string>> trusted_key(const std::filesystem::path& catalog) {
    const std::filesystem::path key_path = catalog.parent_path() / governance::kSigningKeyFile;
    auto key = governance::audit_public_key(key_path);
    if (key.ok()) {
        return std::optional<std::string>(std::move(*key));
    }
    if (key.status().code() != StatusCode::kNotFound) {
        return key.status();
    }
    SLUICE_ASSIGN_OR_RETURN(bool empty, governance::audit_log_is_empty(catalog));
    if (!empty) {
        return failed_precondition(
            "no audit signing key ('" + key_path.string() +
            "' does not exist), so the signed checkpoints of the audit log cannot be checked: "
            "restore the data directory's key (a key made now would not be the one that signed "
            "them), or, if it is lost for good, record a new one with `sluice audit rotate-key "
            "--previous-key-lost`");
    }
    return std::optional<std::string>();
}

// Exit 0 when the log verifies (or is empty and there is no key), 1 when it does not verify,
// 2 when it cannot be checked.
int run_verify(const AuditOptions& options) {
    auto catalog = existing_catalog(options);
    if (!catalog.ok()) {
        std::cerr << "sluice audit verify: " << catalog.status().message() << "\n";
        return 2;
    }
    auto key = trusted_key(*catalog);
    if (!key.ok()) {
        std::cerr << "sluice audit verify: " << key.status().message() << "\n";
        return 2;
    }
    governance::AuditVerifyOptions verify_options = options.verify;
    verify_options.trusted_public_key = *key;
    verify_options.archive_dir = options.archive_dir;
    auto report = governance::verify_audit_log(*catalog, verify_options);
    if (!report.ok()) {
        std::cerr << "sluice audit verify: " << report.status().message() << "\n";
        return 2;
    }
    json out = audit_report_json(*report);
    if (!key->has_value()) {
        out["note"] =
            "the data directory has no audit signing key and its audit log is empty: "
            "nothing to verify";
    }
    std::cout << out.dump() << "\n";
    if (!report->ok) {
        std::cerr << "audit log does not verify: " << report->problem << "\n";
        return 1;
    }
    return 0;
}

// Rotates the signing key with the data directory locked, so that no server on it goes on
// signing with the previous key. The migration before it is what a server would do at start.
int run_rotate_key(const AuditOptions& options) {
    auto data_dir = DataDir::open(options.data_dir, DataDirMode::kMustExist);
    if (!data_dir.ok()) {
        std::cerr << "sluice audit rotate-key: " << data_dir.status().message() << "\n";
        return 1;
    }
    const std::filesystem::path catalog = (*data_dir)->path() / governance::kCatalogFile;
    if (auto store = governance::Store::open(catalog); !store.ok()) {
        std::cerr << "sluice audit rotate-key: " << store.status().message() << "\n";
        return 1;
    }
    governance::AuditKeyRotationOptions rotate;
    rotate.previous_key_lost = options.previous_key_lost;
    rotate.principal = local_user();
    rotate.client = local_user();
    auto rotation = governance::rotate_audit_signing_key(
        catalog, (*data_dir)->path() / governance::kSigningKeyFile, rotate);
    if (!rotation.ok()) {
        std::cerr << "sluice audit rotate-key: " << rotation.status().message() << "\n";
        return 1;
    }
    std::cout << json{{"seq", rotation->seq},
                      {"previous_key", rotation->previous_key_held ? "held" : "lost"},
                      {"previous_public_key", rotation->previous_public_key},
                      {"public_key", rotation->public_key},
                      {"retired_key_file", rotation->retired_key_file.string()},
                      {"resumed", rotation->resumed}}
                     .dump()
              << "\n";
    if (!rotation->retired_key_file.empty()) {
        std::cerr << "the previous private key is kept in " << rotation->retired_key_file
                  << ": verify does not need it; destroy it if it may have been exposed\n";
    }
    return 0;
}

void add_audit_commands(Cli& cli) {
    auto* group = cli.root().add_subcommand("audit", "Verify, export and archive the audit log");
    group->require_subcommand(1);
    auto options = std::make_shared<AuditOptions>();

    auto* verify = group->add_subcommand("verify", "Check the hash chain and signed checkpoints");
    verify->footer(
        "Exit 0: the log verifies. 1: it does not (the first bad seq is named). 2: it cannot be "
        "checked, e.g. the data directory has no audit signing key (audit_signing.key) while its "
        "log holds records, checkpoints or archives. A data directory with no key and an empty "
        "log exits 0 with a note. verify only reads: it never creates a key or a catalog.");
    verify->add_option("--data-dir", options->data_dir, "Data directory")->required();
    verify->add_option("--archive-dir", options->archive_dir,
                       "Look for archive files here, by name, instead of where they were written");
    verify->add_flag("--archives-offline", options->verify.allow_missing_archives,
                     "Report missing archive files as unverified instead of failing");
    verify->add_option("--expect-checkpoint", options->verify.expect_checkpoint_seq,
                       "A last_checkpoint_seq from an earlier run: fail if the log no longer "
                       "holds it (the log was cut back)")
        ->check(CLI::NonNegativeNumber);
    verify->add_option("--checkpoint-every", options->verify.checkpoint_every,
                       "The server's governance.audit_checkpoint_every, for logs whose last "
                       "checkpoint predates recorded intervals")
        ->check(CLI::PositiveNumber);
    cli.on_run(verify, [options] { return run_verify(*options); });

    auto* rotate = group->add_subcommand(
        "rotate-key", "Replace the audit signing key, recording the change in the log");
    rotate->footer(
        "Stop every server and offline writer of the data directory first (the command takes "
        "its lock). With the current key present, it signs the handover to the new one; "
        "--previous-key-lost replaces a key that is gone. Checkpoints signed before the rotation "
        "keep verifying with the key they were signed with. Run it again to finish a rotation "
        "that was interrupted.");
    rotate->add_option("--data-dir", options->data_dir, "Data directory")->required();
    rotate->add_flag("--previous-key-lost", options->previous_key_lost,
                     "audit_signing.key is gone for good: rotate without its handover");
    cli.on_run(rotate, [options] { return run_rotate_key(*options); });

    auto* exporter = group->add_subcommand("export", "Write audit records as JSON lines");
    exporter->add_option("--data-dir", options->data_dir, "Data directory")->required();
    exporter->add_option("--after-seq", options->after_seq, "Only records after this seq");
    exporter->add_option("--limit", options->limit, "At most this many records (0: all)");
    cli.on_run(exporter, [options] {
        auto catalog = existing_catalog(*options);
        if (!catalog.ok()) {
            std::cerr << "sluice audit export: " << catalog.status().message() << "\n";
            return 1;
        }
        auto written =
            governance::export_audit_log(*catalog, options->after_seq, options->limit, std::cout);
        if (!written.ok()) {
            std::cerr << "sluice audit export: " << written.status().message() << "\n";
            return 1;
        }
        return 0;
    });

    auto* archive = group->add_subcommand(
        "archive", "Move old records to a verified JSON-lines file, then delete them");
    archive->add_option("--data-dir", options->data_dir, "Data directory")->required();
    archive->add_option("--up-to-seq", options->up_to_seq, "Archive records up to this seq")
        ->required();
    archive->add_option("--file", options->file, "Archive file to create")->required();
    cli.on_run(archive, [options] {
        // Through Governance, like token create: the archive is audited (audit.archive.offline,
        // actor local:$USER) in the transaction that deletes the archived records.
        auto gov = open_offline(options->data_dir, DataDirMode::kMustExist);
        if (!gov.ok()) {
            std::cerr << "sluice audit archive: " << gov.status().message() << "\n";
            return 1;
        }
        auto report = (*gov)->archive_audit(options->up_to_seq, options->file, local_user());
        if (!report.ok()) {
            std::cerr << "sluice audit archive: " << report.status().message() << "\n";
            return 1;
        }
        std::cout << json{{"first_seq", report->first_seq},
                          {"last_seq", report->last_seq},
                          {"records", report->records},
                          {"file_sha256", report->file_sha256}}
                         .dump()
                  << "\n";
        return 0;
    });
}

struct ClientOptions {
    std::string server = "http://127.0.0.1:8080";
    std::string token;
    std::string type;
    std::string name;
    std::string principal;
    std::vector<std::string> privileges;
    std::string comment;
    bool force = false;
};

std::string collection_of(const std::string& type) {
    auto parsed = governance::parse_securable_type(type);
    if (!parsed.ok()) {
        return "";
    }
    switch (*parsed) {
        case governance::SecurableType::kVectorIndex: return "vector-indexes";
        case governance::SecurableType::kMetastore: return "";
        default: return std::string(governance::securable_type_name(*parsed)) + "s";
    }
}

// Sends one request and prints the JSON answer; exit 0 on 2xx, 1 otherwise. GET requests take
// their query from `params` (URL-encoded by the client).
int call(const ClientOptions& o, const std::string& method, const std::string& path,
         const json& body, const httplib::Params& params = {}) {
    httplib::Client client(o.server);
    client.set_read_timeout(30, 0);
    httplib::Headers headers = {{"Authorization", "Bearer " + o.token}};
    httplib::Result result =
        method == "GET"      ? client.Get(path, params, headers)
        : method == "DELETE" ? client.Delete(path, headers)
        : method == "PATCH"  ? client.Patch(path, headers, body.dump(), "application/json")
        : method == "PUT"    ? client.Put(path, headers, body.dump(), "application/json")
                             : client.Post(path, headers, body.dump(), "application/json");
    if (!result) {
        std::cerr << "sluice: cannot reach " << o.server << ": "
                  << httplib::to_string(result.error()) << "\n";
        return 1;
    }
    std::cout << result->body << "\n";
    return result->status >= 200 && result->status < 300 ? 0 : 1;
}

// A command group that talks to a running server: --server/SLUICE_SERVER, --token/SLUICE_TOKEN.
std::pair<CLI::App*, std::shared_ptr<ClientOptions>> client_group(Cli& cli, const std::string& name,
                                                                  const std::string& help) {
    auto* group = cli.root().add_subcommand(name, help);
    group->require_subcommand(1);
    auto o = std::make_shared<ClientOptions>();
    if (const char* server = std::getenv("SLUICE_SERVER")) {
        o->server = server;
    }
    if (const char* token = std::getenv("SLUICE_TOKEN")) {
        o->token = token;
    }
    group->add_option("--server", o->server, "Server URL (SLUICE_SERVER)");
    group->add_option("--token", o->token, "Bearer token (SLUICE_TOKEN)");
    return {group, o};
}

struct GatewayOptions {
    std::string node;
    int depth = 3;
    std::string group_by = "principal,endpoint,day";
    std::string from;
    std::string to;
    std::string principal;
    std::string endpoint;
    std::string kind;
    std::int64_t limit = 0;
    std::int64_t id = 0;
    std::string input_pii;
    std::string output_pii;
    std::string pii_types;
    std::optional<double> input_price;
    std::optional<double> output_price;
    std::optional<double> cached_input_price;
};

void add_lineage_client(Cli& cli) {
    auto [group, o] = client_group(cli, "lineage", "Lineage through a running server");
    auto g = std::make_shared<GatewayOptions>();
    for (const char* direction : {"upstream", "downstream"}) {
        auto* command = group->add_subcommand(
            direction, std::string(direction) == "upstream" ? "What a node came from"
                                                            : "Where a node's data went");
        command->add_option("node", g->node, "TYPE:NAME, e.g. table:main.sales.orders")
            ->required();
        command->add_option("--depth", g->depth, "Edges to follow (1-20)")->check(CLI::Range(1, 20));
        cli.on_run(command, [o, g, direction] {
            return call(*o, "GET", std::string("/api/2.1/lineage/") + direction, {},
                        {{"node", g->node}, {"depth", std::to_string(g->depth)}});
        });
    }
}

void add_usage_client(Cli& cli) {
    auto [group, o] = client_group(cli, "usage", "Token usage and its limits through a running server");
    auto g = std::make_shared<GatewayOptions>();
    auto* show = group->add_subcommand("show", "Usage aggregated by principal, endpoint, day, agent");
    show->add_option("--group-by", g->group_by, "Comma-separated: principal,endpoint,day,agent");
    show->add_option("--from", g->from, "First day, YYYY-MM-DD (UTC)");
    show->add_option("--to", g->to, "Last day, YYYY-MM-DD (UTC), inclusive");
    show->add_option("--principal", g->principal, "Only this principal");
    show->add_option("--endpoint", g->endpoint, "Only this endpoint");
    cli.on_run(show, [o, g] {
        httplib::Params params = {{"group_by", g->group_by}};
        for (const auto& [key, value] : {std::pair{"from", g->from}, std::pair{"to", g->to},
                                         std::pair{"principal", g->principal},
                                         std::pair{"endpoint", g->endpoint}}) {
            if (!value.empty()) {
                params.emplace(key, value);
            }
        }
        return call(*o, "GET", "/api/2.0/sluice/usage", {}, params);
    });
    auto* limits = group->add_subcommand("limits", "List rate limits and token budgets");
    cli.on_run(limits, [o] { return call(*o, "GET", "/api/2.0/sluice/limits", {}); });
    auto* set = group->add_subcommand("set-limit", "Create or replace a limit (admin)");
    set->add_option("--kind", g->kind, "requests/min, tokens/min or tokens/day")->required();
    set->add_option("--limit", g->limit, "The maximum")->required();
    set->add_option("--principal", g->principal, "User, service principal or group (default: all callers)");
    set->add_option("--endpoint", g->endpoint, "Endpoint (default: every endpoint, *)");
    cli.on_run(set, [o, g] {
        json body = {{"kind", g->kind}, {"limit", g->limit},
                     {"endpoint", g->endpoint.empty() ? "*" : g->endpoint}};
        if (!g->principal.empty()) {
            body["principal"] = g->principal;
        }
        return call(*o, "POST", "/api/2.0/sluice/limits", body);
    });
    auto* remove = group->add_subcommand("delete-limit", "Delete a limit by id (admin)");
    remove->add_option("id", g->id, "Limit id")->required();
    cli.on_run(remove, [o, g] {
        return call(*o, "DELETE", "/api/2.0/sluice/limits/" + std::to_string(g->id), {});
    });
}

void add_endpoint_client(Cli& cli) {
    auto [group, o] = client_group(cli, "endpoint", "Endpoint prices and guardrails through a running server");
    auto g = std::make_shared<GatewayOptions>();
    auto* list = group->add_subcommand("list", "Endpoints with settings");
    cli.on_run(list, [o] { return call(*o, "GET", "/api/2.0/serving-endpoints", {}); });
    auto* get = group->add_subcommand("get", "One endpoint's settings");
    get->add_option("name", g->endpoint, "Endpoint name")->required();
    cli.on_run(get, [o, g] {
        return call(*o, "GET", "/api/2.0/serving-endpoints/" + g->endpoint + "/ai-gateway", {});
    });
    auto* set = group->add_subcommand("set", "Change an endpoint's settings (admin)");
    set->add_option("name", g->endpoint, "Endpoint name")->required();
    set->add_option("--input-pii", g->input_pii, "none, mask or block");
    set->add_option("--output-pii", g->output_pii, "none, mask or block");
    set->add_option("--pii-types", g->pii_types, "Comma-separated: email,phone,credit_card,iban,us_ssn,uk_nino");
    set->add_option("--input-price", g->input_price, "USD per 1M prompt tokens");
    set->add_option("--output-price", g->output_price, "USD per 1M completion tokens");
    set->add_option("--cached-input-price", g->cached_input_price, "USD per 1M cached prompt tokens");
    cli.on_run(set, [o, g] {
        json body = json::object();
        json guardrails = json::object();
        if (!g->input_pii.empty()) {
            guardrails["input"] = {{"pii", {{"behavior", g->input_pii}}}};
        }
        if (!g->output_pii.empty()) {
            guardrails["output"] = {{"pii", {{"behavior", g->output_pii}}}};
        }
        if (!g->pii_types.empty()) {
            json types = json::array();
            std::size_t start = 0;
            while (start <= g->pii_types.size()) {
                std::size_t comma = g->pii_types.find(',', start);
                types.push_back(g->pii_types.substr(start, comma == std::string::npos
                                                              ? std::string::npos
                                                              : comma - start));
                if (comma == std::string::npos) {
                    break;
                }
                start = comma + 1;
            }
            guardrails["pii_types"] = types;
        }
        if (!guardrails.empty()) {
            body["guardrails"] = guardrails;
        }
        json pricing = json::object();
        if (g->input_price) {
            pricing["input_per_million"] = *g->input_price;
        }
        if (g->output_price) {
            pricing["output_per_million"] = *g->output_price;
        }
        if (g->cached_input_price) {
            pricing["cached_input_per_million"] = *g->cached_input_price;
        }
        if (!pricing.empty()) {
            body["pricing"] = pricing;
        }
        return call(*o, "PUT", "/api/2.0/serving-endpoints/" + g->endpoint + "/ai-gateway", body);
    });
}

json create_body(const ClientOptions& o) {
    json body = {{"comment", o.comment}};
    std::vector<std::string> parts;
    std::size_t start = 0;
    while (true) {
        auto dot = o.name.find('.', start);
        parts.push_back(o.name.substr(start, dot - start));
        if (dot == std::string::npos) {
            break;
        }
        start = dot + 1;
    }
    body["name"] = parts.back();
    if (parts.size() >= 2) {
        body["catalog_name"] = parts[0];
    }
    if (parts.size() == 3) {
        body["schema_name"] = parts[1];
    }
    return body;
}

void add_catalog_client(Cli& cli) {
    auto* group = cli.root().add_subcommand(
        "catalog", "Catalog and grants through a running server's REST API");
    group->require_subcommand(1);
    auto o = std::make_shared<ClientOptions>();
    if (const char* server = std::getenv("SLUICE_SERVER")) {
        o->server = server;
    }
    if (const char* token = std::getenv("SLUICE_TOKEN")) {
        o->token = token;
    }
    group->add_option("--server", o->server, "Server URL (SLUICE_SERVER)");
    group->add_option("--token", o->token, "Bearer token (SLUICE_TOKEN)");
    const std::string base = "/api/2.1/unity-catalog/";

    auto add = [&](const std::string& name, const std::string& help) {
        auto* command = group->add_subcommand(name, help);
        command->add_option("type", o->type, "catalog, schema, table, volume, ...")->required();
        command->add_option("name", o->name, "Full name, e.g. main.sales.orders")->required();
        return command;
    };
    auto* create = add("create", "Create a securable");
    create->add_option("--comment", o->comment, "Comment");
    cli.on_run(create, [o, base] { return call(*o, "POST", base + collection_of(o->type), create_body(*o)); });
    auto* get = add("get", "Show a securable");
    cli.on_run(get, [o, base] { return call(*o, "GET", base + collection_of(o->type) + "/" + o->name, {}); });
    auto* remove = add("delete", "Delete a securable");
    remove->add_flag("--force", o->force, "Delete what is below it too");
    cli.on_run(remove, [o, base] {
        return call(*o, "DELETE",
                    base + collection_of(o->type) + "/" + o->name + (o->force ? "?force=true" : ""),
                    {});
    });
    for (bool grant : {true, false}) {
        auto* command = add(grant ? "grant" : "revoke", grant ? "Grant privileges" : "Revoke privileges");
        command->add_option("principal", o->principal, "Grantee")->required();
        command->add_option("privileges", o->privileges, "SELECT, USE_CATALOG, ...")->required();
        cli.on_run(command, [o, base, grant] {
            json change = {{"principal", o->principal}, {grant ? "add" : "remove", o->privileges}};
            return call(*o, "PATCH", base + "permissions/" + o->type + "/" + o->name,
                        json{{"changes", json::array({change})}});
        });
    }
    auto* permissions = add("permissions", "Show grants on a securable");
    cli.on_run(permissions, [o, base] {
        return call(*o, "GET", base + "permissions/" + o->type + "/" + o->name, {});
    });
    auto* effective = add("effective", "Explain what a principal may do on a securable, and why");
    effective->add_option("--principal", o->principal, "Whom to explain (default: the caller)");
    cli.on_run(effective, [o, base] {
        return call(*o, "GET",
                    base + "effective-permissions/" + o->type + "/" + o->name +
                        (o->principal.empty() ? "" : "?principal=" + o->principal),
                    {});
    });
}

}  // namespace

void add_governance_commands(Cli& cli) {
    add_token_commands(cli);
    add_audit_commands(cli);
    add_catalog_client(cli);
    add_lineage_client(cli);
    add_usage_client(cli);
    add_endpoint_client(cli);
}

}  // namespace sluice::app
