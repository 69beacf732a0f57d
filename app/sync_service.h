#pragma once
// The sources a server keeps in sync: every source object of the catalog bound to an index
// (app/source_catalog.h) gets its index opened or created and a continuous
// retrieval::SourceSync, one thread per source. Sources created, bound, unbound or removed while
// the server runs are picked up by reconcile(): at once through the REST API, within a couple of
// seconds when the offline CLI changed the catalog. It also holds the HTTP push sources,
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
#include <thread>

#include <nlohmann/json.hpp>

#include "app/config.h"
#include "app/source_catalog.h"
#include "common/result.h"
#include "connectors/push_source.h"
#include "connectors/source_registry.h"
#include "governance/governance.h"
#include "retrieval/index_manager.h"
#include "retrieval/sync.h"

namespace sluice::app {

// Opens the sync of one source into the named index, creating the index with default settings
// when it does not exist. `push` (optional) is the already open PushSource of an http source;
// `secret` that of the connection its configuration names (source_secret()).
Result<std::unique_ptr<retrieval::SourceSync>> open_source_sync(
    const connectors::SourceDefinition& definition, const std::filesystem::path& state_dir,
    retrieval::IndexManager& indexes, const std::string& index_name,
    const retrieval::SyncOptions& options,
    std::shared_ptr<connectors::PushSource> push = nullptr, const std::string& secret = "");

// The sync engine's options as the configuration's `sync` section sets them.
retrieval::SyncOptions sync_options(const SyncConfig& config);

// The status of a sync as JSON (GET /api/sources, `sluice source sync`).
nlohmann::json to_json(const retrieval::SyncStatus& status);

class SyncService {
public:
    // Moves a bindings file into the catalog (migrate_source_bindings) and opens the sync of
    // every bound source. Errors: reading the registry or the catalog. A single source that
    // fails to open is logged and listed with its error (and tried again by the next
    // reconcile()); the others run. Re-snapshots are audited as "source.resnapshot".
    static Result<std::unique_ptr<SyncService>> open(const std::filesystem::path& data_dir,
                                                     retrieval::IndexManager& indexes,
                                                     governance::Governance& gov,
                                                     retrieval::SyncOptions options = {});
    ~SyncService();

    // Starts the syncs and a thread that reconciles every `every` (so that sources and bindings
    // changed by the offline CLI are picked up without a restart).
    void start(std::chrono::milliseconds every = std::chrono::milliseconds(2000));
    void stop();

    // Makes the running syncs match the catalog: opens and starts the sync of a source that is
    // newly bound (or bound to another index), stops that of a source that is unbound or gone.
    // REST changes call it at once. Errors: reading the catalog or the registry.
    Status reconcile();

    // Every source the caller may BROWSE (admins: all): its definition (credentials redacted),
    // catalog object, binding and sync status.
    Result<nlohmann::json> describe(const governance::RequestContext& context);
    // kNotFound for an unknown source (or one the caller may not BROWSE: not revealed).
    Result<nlohmann::json> describe(const governance::RequestContext& context,
                                    const std::string& name);

    // REST operations, each authorised (source_catalog.h) and audited.
    // body: {"name", "type", "config", "schema" (default main.sources), "index" (optional)};
    // create_source() (source_catalog.h) does the work, as for `sluice source add`.
    Result<nlohmann::json> create(const governance::RequestContext& context,
                                  const nlohmann::json& body);
    // body: {"index": "<index>" | null}.
    Result<nlohmann::json> alter(const governance::RequestContext& context,
                                 const std::string& name, const nlohmann::json& body);
    // Stops the sync, drops the catalog object and the definition with its state, then what the
    // source installed outside it (connectors::release_source: a sqlite source's triggers and
    // tables). The index keeps the documents (drop or re-bind it deliberately). Returns {} or,
    // when the source's database could not be written, what was left there and how to remove
    // it ({"left_behind", "reason", "cleanup_sql"}); the source is removed either way.
    Result<nlohmann::json> remove(const governance::RequestContext& context,
                                  const std::string& name);
    // MODIFY on the source (push, "sync now"), audited by the authorizer.
    Status authorize_write(const governance::RequestContext& context, const std::string& name);

    // Makes the running sync of `name` poll its source now (retrieval::SourceSync::wake).
    // kNotFound for an unknown source; kFailedPrecondition when it is not bound to an index or
    // its sync could not be opened.
    Status wake(const std::string& name);
    // Prometheus text of the per-source gauges and counters.
    std::string metrics_text() const;

    // The push source `name`, opened once (per incarnation of the source) and shared with its
    // sync.
    Result<std::shared_ptr<connectors::PushSource>> push_source(const std::string& name);

    SyncService(std::filesystem::path data_dir, std::unique_ptr<connectors::SourceRegistry> registry,
                retrieval::IndexManager& indexes, governance::Governance& gov,
                retrieval::SyncOptions options);

private:
    struct Entry {
        std::string index;
        std::string incarnation;                      // connectors::SourceDefinition::incarnation
        std::unique_ptr<retrieval::SourceSync> sync;  // null when it failed to open
        std::string open_error;
    };
    struct Push {
        std::string incarnation;
        std::shared_ptr<connectors::PushSource> source;
    };
    nlohmann::json describe_entry(const connectors::SourceDefinition& definition,
                                  const SourceObject* object);
    Result<std::unique_ptr<retrieval::SourceSync>> open_sync(const std::string& name,
                                                             const std::string& index);
    void audit_system(const std::string& action, const std::string& source,
                      const std::string& details);

    std::filesystem::path data_dir_;
    std::unique_ptr<connectors::SourceRegistry> registry_;
    retrieval::IndexManager& indexes_;
    governance::Governance& gov_;
    retrieval::SyncOptions options_;
    std::mutex reconcile_mutex_;  // one reconcile at a time; taken before mutex_
    mutable std::mutex mutex_;
    std::map<std::string, Entry> syncs_;  // guarded by mutex_
    std::map<std::string, Push> pushes_;  // guarded by mutex_
    bool started_ = false;                // guarded by mutex_
    std::jthread reconciler_;
};

}  // namespace sluice::app
