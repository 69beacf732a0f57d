#include "app/offline_model.h"

#include <utility>

#include "app/engine_embedder.h"
#include "app/index_deps.h"

namespace sluice::app {

OfflineModel::OfflineModel(ModelSettings settings) : settings_(std::move(settings)) {}

Result<ModelHost*> OfflineModel::host() {
    std::lock_guard lock(mutex_);
    if (host_) {
        return host_.get();
    }
    if (failure_) {
        return *failure_;
    }
    auto host = std::make_unique<ModelHost>(settings_, nullptr);
    if (Status loaded = host->load(); !loaded.ok()) {
        // One code whatever the cause: a missing or broken checkpoint is the operator's to fix,
        // and kResourceExhausted would make the embedder wait for a queue that never drains.
        failure_ = Status(StatusCode::kFailedPrecondition,
                          "model " + host->model_id() + " cannot be loaded from '" +
                              settings_.path + "': " + loaded.message());
        return *failure_;
    }
    host_ = std::move(host);
    return host_.get();
}

Result<std::shared_ptr<inference::Engine>> OfflineModel::engine() {
    SLUICE_ASSIGN_OR_RETURN(ModelHost * host, this->host());
    return host->engine();
}

bool OfflineModel::load_tried() const {
    std::lock_guard lock(mutex_);
    return host_ != nullptr || failure_.has_value();
}

retrieval::IndexDeps offline_index_deps(std::shared_ptr<OfflineModel> model) {
    auto slot = std::make_shared<EngineSlot>();
    const ModelSettings settings = model->settings();
    // Nothing closes this slot: no model host stops under it, the engine lives as long as the
    // last index holding the slot (through this source).
    slot->open([model = std::move(model)]() { return model->engine(); });
    return server_index_deps(std::move(slot), settings);
}

}  // namespace sluice::app
