#include "app/engine_embedder.h"

#include <algorithm>
#include <utility>

#include "app/http_embedder.h"
#include "app/model_host.h"
#include "inference/model_config.h"

namespace sluice::app {
namespace {

using Clock = std::chrono::steady_clock;

// A full queue drains as the engine finishes requests: tens of milliseconds on the tiny model,
// seconds under a burst of long prompts. The first wait is short, the longest one keeps the
// retries cheap, and a queue still full after a minute is worth reporting to the sync (which
// retries the batch with its own backoff).
constexpr std::chrono::milliseconds kFirstBackoff{20};
constexpr std::chrono::milliseconds kLongestBackoff{1000};
constexpr std::chrono::seconds kBackoffLimit{60};

// The engine refuses a request past max_queued_requests waiting ones; an index's batch takes at
// most a quarter of that, so that chat requests and other indexes keep room.
std::size_t embed_batch_for(const ModelSettings& model) {
    return std::max<std::size_t>(1, static_cast<std::size_t>(model.max_queued_requests) / 4);
}

}  // namespace

EngineSlot::Use::Use(EngineSlot* slot, std::shared_ptr<inference::Engine> engine)
    : slot_(slot), engine_(std::move(engine)) {}

EngineSlot::Use::Use(Use&& other) noexcept
    : slot_(std::exchange(other.slot_, nullptr)), engine_(std::move(other.engine_)) {}

EngineSlot::Use::~Use() {
    if (slot_ != nullptr) {
        engine_.reset();  // before close() may return and the host stop the engine
        slot_->release();
    }
}

void EngineSlot::open(Source source) {
    std::lock_guard lock(mutex_);
    source_ = std::move(source);
    closed_ = false;
}

void EngineSlot::close() {
    std::unique_lock lock(mutex_);
    closed_ = true;
    source_ = nullptr;
    changed_.notify_all();
    changed_.wait(lock, [this] { return uses_ == 0; });
}

void EngineSlot::release() {
    std::lock_guard lock(mutex_);
    --uses_;
    changed_.notify_all();
}

Result<EngineSlot::Use> EngineSlot::acquire() {
    std::lock_guard lock(mutex_);
    if (closed_) {
        return unavailable("the server is stopping");
    }
    if (!source_) {
        return unavailable("no model is served here yet");
    }
    // Called under the lock, so that close() cannot return between the source's answer and
    // the count that makes it wait for this use.
    SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<inference::Engine> engine, source_());
    ++uses_;
    return Use(this, std::move(engine));
}

bool EngineSlot::back_off(std::chrono::milliseconds delay) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, delay, [this] { return closed_; });
    return !closed_;
}

EngineEmbeddingModel::EngineEmbeddingModel(std::shared_ptr<EngineSlot> slot,
                                           std::string model_id, std::size_t dimension,
                                           std::size_t max_batch, std::string owner)
    : slot_(std::move(slot)),
      model_id_(std::move(model_id)),
      dimension_(dimension),
      max_batch_(max_batch),
      owner_(std::move(owner)) {}

EngineEmbeddingModel::EngineEmbeddingModel(std::shared_ptr<inference::Engine> engine,
                                           std::string model_id, std::size_t max_batch)
    : slot_(std::make_shared<EngineSlot>()),
      model_id_(std::move(model_id)),
      dimension_(static_cast<std::size_t>(engine->model_config().d_model)),
      max_batch_(max_batch),
      owner_("model " + model_id_) {
    slot_->open([engine]() -> Result<std::shared_ptr<inference::Engine>> { return engine; });
}

Result<std::vector<retrieval::Vector>> EngineEmbeddingModel::embed(
    const std::vector<std::string>& texts) const {
    const std::string context = owner_ + ": embedder 'model' (" + model_id_ + ")";
    const auto give_up = Clock::now() + kBackoffLimit;
    std::chrono::milliseconds delay = kFirstBackoff;
    while (true) {
        Result<std::vector<retrieval::Vector>> vectors =
            [&]() -> Result<std::vector<retrieval::Vector>> {
            SLUICE_ASSIGN_OR_RETURN(EngineSlot::Use use, slot_->acquire());
            return use.engine().embed(texts);
        }();
        if (vectors.ok()) {
            return vectors;
        }
        if (vectors.status().code() != StatusCode::kResourceExhausted ||
            Clock::now() + delay > give_up) {
            return vectors.status().with_context(context);
        }
        if (!slot_->back_off(delay)) {
            return unavailable("the server is stopping").with_context(context);
        }
        delay = std::min(delay * 2, kLongestBackoff);
    }
}

retrieval::EmbedderFactory embedder_factory_with_model(std::shared_ptr<inference::Engine> engine,
                                                       std::string model_id,
                                                       std::size_t max_batch) {
    const auto dimension = static_cast<std::size_t>(engine->model_config().d_model);
    auto slot = std::make_shared<EngineSlot>();
    slot->open([engine = std::move(engine)]() -> Result<std::shared_ptr<inference::Engine>> {
        return engine;
    });
    auto others = server_embedder_factory();
    return [slot, others, model_id = std::move(model_id), dimension,
            max_batch](const retrieval::IndexSettings& settings)
               -> Result<std::shared_ptr<const retrieval::Embedder>> {
        if (settings.embedder != "model") {
            return others(settings);
        }
        auto embedding = std::make_shared<const EngineEmbeddingModel>(
            slot, model_id, dimension, max_batch, "index '" + settings.name + "'");
        return std::shared_ptr<const retrieval::Embedder>(
            std::make_shared<retrieval::ModelEmbedder>(std::move(embedding)));
    };
}

retrieval::EmbedderFactory served_embedder_factory(std::shared_ptr<EngineSlot> slot,
                                                   const ModelSettings& model) {
    auto others = server_embedder_factory();
    return [slot, others, path = model.path, model_id = model_id_for(model),
            batch = embed_batch_for(model)](const retrieval::IndexSettings& settings)
               -> Result<std::shared_ptr<const retrieval::Embedder>> {
        if (settings.embedder != "model") {
            return others(settings);
        }
        const std::string owner = "index '" + settings.name + "'";
        auto config = inference::load_model_config(path);
        if (!config.ok()) {
            return Status(StatusCode::kFailedPrecondition,
                          owner + ": embedder 'model' needs the configured model (" + model_id +
                              "), whose checkpoint cannot be read: " + config.status().message());
        }
        auto embedding = std::make_shared<const EngineEmbeddingModel>(
            slot, model_id, static_cast<std::size_t>(config->d_model), batch, owner);
        return std::shared_ptr<const retrieval::Embedder>(
            std::make_shared<retrieval::ModelEmbedder>(std::move(embedding)));
    };
}

}  // namespace sluice::app
