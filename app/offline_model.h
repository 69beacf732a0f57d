#pragma once
// The configured model (the config's /model section, as `sluice serve` reads it) for commands
// that open the data directory without the server: `sluice source sync`, `sluice source status`,
// `sluice search`, `sluice ask`, `sluice eval run`. An index whose embedder is "model" embeds
// through it by the server's own path (served_embedder_factory, engine_embedder.h): the same
// model id, so the same embedding-cache keys ("model:<model_id>"), and vectors computed offline
// are reused by the server and the other way round.
//
// The model loads on first use, not when the command starts: a command that touches no "model"
// index, or whose text is all in the embedding cache, never reads the weights (they can be
// hundreds of gigabytes). A failed load is remembered, so that a sync does not retry it for every
// batch.
//
// Thread safety: thread-safe.

#include <memory>
#include <mutex>
#include <optional>

#include "app/config.h"
#include "app/model_host.h"
#include "common/result.h"
#include "inference/engine.h"
#include "retrieval/index.h"

namespace sluice::app {

class OfflineModel {
public:
    explicit OfflineModel(ModelSettings settings);
    OfflineModel(const OfflineModel&) = delete;
    OfflineModel& operator=(const OfflineModel&) = delete;

    // Loads the model on the calling thread at the first call and returns its host, which lives
    // as long as this object. kFailedPrecondition naming the model and its path when it cannot
    // be loaded (the same status on every later call).
    Result<ModelHost*> host();
    // host()'s engine.
    Result<std::shared_ptr<inference::Engine>> engine();
    // Whether a load has been tried (successfully or not).
    bool load_tried() const;

    const ModelSettings& settings() const { return settings_; }

private:
    const ModelSettings settings_;
    mutable std::mutex mutex_;
    std::unique_ptr<ModelHost> host_;   // guarded by mutex_; set once loaded
    std::optional<Status> failure_;     // guarded by mutex_; set when the load failed
};

// The embedders and token counter of server_index_deps(), with "model" served by `model`
// through served_embedder_factory(): a "model" index opens with the checkpoint's width read
// from its config.json, and the weights load at its first embedding. Errors of that embedding
// name the index and the model's path.
retrieval::IndexDeps offline_index_deps(std::shared_ptr<OfflineModel> model);

}  // namespace sluice::app
