#include "app/source_commands.h"

#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>

#include "app/config_commands.h"
#include "app/data_dir.h"
#include "app/local_user.h"
#include "app/offline_model.h"
#include "app/source_catalog.h"
#include "app/strict_json.h"
#include "app/sync_service.h"
#include "connectors/change_event.h"
#include "connectors/source_registry.h"
#include "governance/governance.h"
#include "retrieval/index_manager.h"

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
    std::string index;
    std::size_t max_batch = 500;
    std::string schema;
    std::string owner;
    // sync and status: the model a "model" index embeds with (the config's /model section).
    std::string config_path;
    std::optional<std::string> model_path;
    std::optional<std::string> backend;
};

int fail(const Status& status) {
    std::cerr << "sluice source: " << status.to_string() << "\n";
    return 1;
}

// `source add` has always made the folders above a new data directory too (scripts hand it a
// fresh path); the data directory itself is prepare_data_dir's to create, owner-only.
Status make_parent_folders(const std::string& data_dir) {
    std::error_code ec;
    std::filesystem::path path = std::filesystem::absolute(data_dir, ec).lexically_normal();
    if (!ec && !path.has_filename()) {
        path = path.parent_path();  // "a/b/" names b
    }
    if (!ec) {
        std::filesystem::create_directories(path.parent_path(), ec);
    }
    if (ec) {
        return io_error("creating the folders above data directory '" + data_dir +
                        "': " + ec.message());
    }
    return Status();
}

// Every source command opens the data directory here first: `source add` creates it when
// missing; the others use an existing one and create nothing, not even its registry: a data
// directory that never had a source has none of the one they name.
Result<std::unique_ptr<connectors::SourceRegistry>> registry_of(const SourceOptions& options,
                                                                DataDirMode mode) {
    if (mode == DataDirMode::kCreate) {
        SLUICE_RETURN_IF_ERROR(make_parent_folders(options.data_dir));
    }
    SLUICE_RETURN_IF_ERROR(prepare_data_dir(options.data_dir, mode));
    if (mode == DataDirMode::kMustExist && !connectors::SourceRegistry::exists(options.data_dir)) {
        return not_found("source '" + options.name + "' does not exist");
    }
    return connectors::SourceRegistry::open(options.data_dir);
}

void audit_offline(governance::Governance& gov, const std::string& action,
                   const std::string& securable, const Status& outcome, const json& details) {
    governance::AuditEvent event;
    event.principal = local_user();
    event.action = action;
    event.securable = securable;
    event.result = outcome.ok() ? "ok" : "error";
    event.decided_by = outcome.ok() ? "offline command on the data directory" : outcome.to_string();
    event.details = details.dump();
    if (Status audited = gov.audit().append(std::move(event)); !audited.ok()) {
        std::cerr << "sluice source: warning: not audited: " << audited.to_string() << "\n";
    }
}

// The index a source is bound to: its catalog object's, else what the CLI staged before the
// catalog had an admin. "" when none.
Result<std::string> bound_index(governance::Governance& gov, const SourceOptions& options) {
    auto object = find_source_object(gov.store(), options.name);
    if (object.ok()) {
        return object->index;
    }
    if (object.status().code() != StatusCode::kNotFound) {
        return object.status();
    }
    SLUICE_ASSIGN_OR_RETURN(auto staged, read_staged_bindings(options.data_dir));
    auto it = staged.find(options.name);
    return it == staged.end() ? std::string() : it->second;
}

// A source defined before the catalog has an admin to own it (a data directory whose server
// has never started): its binding is staged for the server to move into the catalog at start.
Result<std::string> add_unowned(connectors::SourceRegistry& registry,
                                const connectors::SourceDefinition& definition,
                                const SourceOptions& options) {
    SLUICE_RETURN_IF_ERROR(registry.validate(definition).status());
    if (!options.index.empty()) {
        SLUICE_RETURN_IF_ERROR(stage_binding(options.data_dir, options.name, options.index));
    }
    if (Status added = registry.add(definition); !added.ok()) {
        [[maybe_unused]] Status unstaged = unstage_binding(options.data_dir, options.name);
        return added;
    }
    std::cerr << "sluice source: the catalog has no metastore admin yet; the server puts '"
              << options.name << "' into the catalog (" << kDefaultSourceSchema
              << ") when it first starts\n";
    return std::string();
}

// Defines the source: through create_source() as the acting admin, as POST /api/sources does
// for its caller, or staged when the catalog has no admin yet. Returns the catalog name or "".
Result<std::string> add_source(governance::Governance& gov, connectors::SourceRegistry& registry,
                               const json& config, const SourceOptions& options) {
    auto admin = acting_admin(gov.store(), options.owner);
    if (!admin.ok()) {
        if (admin.status().code() != StatusCode::kNotFound || !options.owner.empty()) {
            return admin.status().with_context("--owner");
        }
        return add_unowned(registry, {options.name, options.type, config, ""}, options);
    }
    // The local user who runs the command is the client of its audit records.
    const governance::RequestContext context{admin->id, admin->name, "cli", local_user(), ""};
    SLUICE_ASSIGN_OR_RETURN(SourceObject object,
                            create_source(gov, registry, context,
                                          NewSource{options.name, options.type, config,
                                                    options.schema, options.index}));
    return object.full_name;
}

int run_add(const SourceOptions& options) {
    auto config = parse_json_unique_names(options.config, "");
    if (!config) {
        return fail(config.status().with_context("--config"));
    }
    if (!options.index.empty()) {
        if (Status valid = validate_source_index_name(options.index); !valid.ok()) {
            return fail(valid.with_context("--index"));
        }
    }
    auto registry = registry_of(options, DataDirMode::kCreate);
    if (!registry) {
        return fail(registry.status());
    }
    auto gov = governance::Governance::open(options.data_dir);
    if (!gov) {
        return fail(gov.status());
    }
    auto catalog_name = add_source(**gov, **registry, *config, options);
    if (!catalog_name) {
        return fail(catalog_name.status());
    }
    auto stored = (*registry)->get(options.name);
    if (!stored) {
        return fail(stored.status());
    }
    json out = connectors::describe(*stored);
    out["index"] = options.index.empty() ? json(nullptr) : json(options.index);
    out["catalog_name"] = catalog_name->empty() ? json(nullptr) : json(*catalog_name);
    std::cout << out.dump() << "\n";
    return 0;
}

int run_list(const SourceOptions& options) {
    if (Status prepared = prepare_data_dir(options.data_dir, DataDirMode::kMustExist);
        !prepared.ok()) {
        return fail(prepared);
    }
    if (!connectors::SourceRegistry::exists(options.data_dir)) {
        std::cout << json{{"sources", json::array()}}.dump(2) << "\n";
        return 0;
    }
    auto registry = registry_of(options, DataDirMode::kMustExist);
    if (!registry) {
        return fail(registry.status());
    }
    auto all = (*registry)->list();
    if (!all) {
        return fail(all.status());
    }
    auto gov = governance::Governance::open(options.data_dir);
    if (!gov) {
        return fail(gov.status());
    }
    json out = json::array();
    for (const auto& definition : *all) {
        json entry = connectors::describe(definition);
        SourceOptions one = options;
        one.name = definition.name;
        auto index = bound_index(**gov, one);
        if (!index) {
            return fail(index.status());
        }
        auto object = find_source_object((*gov)->store(), definition.name);
        entry["index"] = index->empty() ? json(nullptr) : json(*index);
        entry["catalog_name"] = object ? json(object->full_name) : json(nullptr);
        entry["owner"] = object ? json(object->owner) : json(nullptr);
        out.push_back(std::move(entry));
    }
    std::cout << json{{"sources", out}}.dump(2) << "\n";
    return 0;
}

Result<std::unique_ptr<connectors::Source>> open_named(const SourceOptions& options,
                                                       connectors::SourceDefinition* out) {
    SLUICE_ASSIGN_OR_RETURN(auto registry, registry_of(options, DataDirMode::kMustExist));
    SLUICE_ASSIGN_OR_RETURN(*out, registry->get(options.name));
    SLUICE_ASSIGN_OR_RETURN(std::string secret, source_secret(options.data_dir, *out));
    return connectors::open_source(*out, registry->state_dir(options.name), secret);
}

// The indexes of the data directory, a "model" index served by the configured model (loaded
// at its first embedding only: offline_model.h), as `sluice serve` would configure it.
Result<std::unique_ptr<retrieval::IndexManager>> open_indexes(const SourceOptions& options,
                                                              const DataDir& data_dir) {
    ConfigOptions config_options;
    config_options.config_path = options.config_path;
    config_options.data_dir = options.data_dir;
    config_options.model_path = options.model_path;
    config_options.backend = options.backend;
    SLUICE_ASSIGN_OR_RETURN(Config config, effective_config(config_options));
    return retrieval::IndexManager::open(
        data_dir.path() / "indexes",
        offline_index_deps(std::make_shared<OfflineModel>(config.model)));
}

// What the bound index holds for the source: its checkpoint and kept error records. The data
// directory is locked by a running server; then the server's GET /api/sources has it.
json stored_sync_state(const SourceOptions& options, const std::string& index_name,
                       const connectors::SourceDefinition& definition) {
    auto data_dir = DataDir::open(options.data_dir, DataDirMode::kMustExist);
    if (!data_dir) {
        return {{"note", "the data directory is in use (a running server has the live status at "
                         "GET /api/sources): " + data_dir.status().message()}};
    }
    auto indexes = open_indexes(options, **data_dir);
    if (!indexes) {
        return {{"error", indexes.status().to_string()}};
    }
    auto index = (*indexes)->get(index_name);
    if (!index && index.status().code() != StatusCode::kNotFound) {
        return {{"index", index_name}, {"error", index.status().to_string()}};
    }
    if (!index) {
        return {{"index", index_name}, {"documents", 0}, {"checkpoint", nullptr},
                {"note", "the index is created by the first sync"}};
    }
    // State an earlier source of this name left is not this one's (its sync discards it).
    auto incarnation = (*index)->meta(retrieval::SourceSync::incarnation_meta_name(options.name));
    if (!definition.incarnation.empty() && incarnation && *incarnation &&
        !(*incarnation)->empty() && **incarnation != definition.incarnation) {
        return {{"index", index_name},
                {"embedder", (*index)->settings().embedder},
                {"dimension", (*index)->settings().dimension},
                {"documents", (*index)->stats().documents},
                {"checkpoint", nullptr},
                {"recent_errors", json::array()},
                {"note",
                 "the source was created again since its index was last synced; the "
                 "first sync starts from its beginning"}};
    }
    auto checkpoint = (*index)->meta(retrieval::SourceSync::checkpoint_meta_name(options.name));
    auto errors = (*index)->meta(retrieval::SourceSync::errors_meta_name(options.name));
    json recent = json::array();
    if (errors && *errors) {
        for (const auto& error : retrieval::decode_feed_errors(**errors)) {
            recent.push_back(
                {{"key", error.key}, {"message", error.message}, {"offset", error.offset}});
        }
    }
    return {{"index", index_name},
            {"embedder", (*index)->settings().embedder},
            {"dimension", (*index)->settings().dimension},
            {"documents", (*index)->stats().documents},
            {"checkpoint", checkpoint && *checkpoint && !(*checkpoint)->empty() ? json(**checkpoint)
                                                                                : json(nullptr)},
            {"recent_errors", recent}};
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
    auto gov = governance::Governance::open(options.data_dir);
    if (!gov) {
        return fail(gov.status());
    }
    auto index = bound_index(**gov, options);
    if (!index) {
        return fail(index.status());
    }
    out["index"] = !index->empty() ? json(*index) : json(nullptr);
    if (!index->empty()) {
        out["sync"] = stored_sync_state(options, *index, definition);
    }
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

int run_bind(const SourceOptions& options) {
    if (Status valid = validate_source_index_name(options.index); !valid.ok()) {
        return fail(valid.with_context("--index"));
    }
    auto registry = registry_of(options, DataDirMode::kMustExist);
    if (!registry) {
        return fail(registry.status());
    }
    auto definition = (*registry)->get(options.name);
    if (!definition) {
        return fail(definition.status());
    }
    auto gov = governance::Governance::open(options.data_dir);
    if (!gov) {
        return fail(gov.status());
    }
    auto object = find_source_object((*gov)->store(), options.name);
    Status bound;
    if (object) {
        bound = set_source_index((*gov)->store(), options.name, options.index);
        audit_offline(**gov, "source.bind", "table:" + object->full_name, bound,
                      {{"source", options.name}, {"index", options.index}});
    } else if (object.status().code() == StatusCode::kNotFound) {
        bound = stage_binding(options.data_dir, options.name, options.index);
    } else {
        bound = object.status();
    }
    if (!bound.ok()) {
        return fail(bound);
    }
    std::cout << json{{"source", options.name}, {"index", options.index}}.dump() << "\n";
    return 0;
}

// Triggered mode: one sync run until the source is caught up (or paused by an error record).
int run_sync(const SourceOptions& options) {
    auto data_dir = DataDir::open(options.data_dir, DataDirMode::kMustExist);
    if (!data_dir) {
        if (data_dir.status().code() == StatusCode::kNotFound) {
            return fail(data_dir.status());
        }
        return fail(data_dir.status().with_context(
            "source sync needs the data directory to itself (a running server syncs bound "
            "sources continuously)"));
    }
    auto registry = registry_of(options, DataDirMode::kMustExist);
    if (!registry) {
        return fail(registry.status());
    }
    auto definition = (*registry)->get(options.name);
    if (!definition) {
        return fail(definition.status());
    }
    std::string index_name = options.index;
    if (index_name.empty()) {
        auto gov = governance::Governance::open(options.data_dir);
        if (!gov) {
            return fail(gov.status());
        }
        auto bound = bound_index(**gov, options);
        if (!bound) {
            return fail(bound.status());
        }
        if (bound->empty()) {
            return fail(failed_precondition("source '" + options.name +
                                            "' is bound to no index: pass --index NAME, or bind "
                                            "it with `sluice source bind`"));
        }
        index_name = *bound;
    }
    auto indexes = open_indexes(options, **data_dir);
    if (!indexes) {
        return fail(indexes.status());
    }
    retrieval::SyncOptions sync_options;
    sync_options.max_batch = options.max_batch;
    auto secret = source_secret(options.data_dir, *definition);
    if (!secret) {
        return fail(secret.status());
    }
    auto sync = open_source_sync(*definition, (*registry)->state_dir(options.name), **indexes,
                                 index_name, sync_options, nullptr, *secret);
    if (!sync) {
        return fail(sync.status());
    }
    auto result = (*sync)->run_to_caught_up();
    json out = to_json((*sync)->status());
    out["source"] = options.name;
    std::cout << out.dump(2) << "\n";
    if (!result) {
        return fail(result.status());
    }
    return 0;
}

int run_remove(const SourceOptions& options) {
    auto registry = registry_of(options, DataDirMode::kMustExist);
    if (!registry) {
        return fail(registry.status());
    }
    auto gov = governance::Governance::open(options.data_dir);
    if (!gov) {
        return fail(gov.status());
    }
    auto definition = (*registry)->get(options.name);
    if (!definition) {
        return fail(definition.status());
    }
    // The definition first, then the object: a running server's reconcile in between sees an
    // object without a definition (and stops its sync), never a definition without an object
    // (which it would move back into the catalog).
    if (Status removed = (*registry)->remove(options.name); !removed.ok()) {
        return fail(removed);
    }
    auto object = find_source_object((*gov)->store(), options.name);
    Status dropped = drop_source_object((*gov)->store(), options.name);
    if (object) {
        audit_offline(**gov, "source.remove", "table:" + object->full_name, dropped,
                      {{"source", options.name}});
    }
    if (!dropped.ok()) {
        return fail(dropped);
    }
    if (Status unstaged = unstage_binding(options.data_dir, options.name); !unstaged.ok()) {
        return fail(unstaged);
    }
    // The definition is gone, so no server re-installs capture after this.
    json released = connectors::release_source(*definition);
    if (!released.empty()) {
        std::cerr << "source '" << options.name << "' removed, but its change capture is left in "
                  << "its database (" << released["reason"].get<std::string>()
                  << "): " << released["left_behind"].dump()
                  << "; remove it with: " << released["cleanup_sql"].get<std::string>() << "\n";
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
    // What `sluice serve` reads for the model, for commands that open "model" indexes.
    auto with_model = [&](CLI::App* command) {
        command
            ->add_option("--config,-c", options->config_path,
                         "Configuration file (JSON) whose /model section a \"model\" index "
                         "embeds with")
            ->check(CLI::ExistingFile);
        command->add_option("--model", options->model_path,
                            "Model checkpoint folder (overrides /model/path)");
        command
            ->add_option("--backend", options->backend,
                         "Compute backend: auto, cpu or cuda (overrides /model/backend)")
            ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
    };

    auto* add = group->add_subcommand("add", "Define a source");
    add->add_option("name", options->name, "Source name (a-z, 0-9, _, -)")->required();
    add->add_option("--type", options->type, "file, sqlite, postgres or http")->required();
    add->add_option("--config", options->config, "Configuration as JSON (docs/connectors.md)");
    add->add_option("--index", options->index,
                    "Index the source feeds (created with default settings when missing)");
    add->add_option("--schema", options->schema,
                    "Catalog schema of the source object (default main.sources, created when "
                    "missing)");
    add->add_option("--owner", options->owner,
                    "Metastore admin who owns the source (default: the first admin)");
    with_dir(add);
    cli.on_run(add, [options] { return run_add(*options); });

    auto* list = group->add_subcommand("list", "List sources (credentials redacted)");
    with_dir(list);
    cli.on_run(list, [options] { return run_list(*options); });

    auto* status = group->add_subcommand("status", "Show a source's position and lag");
    status->add_option("name", options->name, "Source name")->required();
    with_dir(status);
    with_model(status);
    cli.on_run(status, [options] { return run_status(*options); });

    auto* poll = group->add_subcommand("poll", "Print one batch of events as JSON lines");
    poll->add_option("name", options->name, "Source name")->required();
    poll->add_option("--from", options->from, "Checkpoint to poll from (default: the start)");
    poll->add_option("--max", options->max, "At most this many events")
        ->check(CLI::Range(1, 1000000));
    poll->add_flag("--ack", options->ack, "Acknowledge the batch's checkpoint afterwards");
    with_dir(poll);
    cli.on_run(poll, [options] { return run_poll(*options); });

    auto* bind = group->add_subcommand("bind", "Bind a source to the index it feeds");
    bind->add_option("name", options->name, "Source name")->required();
    bind->add_option("--index", options->index, "Index name")->required();
    with_dir(bind);
    cli.on_run(bind, [options] { return run_bind(*options); });

    auto* sync = group->add_subcommand(
        "sync", "Sync a source into its index until caught up (the server does it continuously)");
    sync->add_option("name", options->name, "Source name")->required();
    sync->add_option("--index", options->index, "Index (default: the one the source is bound to)");
    sync->add_option("--max-batch", options->max_batch, "Changes per write batch")
        ->check(CLI::Range(1, 100000));
    with_dir(sync);
    with_model(sync);
    cli.on_run(sync, [options] { return run_sync(*options); });

    auto* remove =
        group->add_subcommand("remove", "Remove a source, its catalog object and its state");
    remove->add_option("name", options->name, "Source name")->required();
    with_dir(remove);
    cli.on_run(remove, [options] { return run_remove(*options); });
}

}  // namespace sluice::app
