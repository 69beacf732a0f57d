#pragma once
// The in-process model's embeddings as an index embedder ("embedder": "model"): Engine::embed
// (mean-pooled final hidden states) through the engine's own batching, wrapped in retrieval's
// ModelEmbedder (which L2-normalises them). retrieval/ knows nothing of inference/; app/ joins
// the two here.
//
// In the server the engine comes and goes under the indexes: they open before the model has
// loaded (it loads on its own thread after the server listens), a model may fail to load, and
// the model host stops the engine at shutdown while the index manager still exists. So a "model"
// index reaches the engine through an EngineSlot that the server opens once the model host
// exists and closes before the host goes away.
//
// Thread safety: thread-safe.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "app/config.h"
#include "inference/engine.h"
#include "retrieval/embedder.h"
#include "retrieval/index.h"

namespace sluice::app {

class EngineSlot {
public:
    // The engine now, or kUnavailable saying why there is none (loading, failed to load).
    using Source = std::function<Result<std::shared_ptr<inference::Engine>>()>;

    // One use of the engine: holds it alive and counted until destroyed, so that close() can
    // wait for it. Move-only.
    class Use {
    public:
        Use(Use&& other) noexcept;
        Use& operator=(Use&&) = delete;
        Use(const Use&) = delete;
        ~Use();
        inference::Engine& engine() const { return *engine_; }

    private:
        friend class EngineSlot;
        Use(EngineSlot* slot, std::shared_ptr<inference::Engine> engine);
        EngineSlot* slot_;
        std::shared_ptr<inference::Engine> engine_;
    };

    // Starts lending what `source` gives; replaces an earlier source.
    void open(Source source);
    // Refuses new uses from now on, wakes the callers backing off, and returns once no Use is
    // left. After it the source is never called again.
    void close();

    // kUnavailable before open() ("no model is served here yet"), after close() ("the server is
    // stopping"), or the source's reason.
    Result<Use> acquire();
    // Waits `delay`; false (at once) when the slot is or becomes closed.
    bool back_off(std::chrono::milliseconds delay);

    // open() on construction, close() on destruction: declared right after the model host, so
    // that the indexes stop using its engine before it stops the engine, on every way out.
    class Lending {
    public:
        Lending(EngineSlot& slot, Source source) : slot_(slot) { slot_.open(std::move(source)); }
        ~Lending() { slot_.close(); }
        Lending(const Lending&) = delete;
        Lending& operator=(const Lending&) = delete;

    private:
        EngineSlot& slot_;
    };

private:
    void release();

    std::mutex mutex_;
    std::condition_variable changed_;
    Source source_;         // guarded by mutex_
    bool closed_ = false;   // guarded by mutex_
    std::size_t uses_ = 0;  // guarded by mutex_
};

class EngineEmbeddingModel final : public retrieval::EmbeddingModel {
public:
    // `max_batch`: texts per embed() call. Engine::embed submits one request per text and the
    // engine refuses requests beyond its queue, so it must stay below max_queued_requests.
    // `dimension`: the model's d_model. `owner` names the index in messages ("index 'docs'").
    EngineEmbeddingModel(std::shared_ptr<EngineSlot> slot, std::string model_id,
                         std::size_t dimension, std::size_t max_batch, std::string owner);
    // Over an engine already loaded (benchmarks, tests).
    EngineEmbeddingModel(std::shared_ptr<inference::Engine> engine, std::string model_id,
                         std::size_t max_batch);
    std::string model_id() const override { return model_id_; }
    std::size_t dimension() const override { return dimension_; }
    std::size_t max_batch() const override { return max_batch_; }
    // A full engine queue (kResourceExhausted: chat requests or other indexes fill it) is waited
    // out with exponential backoff, up to about a minute, before it is returned. Errors, each
    // prefixed with the owner and embedder: kUnavailable while no model is loaded (the load's
    // state or error) or once the server stops, kInvalidArgument naming a text that is too long,
    // kResourceExhausted when the queue stayed full.
    Result<std::vector<retrieval::Vector>> embed(
        const std::vector<std::string>& texts) const override;

private:
    std::shared_ptr<EngineSlot> slot_;
    std::string model_id_;
    std::size_t dimension_;
    std::size_t max_batch_;
    std::string owner_;
};

// server_embedder_factory() with "model" served by `engine`, its vectors cached under
// "model:<model_id>". A "model" index whose dimension is not the model's d_model is refused
// when it opens (Index::open compares them).
retrieval::EmbedderFactory embedder_factory_with_model(std::shared_ptr<inference::Engine> engine,
                                                       std::string model_id, std::size_t max_batch);

// The server's factory: server_embedder_factory() with "model" served through `slot` by the
// model `model` configures (its id, its d_model read from the checkpoint's config.json so that
// indexes open before the weights have loaded, batches of a quarter of max_queued_requests so
// that chat requests keep room in the queue). A "model" index is refused, naming it, when the
// checkpoint's config cannot be read.
retrieval::EmbedderFactory served_embedder_factory(std::shared_ptr<EngineSlot> slot,
                                                   const ModelSettings& model);

}  // namespace sluice::app
