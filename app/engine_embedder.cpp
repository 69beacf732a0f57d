#include "app/engine_embedder.h"

#include "app/http_embedder.h"

namespace sluice::app {

EngineEmbeddingModel::EngineEmbeddingModel(std::shared_ptr<inference::Engine> engine,
                                           std::string model_id, std::size_t max_batch)
    : engine_(std::move(engine)), model_id_(std::move(model_id)), max_batch_(max_batch) {}

std::size_t EngineEmbeddingModel::dimension() const {
    return static_cast<std::size_t>(engine_->model_config().d_model);
}

Result<std::vector<retrieval::Vector>> EngineEmbeddingModel::embed(
    const std::vector<std::string>& texts) const {
    return engine_->embed(texts);
}

retrieval::EmbedderFactory embedder_factory_with_model(std::shared_ptr<inference::Engine> engine,
                                                       std::string model_id,
                                                       std::size_t max_batch) {
    auto model = std::make_shared<const EngineEmbeddingModel>(std::move(engine),
                                                              std::move(model_id), max_batch);
    auto others = server_embedder_factory();
    return [model, others](const retrieval::IndexSettings& settings)
               -> Result<std::shared_ptr<const retrieval::Embedder>> {
        if (settings.embedder == "model") {
            return std::shared_ptr<const retrieval::Embedder>(
                std::make_shared<retrieval::ModelEmbedder>(model));
        }
        return others(settings);
    };
}

}  // namespace sluice::app
