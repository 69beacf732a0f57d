#include "app/connection_commands.h"

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "agents/agent_store.h"
#include "app/data_dir.h"
#include "app/local_user.h"
#include "governance/governance.h"

namespace sluice::app {
namespace {

using nlohmann::json;

struct ConnectionOptions {
    std::string data_dir;
};

int forget_secrets(const ConnectionOptions& options) {
    auto fail = [](const Status& status) {
        std::cerr << "sluice connection forget-secrets: " << status.message() << "\n";
        return 1;
    };
    // The lock keeps a server from sealing with the old key while its secrets go.
    auto data_dir = DataDir::open(options.data_dir, DataDirMode::kMustExist);
    if (!data_dir.ok()) {
        return fail(data_dir.status());
    }
    governance::GovernanceOptions governance_options;
    governance_options.audit.checkpoint_every = 0;  // the log's own interval, as offline writers
    auto gov = governance::Governance::open((*data_dir)->path(), governance_options);
    if (!gov.ok()) {
        return fail(gov.status());
    }
    const auto catalog = (*data_dir)->path() / governance::kCatalogFile;
    auto forgotten = agents::AgentStore::forget_foreign_secrets(catalog, (*gov)->secrets());
    if (!forgotten.ok()) {
        return fail(forgotten.status());
    }
    json connections = json::array();
    for (const auto& entry : *forgotten) {
        connections.push_back(entry.connection);
        governance::AuditEvent event;
        event.principal = local_user();
        event.client = local_user();
        event.action = "connection.secret.forget";
        event.securable = "connection:" + entry.connection;
        event.result = "ok";
        event.decided_by =
            "offline command on the data directory: the secret was sealed with "
            "another key than the data directory's";
        event.details =
            json{{"sealed_with_key_id", entry.key_id}, {"key_id", (*gov)->secrets().key_id()}}
                .dump();
        if (Status audited = (*gov)->audit().append(std::move(event)); !audited.ok()) {
            return fail(audited);
        }
    }
    std::cout << json{{"key_id", (*gov)->secrets().key_id()}, {"forgotten", connections}}.dump()
              << "\n";
    if (!connections.empty()) {
        std::cerr << "set each connection's secret again (PUT /api/connections/NAME) before its "
                     "tools or sources use it\n";
    }
    return 0;
}

}  // namespace

void add_connection_commands(Cli& cli) {
    auto* group = cli.root().add_subcommand("connection", "Connection secrets, offline");
    group->require_subcommand(1);
    auto options = std::make_shared<ConnectionOptions>();
    auto* forget = group->add_subcommand(
        "forget-secrets",
        "Remove connection secrets sealed with a secret key that is lost for good");
    forget->footer(
        "Stop the server first (the command takes the data directory's lock). The server refuses "
        "to start while catalog.db holds secrets sealed with another key than its secrets.key; "
        "restore that key if you can. Otherwise this removes those secrets, in one transaction, "
        "and audits each removal; set each connection's secret again afterwards. It uses the "
        "data directory's secrets.key, made now if none is left.");
    forget->add_option("--data-dir", options->data_dir, "Data directory")->required();
    cli.on_run(forget, [options] { return forget_secrets(*options); });
}

}  // namespace sluice::app
