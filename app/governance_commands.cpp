#include "app/governance_commands.h"

#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "governance/governance.h"

namespace sluice::app {
namespace {

using nlohmann::json;

std::string current_user() {
    const char* user = std::getenv("USER");
    return std::string("local:") + (user != nullptr ? user : std::to_string(::getuid()));
}

struct TokenOptions {
    std::string data_dir;
    std::string principal;
    bool admin = false;
    std::string comment = "created offline";
    std::int64_t lifetime_s = 0;
};

int token_create(const TokenOptions& options) {
    auto gov = governance::Governance::open(options.data_dir);
    if (!gov.ok()) {
        std::cerr << "sluice token create: " << gov.status().message() << "\n";
        return 1;
    }
    auto token = (*gov)->issue_token(options.principal, options.admin, options.comment,
                                     options.lifetime_s, current_user());
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
};

std::filesystem::path catalog_path(const AuditOptions& o) {
    return std::filesystem::path(o.data_dir) / governance::kCatalogFile;
}

void add_audit_commands(Cli& cli) {
    auto* group = cli.root().add_subcommand("audit", "Verify, export and archive the audit log");
    group->require_subcommand(1);
    auto options = std::make_shared<AuditOptions>();

    auto* verify = group->add_subcommand("verify", "Check the hash chain and signed checkpoints");
    verify->add_option("--data-dir", options->data_dir, "Data directory")->required();
    cli.on_run(verify, [options] {
        auto key = governance::audit_public_key(std::filesystem::path(options->data_dir) /
                                                governance::kSigningKeyFile);
        auto report = key.ok() ? governance::verify_audit_log(catalog_path(*options), *key)
                               : Result<governance::AuditVerifyReport>(key.status());
        if (!report.ok()) {
            std::cerr << "sluice audit verify: " << report.status().message() << "\n";
            return 2;
        }
        json out = {{"ok", report->ok},           {"records", report->records},
                    {"checkpoints", report->checkpoints}, {"first_seq", report->first_seq},
                    {"last_seq", report->last_seq}, {"first_bad_seq", report->first_bad_seq},
                    {"problem", report->problem}};
        std::cout << out.dump() << "\n";
        if (!report->ok) {
            std::cerr << "audit log does not verify: " << report->problem << "\n";
            return 1;
        }
        return 0;
    });

    auto* exporter = group->add_subcommand("export", "Write audit records as JSON lines");
    exporter->add_option("--data-dir", options->data_dir, "Data directory")->required();
    exporter->add_option("--after-seq", options->after_seq, "Only records after this seq");
    exporter->add_option("--limit", options->limit, "At most this many records (0: all)");
    cli.on_run(exporter, [options] {
        auto written = governance::export_audit_log(catalog_path(*options), options->after_seq,
                                                    options->limit, std::cout);
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
        auto report = governance::archive_audit_log(catalog_path(*options), options->up_to_seq,
                                                    options->file);
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

// Sends one request and prints the JSON answer; exit 0 on 2xx, 1 otherwise.
int call(const ClientOptions& o, const std::string& method, const std::string& path,
         const json& body) {
    httplib::Client client(o.server);
    client.set_read_timeout(30, 0);
    httplib::Headers headers = {{"Authorization", "Bearer " + o.token}};
    httplib::Result result =
        method == "GET"      ? client.Get(path, headers)
        : method == "DELETE" ? client.Delete(path, headers)
        : method == "PATCH"  ? client.Patch(path, headers, body.dump(), "application/json")
                             : client.Post(path, headers, body.dump(), "application/json");
    if (!result) {
        std::cerr << "sluice catalog: cannot reach " << o.server << ": "
                  << httplib::to_string(result.error()) << "\n";
        return 1;
    }
    std::cout << result->body << "\n";
    return result->status >= 200 && result->status < 300 ? 0 : 1;
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
}

}  // namespace sluice::app
