#include "app/sync_service.h"

#include <condition_variable>
#include <sstream>

#include "app/governance_http.h"
#include "app/index_catalog.h"
#include "app/metrics.h"
#include "app/request_members.h"
#include "app/source_feed.h"
#include "common/log.h"

namespace sluice::app {
namespace {

using nlohmann::json;

json errors_json(const std::vector<retrieval::FeedError>& errors) {
    json out = json::array();
    for (const auto& error : errors) {
        out.push_back({{"key", error.key}, {"message", error.message}, {"offset", error.offset}});
    }
    return out;
}

// The decision on a source for a caller, where a denial to a caller who may not even see the
// source (no BROWSE on its table; for a source not in the catalog, not an admin: what the listing
// leaves out) becomes a source that does not exist, so that names cannot be probed. The denial
// itself was audited by whoever decided it.
Status unless_unseen(governance::Governance& gov, const governance::RequestContext& context,
                     const std::string& name, const SourceObject* object, Status decision) {
    if (decision.code() != StatusCode::kPermissionDenied) {
        return decision;
    }
    bool seen = false;
    if (object != nullptr) {
        auto browse = gov.authorizer().check(context.principal_id, governance::Privilege::kBrowse,
                                             governance::SecurableType::kTable, object->full_name);
        seen = browse.ok() && browse->allowed;
    }
    return seen ? decision : not_found("source '" + name + "' does not exist");
}

}  // namespace

Result<std::unique_ptr<retrieval::SourceSync>> open_source_sync(
    const connectors::SourceDefinition& definition, const std::filesystem::path& state_dir,
    retrieval::IndexManager& indexes, const std::string& index_name,
    const retrieval::SyncOptions& options, std::shared_ptr<connectors::PushSource> push,
    const std::string& secret) {
    auto index = indexes.get(index_name);
    if (!index.ok() && index.status().code() == StatusCode::kNotFound) {
        retrieval::IndexSettings settings;
        settings.name = index_name;
        index = indexes.create(settings);
        if (index.ok()) {
            log::info("sync", "created the index a source is bound to",
                      {{"source", definition.name}, {"index", index_name}});
        }
    }
    if (!index.ok()) {
        return index.status().with_context("index '" + index_name + "' of source '" +
                                           definition.name + "'");
    }
    std::shared_ptr<connectors::Source> source = push;
    if (!source) {
        SLUICE_ASSIGN_OR_RETURN(auto opened, connectors::open_source(definition, state_dir, secret));
        source = std::move(opened);
    }
    auto feed = std::make_unique<SourceFeed>(definition.name, std::move(source));
    retrieval::SyncOptions with_owner = options;
    // What the index holds for an earlier source of the same name is not this one's.
    with_owner.incarnation = definition.incarnation;
    // A re-snapshot deletes only this source's documents from an index others may feed too
    // (SourceFeed tags each document with metadata "source").
    with_owner.owns = [name = definition.name](const retrieval::DocumentRecord& record) {
        auto it = record.metadata.find("source");
        return it == record.metadata.end() ||
               (std::holds_alternative<std::string>(it->second) &&
                std::get<std::string>(it->second) == name);
    };
    return retrieval::SourceSync::open(definition.name, *index, std::move(feed), with_owner);
}

retrieval::SyncOptions sync_options(const SyncConfig& config) {
    retrieval::SyncOptions options;
    options.max_batch = static_cast<std::size_t>(config.max_batch);
    options.idle_wait =
        std::chrono::milliseconds(static_cast<std::int64_t>(config.idle_wait_s * 1000));
    options.pipeline_depth = static_cast<std::size_t>(config.pipeline_depth);
    return options;
}

json to_json(const retrieval::SyncStatus& status) {
    json out{{"state", retrieval::sync_state_name(status.state)},
             {"index", status.index},
             {"initial_sync", status.initial},
             {"pipeline_depth", status.pipeline_depth},
             {"checkpoint", status.checkpoint},
             {"lag_events", status.lag_events ? json(*status.lag_events) : json(nullptr)},
             {"lag_seconds", status.lag_seconds},
             {"last_error", status.last_error.empty() ? json(nullptr) : json(status.last_error)},
             {"error_records", status.error_records},
             {"recent_errors", errors_json(status.recent_errors)},
             {"batches", status.batches},
             {"changes", status.changes},
             {"upserts", status.upserts},
             {"deletes", status.deletes},
             {"documents", status.documents},
             {"changes_per_second", status.changes_per_second},
             {"seconds", {{"poll", status.poll_seconds},
                          {"embed", status.embed_seconds},
                          {"index", status.index_seconds},
                          {"acknowledge", status.ack_seconds},
                          {"waiting_for_prepare", status.prepare_wait_seconds}}}};
    if (status.last_commit_unix > 0) {
        out["last_commit_unix"] = status.last_commit_unix;
    }
    out["resnapshots"] = status.resnapshots;
    out["resnapshot_in_progress"] = status.resnapshotting;
    if (status.resnapshots > 0 || status.resnapshotting) {
        out["last_resnapshot"] = {{"reason", status.resnapshot_reason}};
        if (status.last_resnapshot_unix > 0) {
            out["last_resnapshot"]["unix"] = status.last_resnapshot_unix;
        }
    }
    return out;
}

SyncService::SyncService(std::filesystem::path data_dir,
                         std::unique_ptr<connectors::SourceRegistry> registry,
                         retrieval::IndexManager& indexes, governance::Governance& gov,
                         retrieval::SyncOptions options)
    : data_dir_(std::move(data_dir)),
      registry_(std::move(registry)),
      indexes_(indexes),
      gov_(gov),
      options_(std::move(options)) {}

SyncService::~SyncService() { stop(); }

Result<std::unique_ptr<SyncService>> SyncService::open(const std::filesystem::path& data_dir,
                                                       retrieval::IndexManager& indexes,
                                                       governance::Governance& gov,
                                                       retrieval::SyncOptions options) {
    SLUICE_ASSIGN_OR_RETURN(auto registry, connectors::SourceRegistry::open(data_dir));
    auto service = std::make_unique<SyncService>(data_dir, std::move(registry), indexes, gov,
                                                 std::move(options));
    SLUICE_RETURN_IF_ERROR(service->reconcile());
    return service;
}

void SyncService::audit_system(const std::string& action, const std::string& source,
                               const std::string& details) {
    governance::AuditEvent event;
    event.principal = "system";
    event.action = action;
    event.securable = "source:" + source;
    event.result = "ok";
    event.details = details;
    if (Status audited = gov_.audit().append(std::move(event)); !audited.ok()) {
        log::error("sync", "cannot audit a sync event",
                   {{"source", source}, {"action", action}, {"error", audited.message()}});
    }
}

Result<std::unique_ptr<retrieval::SourceSync>> SyncService::open_sync(const std::string& name,
                                                                      const std::string& index) {
    SLUICE_ASSIGN_OR_RETURN(auto definition, registry_->get(name));
    // A definition stored before data-directory paths were refused is not opened either.
    SLUICE_RETURN_IF_ERROR(connectors::check_outside_data_dir(definition, data_dir_));
    std::shared_ptr<connectors::PushSource> push;
    if (definition.kind == "http") {
        SLUICE_ASSIGN_OR_RETURN(push, push_source(name));
    }
    retrieval::SyncOptions options = options_;
    options.on_resnapshot = [this](const std::string& source, const std::string& reason) {
        audit_system("source.resnapshot", source, json{{"reason", reason}}.dump());
    };
    SLUICE_ASSIGN_OR_RETURN(std::string secret, source_secret(data_dir_, definition, &gov_.secrets()));
    SLUICE_ASSIGN_OR_RETURN(auto sync, open_source_sync(definition, registry_->state_dir(name),
                                                        indexes_, index, options, push, secret));
    // An index the sync just created is registered in the catalog at once (owned by the
    // admin, as start-up registers stored ones), so that it can be queried and granted without
    // waiting for a restart.
    if (Status registered = register_stored_indexes(gov_, indexes_); !registered.ok()) {
        log::error("sync", "cannot register the index of a source in the catalog",
                   {{"source", name}, {"index", index}, {"error", registered.message()}});
    }
    return sync;
}

Status SyncService::reconcile() {
    std::lock_guard reconciling(reconcile_mutex_);
    // What the offline CLI staged before the catalog had an admin moves in once it has one.
    auto migrated = migrate_source_bindings(gov_, *registry_, data_dir_);
    if (!migrated.ok() && migrated.status().code() != StatusCode::kFailedPrecondition) {
        return migrated.status();
    }
    SLUICE_ASSIGN_OR_RETURN(auto objects, list_source_objects(gov_.store()));
    SLUICE_ASSIGN_OR_RETURN(auto definitions, registry_->list());
    std::map<std::string, std::string> defined;  // source -> incarnation
    for (const auto& definition : definitions) {
        defined.emplace(definition.name, definition.incarnation);
    }
    struct Wanted {
        std::string index;
        std::string incarnation;
    };
    std::map<std::string, Wanted> wanted;
    for (const auto& object : objects) {
        auto definition = defined.find(object.name);
        if (!object.index.empty() && definition != defined.end()) {
            wanted[object.name] = Wanted{object.index, definition->second};
        }
    }
    // Syncs of sources unbound, re-bound, gone or removed and created again (by the offline
    // CLI, between two reconciles) stop (outside the lock: stopping joins).
    std::vector<std::pair<std::string, std::unique_ptr<retrieval::SourceSync>>> retired;
    std::vector<std::pair<std::string, Wanted>> to_open;
    {
        std::lock_guard lock(mutex_);
        for (auto it = syncs_.begin(); it != syncs_.end();) {
            auto want = wanted.find(it->first);
            if (want == wanted.end() || want->second.index != it->second.index ||
                want->second.incarnation != it->second.incarnation) {
                retired.emplace_back(it->first, std::move(it->second.sync));
                it = syncs_.erase(it);
            } else {
                ++it;
            }
        }
        for (const auto& [name, want] : wanted) {
            auto it = syncs_.find(name);
            if (it == syncs_.end() || !it->second.sync) {
                to_open.emplace_back(name, want);
            }
        }
        for (auto it = pushes_.begin(); it != pushes_.end();) {
            auto definition = defined.find(it->first);
            const bool current =
                definition != defined.end() && definition->second == it->second.incarnation;
            it = current ? std::next(it) : pushes_.erase(it);
        }
    }
    for (auto& [name, sync] : retired) {
        if (sync) {
            sync->stop();
            log::info("sync", "source sync stopped: the source is unbound, re-bound or removed",
                      {{"source", name}});
        }
    }
    for (const auto& [name, want] : to_open) {
        const std::string& index = want.index;
        auto sync = open_sync(name, index);
        std::lock_guard lock(mutex_);
        Entry& entry = syncs_[name];
        const bool first = entry.index.empty() && entry.open_error.empty();
        entry.index = index;
        entry.incarnation = want.incarnation;
        if (sync.ok()) {
            entry.sync = std::move(sync).value();
            entry.open_error.clear();
            if (started_) {
                entry.sync->start();
            }
            continue;
        }
        const std::string error = sync.status().to_string();
        if (first || error != entry.open_error) {
            // Logged when it changes, not on every reconcile that tries again.
            log::error("sync", "cannot open a bound source; it is not synced",
                       {{"source", name}, {"index", index}, {"error", error}});
        }
        entry.open_error = error;
    }
    return Status();
}

void SyncService::start(std::chrono::milliseconds every) {
    {
        std::lock_guard lock(mutex_);
        if (started_) {
            return;
        }
        started_ = true;
        for (auto& [name, entry] : syncs_) {
            if (entry.sync) {
                entry.sync->start();
            }
        }
    }
    reconciler_ = std::jthread([this, every](std::stop_token stop) {
        std::mutex sleep_mutex;
        std::condition_variable_any cv;
        while (!stop.stop_requested()) {
            std::unique_lock lock(sleep_mutex);
            cv.wait_for(lock, stop, every, [] { return false; });  // returns early on stop
            if (stop.stop_requested()) {
                break;
            }
            if (Status reconciled = reconcile(); !reconciled.ok()) {
                log::warn("sync", "cannot read the sources of the catalog; trying again",
                          {{"error", reconciled.message()}});
            }
        }
    });
}

void SyncService::stop() {
    if (reconciler_.joinable()) {
        reconciler_.request_stop();
        reconciler_.join();
    }
    std::lock_guard reconciling(reconcile_mutex_);
    std::lock_guard lock(mutex_);
    started_ = false;
    for (auto& [name, entry] : syncs_) {
        if (entry.sync) {
            entry.sync->stop();
        }
    }
}

json SyncService::describe_entry(const connectors::SourceDefinition& definition,
                                 const SourceObject* object) {
    json out = connectors::describe(definition);
    out["catalog_name"] = object != nullptr ? json(object->full_name) : json(nullptr);
    out["owner"] = object != nullptr ? json(object->owner) : json(nullptr);
    const std::string bound = object != nullptr ? object->index : "";
    out["index"] = bound.empty() ? json(nullptr) : json(bound);
    std::lock_guard lock(mutex_);
    auto it = syncs_.find(definition.name);
    if (it == syncs_.end()) {
        out["sync"] = nullptr;
        return out;
    }
    if (it->second.sync) {
        out["sync"] = to_json(it->second.sync->status());
    } else {
        out["sync"] = {{"state", "error"}, {"last_error", it->second.open_error}};
    }
    return out;
}

Result<json> SyncService::describe(const governance::RequestContext& context) {
    SLUICE_ASSIGN_OR_RETURN(auto definitions, registry_->list());
    SLUICE_ASSIGN_OR_RETURN(auto objects, list_source_objects(gov_.store()));
    SLUICE_ASSIGN_OR_RETURN(bool admin, gov_.authorizer().is_admin(context.principal_id));
    std::map<std::string, SourceObject> by_name;
    for (auto& object : objects) {
        by_name.emplace(object.name, std::move(object));
    }
    json sources = json::array();
    for (const auto& definition : definitions) {
        auto it = by_name.find(definition.name);
        const SourceObject* object = it == by_name.end() ? nullptr : &it->second;
        if (!admin) {
            // Listing filters unaudited; the listing itself is audited by the route.
            if (object == nullptr) {
                continue;
            }
            auto decision = gov_.authorizer().check(context.principal_id,
                                                    governance::Privilege::kBrowse,
                                                    governance::SecurableType::kTable,
                                                    object->full_name);
            if (!decision.ok() || !decision->allowed) {
                continue;
            }
        }
        sources.push_back(describe_entry(definition, object));
    }
    return json{{"sources", sources}};
}

Result<json> SyncService::describe(const governance::RequestContext& context,
                                   const std::string& name) {
    SLUICE_ASSIGN_OR_RETURN(auto definition, registry_->get(name));
    auto object = find_source_object(gov_.store(), name);
    if (!object.ok() && object.status().code() != StatusCode::kNotFound) {
        return object.status();
    }
    const SourceObject* found = object.ok() ? &*object : nullptr;
    SLUICE_RETURN_IF_ERROR(unless_unseen(
        gov_, context, name, found,
        found != nullptr
            ? gov_.authorizer().require(context, governance::Privilege::kBrowse,
                                        governance::SecurableType::kTable, found->full_name)
            : require_admin(gov_, context, "source.get")));
    return describe_entry(definition, found);
}

Status SyncService::authorize_write(const governance::RequestContext& context,
                                    const std::string& name) {
    auto object = find_source_object(gov_.store(), name);
    if (object.ok()) {
        return unless_unseen(
            gov_, context, name, &*object,
            gov_.authorizer().require(context, governance::Privilege::kModify,
                                      governance::SecurableType::kTable, object->full_name));
    }
    if (object.status().code() != StatusCode::kNotFound) {
        return object.status();
    }
    // Defined but not yet in the catalog (waiting for an admin to own it): admins only.
    SLUICE_RETURN_IF_ERROR(registry_->get(name).status());
    return unless_unseen(gov_, context, name, nullptr,
                         require_admin(gov_, context, "source.write"));
}

Result<json> SyncService::create(const governance::RequestContext& context, const json& body) {
    if (!body.is_object()) {
        return invalid_argument("body: expected {\"name\", \"type\", \"config\", \"schema\"}");
    }
    // A misspelt "index" or "schema" would create the source unbound or in main.sources.
    SLUICE_RETURN_IF_ERROR(
        check_keys(body, {"name", "type", "config", "schema", "index"}, {}).with_context("body"));
    NewSource source;
    SLUICE_ASSIGN_OR_RETURN(source.name, string_field(body, "name"));
    SLUICE_ASSIGN_OR_RETURN(source.type, string_field(body, "type"));
    SLUICE_ASSIGN_OR_RETURN(source.schema,
                            string_field_or(body, "schema", std::string(kDefaultSourceSchema)));
    source.config = body.value("config", json::object());
    if (body.contains("index") && !body["index"].is_null()) {
        if (!body["index"].is_string()) {
            return invalid_argument("index: expected an index name or null");
        }
        source.index = body["index"].get<std::string>();
    }
    // The same as `sluice source add` (source_catalog.h).
    SLUICE_RETURN_IF_ERROR(create_source(gov_, *registry_, context, source).status());
    SLUICE_RETURN_IF_ERROR(reconcile());
    return describe(context, source.name);
}

Result<json> SyncService::alter(const governance::RequestContext& context,
                                const std::string& name, const json& body) {
    if (!body.is_object() || !body.contains("index") ||
        !(body["index"].is_null() || body["index"].is_string())) {
        return invalid_argument("index: expected an index name, or null to unbind");
    }
    SLUICE_RETURN_IF_ERROR(check_keys(body, {"index"}, {}).with_context("body"));
    const std::string index = body["index"].is_null() ? "" : body["index"].get<std::string>();
    auto found = find_source_object(gov_.store(), name);
    if (!found.ok()) {
        if (found.status().code() != StatusCode::kNotFound) {
            return found.status();
        }
        // A name that is not defined is missing; one defined but not yet in the catalog
        // (waiting for an admin to own it) is said to be so to admins, and missing to others,
        // as describe() and the listing have it.
        SLUICE_RETURN_IF_ERROR(registry_->get(name).status());
        SLUICE_RETURN_IF_ERROR(unless_unseen(gov_, context, name, nullptr,
                                             require_admin(gov_, context, "source.alter")));
        return found.status();
    }
    const SourceObject& object = *found;
    SLUICE_RETURN_IF_ERROR(unless_unseen(
        gov_, context, name, &object,
        gov_.authorizer().require(context, governance::Privilege::kManage,
                                  governance::SecurableType::kTable, object.full_name)));
    SLUICE_ASSIGN_OR_RETURN(auto definition, registry_->get(name));
    if (connectors::reads_server_machine(definition)) {
        // Binding starts (or moves) reading a path of this machine: an admin's decision.
        SLUICE_RETURN_IF_ERROR(require_admin(gov_, context, "source.alter." + definition.kind));
        SLUICE_RETURN_IF_ERROR(connectors::check_outside_data_dir(definition, data_dir_));
    }
    if (!index.empty()) {
        SLUICE_RETURN_IF_ERROR(validate_source_index_name(index).with_context("index"));
        SLUICE_RETURN_IF_ERROR(authorize_index_sync(gov_, context, index));
    }
    Status outcome = set_source_index(gov_.store(), name, index);
    SLUICE_RETURN_IF_ERROR(audit_action(gov_, context, index.empty() ? "source.unbind"
                                                                     : "source.bind",
                                        "table:" + object.full_name, outcome,
                                        json{{"source", name}, {"index", index}}.dump()));
    SLUICE_RETURN_IF_ERROR(outcome);
    SLUICE_RETURN_IF_ERROR(reconcile());
    return describe(context, name);
}

Result<nlohmann::json> SyncService::remove(const governance::RequestContext& context,
                                           const std::string& name) {
    auto object = find_source_object(gov_.store(), name);
    std::string securable = "source:" + name;
    if (object.ok()) {
        SLUICE_RETURN_IF_ERROR(unless_unseen(
            gov_, context, name, &*object,
            gov_.authorizer().require(context, governance::Privilege::kManage,
                                      governance::SecurableType::kTable, object->full_name)));
        securable = "table:" + object->full_name;
    } else if (object.status().code() == StatusCode::kNotFound) {
        SLUICE_RETURN_IF_ERROR(registry_->get(name).status());
        SLUICE_RETURN_IF_ERROR(unless_unseen(gov_, context, name, nullptr,
                                             require_admin(gov_, context, "source.remove")));
    } else {
        return object.status();
    }
    std::lock_guard reconciling(reconcile_mutex_);
    std::unique_ptr<retrieval::SourceSync> sync;
    {
        std::lock_guard lock(mutex_);
        if (auto it = syncs_.find(name); it != syncs_.end()) {
            sync = std::move(it->second.sync);
            syncs_.erase(it);
        }
        pushes_.erase(name);
    }
    sync.reset();  // stops its thread and closes the source before its state goes
    auto definition = registry_->get(name);
    Status outcome = drop_source_object(gov_.store(), name);
    if (outcome.ok()) {
        outcome = registry_->remove(name);
    }
    json released = json::object();
    if (outcome.ok() && definition.ok()) {
        released = connectors::release_source(*definition);
    }
    json details = {{"source", name}};
    if (!released.empty()) {
        details["left_behind"] = released["left_behind"];
    }
    SLUICE_RETURN_IF_ERROR(
        audit_action(gov_, context, "source.remove", securable, outcome, details.dump()));
    SLUICE_RETURN_IF_ERROR(outcome);
    return released;
}

Status SyncService::wake(const std::string& name) {
    SLUICE_ASSIGN_OR_RETURN(auto definition, registry_->get(name));
    std::lock_guard lock(mutex_);
    auto it = syncs_.find(definition.name);
    if (it == syncs_.end()) {
        return failed_precondition("source '" + name + "' is not bound to an index");
    }
    if (!it->second.sync) {
        return failed_precondition("source '" + name + "' could not be opened: " +
                                   it->second.open_error);
    }
    it->second.sync->wake();
    return Status();
}

std::string SyncService::metrics_text() const {
    struct Series {
        const char* name;
        const char* type;
        const char* help;
    };
    static const Series kSeries[] = {
        {"sluice_source_lag_seconds", "gauge", "Seconds since the sync was last caught up."},
        {"sluice_source_lag_events", "gauge", "Changes the source holds that are not applied."},
        {"sluice_source_documents", "gauge", "Documents in the index the source feeds."},
        {"sluice_source_changes_total", "counter", "Changes applied since start."},
        {"sluice_source_error_records_total", "counter", "Error records reported since start."},
        {"sluice_source_changes_per_second", "gauge", "Changes applied per working second."},
        {"sluice_source_caught_up", "gauge", "1 when the last poll found nothing more to apply."},
        {"sluice_source_up", "gauge", "1 when the sync runs and is not paused or retrying."},
    };
    std::lock_guard lock(mutex_);
    std::map<std::string, retrieval::SyncStatus> statuses;
    for (const auto& [name, entry] : syncs_) {
        if (entry.sync) {
            statuses.emplace(name, entry.sync->status());
        }
    }
    std::ostringstream out;
    for (const Series& series : kSeries) {
        out << "# HELP " << series.name << " " << series.help << "\n"
            << "# TYPE " << series.name << " " << series.type << "\n";
        for (const auto& [name, entry] : syncs_) {
            double value = 0;
            if (auto it = statuses.find(name); it != statuses.end()) {
                const retrieval::SyncStatus& s = it->second;
                const std::string_view metric = series.name;
                if (metric == "sluice_source_lag_seconds") {
                    value = s.lag_seconds;
                } else if (metric == "sluice_source_lag_events") {
                    if (!s.lag_events) {
                        continue;
                    }
                    value = static_cast<double>(*s.lag_events);
                } else if (metric == "sluice_source_documents") {
                    value = static_cast<double>(s.documents);
                } else if (metric == "sluice_source_changes_total") {
                    value = static_cast<double>(s.changes);
                } else if (metric == "sluice_source_error_records_total") {
                    value = static_cast<double>(s.error_records);
                } else if (metric == "sluice_source_changes_per_second") {
                    value = s.changes_per_second;
                } else if (metric == "sluice_source_caught_up") {
                    value = s.state == retrieval::SyncState::kCaughtUp ? 1 : 0;
                } else {
                    value = s.state == retrieval::SyncState::kSyncing ||
                                    s.state == retrieval::SyncState::kCaughtUp
                                ? 1
                                : 0;
                }
            } else if (std::string_view(series.name) != "sluice_source_up") {
                continue;
            }
            out << series.name << "{source=\"" << escape_label_value(name) << "\",index=\""
                << escape_label_value(entry.index) << "\"} " << value << "\n";
        }
    }
    return out.str();
}

Result<std::shared_ptr<connectors::PushSource>> SyncService::push_source(
    const std::string& name) {
    // Read each time: a source removed and created again by the offline CLI is a new push log,
    // even before the next reconcile.
    SLUICE_ASSIGN_OR_RETURN(connectors::SourceDefinition definition, registry_->get(name));
    std::lock_guard lock(mutex_);
    if (auto it = pushes_.find(name); it != pushes_.end()) {
        if (it->second.incarnation == definition.incarnation) {
            return it->second.source;
        }
        pushes_.erase(it);
    }
    SLUICE_ASSIGN_OR_RETURN(auto source,
                            connectors::open_push_source(definition, registry_->state_dir(name)));
    std::shared_ptr<connectors::PushSource> shared = std::move(source);
    pushes_.emplace(name, Push{definition.incarnation, shared});
    return shared;
}

}  // namespace sluice::app
