#include "app/index_deps.h"

#include "app/engine_embedder.h"
#include "app/http_embedder.h"
#include "app/tokenize_command.h"
#include "common/log.h"

namespace sluice::app {

ModelTokenCounter::ModelTokenCounter(std::shared_ptr<const inference::Tokenizer> tokenizer)
    : tokenizer_(std::move(tokenizer)) {
    for (inference::TokenId id = 0; id < tokenizer_->n_bpe_ids(); ++id) {
        auto bytes = tokenizer_->token_bytes(id);
        if (bytes.has_value() && bytes->empty()) {
            no_empty_tokens_ = false;
            break;
        }
    }
}

std::vector<std::size_t> ModelTokenCounter::token_offsets(std::string_view text) const {
    auto ids = tokenizer_->encode(text, inference::SpecialTokenMode::kOrdinary);
    if (!ids.ok()) {
        log::warn("retrieval", "text not tokenizable; chunking by approximate token counts",
                  {{"error", ids.status().message()}});
        return fallback_.token_offsets(text);
    }
    std::vector<std::size_t> offsets;
    offsets.reserve(ids->size());
    std::size_t at = 0;
    for (inference::TokenId id : *ids) {
        offsets.push_back(at);
        // Ordinary encoding only yields BPE ids, each holding its bytes.
        at += tokenizer_->token_bytes(id).value_or(std::string_view()).size();
    }
    return offsets;
}

std::shared_ptr<const retrieval::TokenCounter> default_chunk_token_counter() {
    auto tokenizer = open_cli_tokenizer({});
    if (!tokenizer.ok()) {
        log::warn("retrieval", "tokenizer unavailable; chunking by approximate token counts",
                  {{"error", tokenizer.status().message()}});
        return std::make_shared<retrieval::ApproxTokenCounter>();
    }
    return std::make_shared<ModelTokenCounter>(
        std::shared_ptr<const inference::Tokenizer>(std::move(*tokenizer)));
}

retrieval::IndexDeps server_index_deps() {
    retrieval::IndexDeps deps;
    deps.embedders = server_embedder_factory();
    deps.tokens = default_chunk_token_counter();
    return deps;
}

retrieval::IndexDeps server_index_deps(std::shared_ptr<EngineSlot> slot,
                                       const ModelSettings& model) {
    retrieval::IndexDeps deps;
    deps.embedders = served_embedder_factory(std::move(slot), model);
    deps.tokens = default_chunk_token_counter();
    return deps;
}

}  // namespace sluice::app
