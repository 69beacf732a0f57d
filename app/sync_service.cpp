#include "app/sync_service.h"

#include <sstream>

#include "app/metrics.h"
#include "app/source_bindings.h"
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

}  // namespace

Result<std::unique_ptr<retrieval::SourceSync>> open_source_sync(
    const connectors::SourceDefinition& definition, const std::filesystem::path& state_dir,
    retrieval::IndexManager& indexes, const std::string& index_name,
    const retrieval::SyncOptions& options, std::shared_ptr<connectors::PushSource> push) {
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
        SLUICE_ASSIGN_OR_RETURN(auto opened, connectors::open_source(definition, state_dir));
        source = std::move(opened);
    }
    auto feed = std::make_unique<SourceFeed>(definition.name, std::move(source));
    return retrieval::SourceSync::open(definition.name, *index, std::move(feed), options);
}

json to_json(const retrieval::SyncStatus& status) {
    json out{{"state", retrieval::sync_state_name(status.state)},
             {"index", status.index},
             {"initial_sync", status.initial},
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
                          {"acknowledge", status.ack_seconds}}}};
    if (status.last_commit_unix > 0) {
        out["last_commit_unix"] = status.last_commit_unix;
    }
    return out;
}

SyncService::SyncService(std::filesystem::path data_dir,
                         std::unique_ptr<connectors::SourceRegistry> registry)
    : data_dir_(std::move(data_dir)), registry_(std::move(registry)) {}

SyncService::~SyncService() { stop(); }

Result<std::unique_ptr<SyncService>> SyncService::open(const std::filesystem::path& data_dir,
                                                       retrieval::IndexManager& indexes,
                                                       retrieval::SyncOptions options) {
    SLUICE_ASSIGN_OR_RETURN(auto registry, connectors::SourceRegistry::open(data_dir));
    SLUICE_ASSIGN_OR_RETURN(auto bindings, read_source_bindings(data_dir));
    auto service = std::make_unique<SyncService>(data_dir, std::move(registry));
    auto open_one = [&](const std::string& name,
                        const std::string& index) -> Result<std::unique_ptr<retrieval::SourceSync>> {
        SLUICE_ASSIGN_OR_RETURN(auto definition, service->registry_->get(name));
        std::shared_ptr<connectors::PushSource> push;
        if (definition.kind == "http") {
            SLUICE_ASSIGN_OR_RETURN(push, service->push_source(name));
        }
        return open_source_sync(definition, service->registry_->state_dir(name), indexes, index,
                                options, push);
    };
    for (const auto& [name, index] : bindings) {
        Entry entry;
        entry.index = index;
        auto sync = open_one(name, index);
        if (sync.ok()) {
            entry.sync = std::move(sync).value();
        } else {
            entry.open_error = sync.status().to_string();
            log::error("sync", "cannot open a bound source; it is not synced",
                       {{"source", name}, {"index", index}, {"error", entry.open_error}});
        }
        service->syncs_.emplace(name, std::move(entry));
    }
    return service;
}

void SyncService::start() {
    for (auto& [name, entry] : syncs_) {
        if (entry.sync) {
            entry.sync->start();
        }
    }
}

void SyncService::stop() {
    for (auto& [name, entry] : syncs_) {
        if (entry.sync) {
            entry.sync->stop();
        }
    }
}

json SyncService::describe_entry(const connectors::SourceDefinition& definition) const {
    json out = connectors::describe(definition);
    auto it = syncs_.find(definition.name);
    if (it == syncs_.end()) {
        out["index"] = nullptr;
        out["sync"] = nullptr;
        return out;
    }
    out["index"] = it->second.index;
    if (it->second.sync) {
        out["sync"] = to_json(it->second.sync->status());
    } else {
        out["sync"] = {{"state", "error"}, {"last_error", it->second.open_error}};
    }
    return out;
}

Result<json> SyncService::describe() {
    SLUICE_ASSIGN_OR_RETURN(auto definitions, registry_->list());
    json sources = json::array();
    for (const auto& definition : definitions) {
        sources.push_back(describe_entry(definition));
    }
    return json{{"sources", sources}};
}

Result<json> SyncService::describe(const std::string& name) {
    SLUICE_ASSIGN_OR_RETURN(auto definition, registry_->get(name));
    return describe_entry(definition);
}

Status SyncService::wake(const std::string& name) {
    SLUICE_ASSIGN_OR_RETURN(auto definition, registry_->get(name));
    auto it = syncs_.find(definition.name);
    if (it == syncs_.end()) {
        return failed_precondition("source '" + name +
                                   "' is not bound to an index; bind it and restart the server");
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
    std::lock_guard lock(mutex_);
    if (auto it = pushes_.find(name); it != pushes_.end()) {
        return it->second;
    }
    SLUICE_ASSIGN_OR_RETURN(connectors::SourceDefinition definition, registry_->get(name));
    SLUICE_ASSIGN_OR_RETURN(auto source,
                            connectors::open_push_source(definition, registry_->state_dir(name)));
    std::shared_ptr<connectors::PushSource> shared = std::move(source);
    pushes_.emplace(name, shared);
    return shared;
}

}  // namespace sluice::app
