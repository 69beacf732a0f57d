#pragma once
// The in-process model's embeddings as an index embedder ("embedder": "model"): Engine::embed
// (mean-pooled final hidden states) through the engine's own batching, wrapped in retrieval's
// ModelEmbedder (which L2-normalises them). retrieval/ knows nothing of inference/; app/ joins
// the two here.
//
// Thread safety: thread-safe (Engine::embed is); the engine is shared, so an index keeps it
// alive.

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "inference/engine.h"
#include "retrieval/embedder.h"
#include "retrieval/index.h"

namespace sluice::app {

class EngineEmbeddingModel final : public retrieval::EmbeddingModel {
public:
    // `max_batch`: texts per embed() call. Engine::embed submits one request per text and the
    // engine refuses requests beyond its queue, so it must not exceed max_queued_requests.
    EngineEmbeddingModel(std::shared_ptr<inference::Engine> engine, std::string model_id,
                         std::size_t max_batch);
    std::string model_id() const override { return model_id_; }
    std::size_t dimension() const override;
    std::size_t max_batch() const override { return max_batch_; }
    // Errors: Engine::embed's (kInvalidArgument naming a text that is too long, kUnavailable
    // when the engine stops, kResourceExhausted when its queue is full).
    Result<std::vector<retrieval::Vector>> embed(
        const std::vector<std::string>& texts) const override;

private:
    std::shared_ptr<inference::Engine> engine_;
    std::string model_id_;
    std::size_t max_batch_;
};

// server_embedder_factory() with "model" served by `engine`, its vectors cached under
// "model:<model_id>". A "model" index whose dimension is not the model's d_model is refused
// when it opens (Index::open compares them).
retrieval::EmbedderFactory embedder_factory_with_model(std::shared_ptr<inference::Engine> engine,
                                                       std::string model_id, std::size_t max_batch);

}  // namespace sluice::app
