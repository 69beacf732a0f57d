#pragma once
// The sources a server keeps in sync: at start it opens every source bound to an index
// (app/source_bindings.h), opens or creates that index and runs a continuous
// retrieval::SourceSync for each, one thread per source. It also holds the HTTP push sources,
// so that the push route and the sync of the same source share one PushSource (pushes wake the
// sync at once).
//
// GET /api/sources and /metrics read describe() and metrics_text().
//
// Thread safety: thread-safe after open(); stop() before the index manager goes away.

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "connectors/push_source.h"
#include "connectors/source_registry.h"
#include "retrieval/index_manager.h"
#include "retrieval/sync.h"

namespace sluice::app {

// Opens the sync of one source into the named index, creating the index with default settings
// when it does not exist. `push` (optional) is the already open PushSource of an http source.
Result<std::unique_ptr<retrieval::SourceSync>> open_source_sync(
    const connectors::SourceDefinition& definition, const std::filesystem::path& state_dir,
    retrieval::IndexManager& indexes, const std::string& index_name,
    const retrieval::SyncOptions& options,
    std::shared_ptr<connectors::PushSource> push = nullptr);

// The status of a sync as JSON (GET /api/sources, `sluice source sync`).
nlohmann::json to_json(const retrieval::SyncStatus& status);

class SyncService {
public:
    // Errors: reading the registry or the bindings. A single source that fails to open is
    // logged and listed with its error; the others run.
    static Result<std::unique_ptr<SyncService>> open(const std::filesystem::path& data_dir,
                                                     retrieval::IndexManager& indexes,
                                                     retrieval::SyncOptions options = {});
    ~SyncService();

    void start();
    void stop();

    // Every defined source: its definition (credentials redacted), binding and sync status.
    Result<nlohmann::json> describe();
    // kNotFound for an unknown source.
    Result<nlohmann::json> describe(const std::string& name);
    // Makes the running sync of `name` poll its source now (retrieval::SourceSync::wake).
    // kNotFound for an unknown source; kFailedPrecondition when it is not bound to an index or
    // its sync could not be opened.
    Status wake(const std::string& name);
    // Prometheus text of the per-source gauges and counters.
    std::string metrics_text() const;

    // The push source `name`, opened once and shared with its sync.
    Result<std::shared_ptr<connectors::PushSource>> push_source(const std::string& name);

    SyncService(std::filesystem::path data_dir, std::unique_ptr<connectors::SourceRegistry> registry);

private:
    struct Entry {
        std::string index;
        std::unique_ptr<retrieval::SourceSync> sync;  // null when it failed to open
        std::string open_error;
    };
    nlohmann::json describe_entry(const connectors::SourceDefinition& definition) const;

    std::filesystem::path data_dir_;
    std::unique_ptr<connectors::SourceRegistry> registry_;
    mutable std::mutex mutex_;
    std::map<std::string, Entry> syncs_;  // fixed after open()
    std::map<std::string, std::shared_ptr<connectors::PushSource>> pushes_;  // guarded by mutex_
};

}  // namespace sluice::app
