#include "app/source_commands.h"

#include <iostream>
#include <memory>

#include "connectors/change_event.h"
#include "connectors/source_registry.h"

namespace sluice::app {

namespace {

using nlohmann::json;

struct SourceOptions {
    std::string data_dir;
    std::string name;
    std::string type;
    std::string config = "{}";
    std::string from;
    std::size_t max = 1000;
    bool ack = false;
};

int fail(const Status& status) {
    std::cerr << "sluice source: " << status.to_string() << "\n";
    return 1;
}

Result<std::unique_ptr<connectors::SourceRegistry>> registry_of(const SourceOptions& options) {
    return connectors::SourceRegistry::open(options.data_dir);
}

int run_add(const SourceOptions& options) {
    json config = json::parse(options.config, nullptr, false);
    if (config.is_discarded()) {
        return fail(invalid_argument("--config: not valid JSON"));
    }
    auto registry = registry_of(options);
    if (!registry) {
        return fail(registry.status());
    }
    if (Status added = (*registry)->add({options.name, options.type, config, ""}); !added.ok()) {
        return fail(added);
    }
    auto stored = (*registry)->get(options.name);
    if (!stored) {
        return fail(stored.status());
    }
    std::cout << connectors::describe(*stored).dump() << "\n";
    return 0;
}

int run_list(const SourceOptions& options) {
    auto registry = registry_of(options);
    if (!registry) {
        return fail(registry.status());
    }
    auto all = (*registry)->list();
    if (!all) {
        return fail(all.status());
    }
    json out = json::array();
    for (const auto& definition : *all) {
        out.push_back(connectors::describe(definition));
    }
    std::cout << json{{"sources", out}}.dump(2) << "\n";
    return 0;
}

Result<std::unique_ptr<connectors::Source>> open_named(const SourceOptions& options,
                                                       connectors::SourceDefinition* out) {
    SLUICE_ASSIGN_OR_RETURN(auto registry, registry_of(options));
    SLUICE_ASSIGN_OR_RETURN(*out, registry->get(options.name));
    return connectors::open_source(*out, registry->state_dir(options.name));
}

int run_status(const SourceOptions& options) {
    connectors::SourceDefinition definition;
    auto source = open_named(options, &definition);
    if (!source) {
        return fail(source.status());
    }
    auto status = (*source)->status();
    if (!status) {
        return fail(status.status());
    }
    json out = connectors::describe(definition);
    out["status"] = *status;
    std::cout << out.dump(2) << "\n";
    return 0;
}

int run_poll(const SourceOptions& options) {
    connectors::SourceDefinition definition;
    auto source = open_named(options, &definition);
    if (!source) {
        return fail(source.status());
    }
    auto batch = (*source)->poll(options.from, connectors::PollOptions{options.max});
    if (!batch) {
        return fail(batch.status());
    }
    for (const auto& event : batch->events) {
        std::cout << connectors::dump_json(connectors::to_json(event)) << "\n";
    }
    for (const auto& error : batch->errors) {
        std::cout << connectors::dump_json(connectors::to_json(error)) << "\n";
    }
    if (options.ack) {
        if (Status acked = (*source)->acknowledge(batch->checkpoint); !acked.ok()) {
            return fail(acked);
        }
    }
    std::cout << json{{"checkpoint", batch->checkpoint},
                      {"caught_up", batch->caught_up},
                      {"paused", batch->paused}}
                     .dump()
              << "\n";
    return 0;
}

int run_remove(const SourceOptions& options) {
    auto registry = registry_of(options);
    if (!registry) {
        return fail(registry.status());
    }
    if (Status removed = (*registry)->remove(options.name); !removed.ok()) {
        return fail(removed);
    }
    return 0;
}

}  // namespace

void add_source_commands(Cli& cli) {
    auto options = std::make_shared<SourceOptions>();
    auto* group = cli.root().add_subcommand("source", "Define sources and read their change feeds");
    group->require_subcommand(1);
    auto with_dir = [&](CLI::App* command) {
        command->add_option("--data-dir", options->data_dir, "Data directory")->required();
    };

    auto* add = group->add_subcommand("add", "Define a source");
    add->add_option("name", options->name, "Source name (a-z, 0-9, _, -)")->required();
    add->add_option("--type", options->type, "file, sqlite, postgres or http")->required();
    add->add_option("--config", options->config, "Configuration as JSON (docs/connectors.md)");
    with_dir(add);
    cli.on_run(add, [options] { return run_add(*options); });

    auto* list = group->add_subcommand("list", "List sources (credentials redacted)");
    with_dir(list);
    cli.on_run(list, [options] { return run_list(*options); });

    auto* status = group->add_subcommand("status", "Show a source's position and lag");
    status->add_option("name", options->name, "Source name")->required();
    with_dir(status);
    cli.on_run(status, [options] { return run_status(*options); });

    auto* poll = group->add_subcommand("poll", "Print one batch of events as JSON lines");
    poll->add_option("name", options->name, "Source name")->required();
    poll->add_option("--from", options->from, "Checkpoint to poll from (default: the start)");
    poll->add_option("--max", options->max, "At most this many events")
        ->check(CLI::Range(1, 1000000));
    poll->add_flag("--ack", options->ack, "Acknowledge the batch's checkpoint afterwards");
    with_dir(poll);
    cli.on_run(poll, [options] { return run_poll(*options); });

    auto* remove = group->add_subcommand("remove", "Remove a source and its state");
    remove->add_option("name", options->name, "Source name")->required();
    with_dir(remove);
    cli.on_run(remove, [options] { return run_remove(*options); });
}

}  // namespace sluice::app
