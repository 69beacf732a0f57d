#pragma once
// What the server lends its vector indexes: the embedders it knows (http_embedder.h) and the
// model's tokenizer as retrieval's TokenCounter, so that chunks are measured in the tokens the
// model will read them in (retrieval/ knows nothing of inference/; app/ joins the two).
//
// Thread safety: immutable; token_offsets may run on many threads at once.

#include <memory>

#include "app/config.h"
#include "inference/tokenizer.h"
#include "retrieval/chunker.h"
#include "retrieval/index.h"

namespace sluice::app {

class EngineSlot;

class ModelTokenCounter final : public retrieval::TokenCounter {
public:
    explicit ModelTokenCounter(std::shared_ptr<const inference::Tokenizer> tokenizer);

    // Text the tokenizer refuses (invalid UTF-8) is measured by ApproxTokenCounter instead,
    // with a warning, rather than dropped.
    std::vector<std::size_t> token_offsets(std::string_view text) const override;
    std::string name() const override { return tokenizer_->name(); }
    // True when no BPE token of the vocabulary is empty (checked once, at construction):
    // ordinary encoding yields BPE tokens only, special-token text being plain text, and the
    // fallback, ApproxTokenCounter, promises the same.
    bool at_most_one_token_per_byte() const override { return no_empty_tokens_; }

private:
    std::shared_ptr<const inference::Tokenizer> tokenizer_;
    retrieval::ApproxTokenCounter fallback_;
    bool no_empty_tokens_ = true;
};

// The counter indexes chunk with: the shipped tokenizer (open_cli_tokenizer's default), or
// ApproxTokenCounter with a logged warning when it cannot be opened.
std::shared_ptr<const retrieval::TokenCounter> default_chunk_token_counter();

// server_embedder_factory() and default_chunk_token_counter() together ("model" is refused;
// commands without the server lend their indexes a model with offline_index_deps(),
// offline_model.h).
retrieval::IndexDeps server_index_deps();
// The server's: served_embedder_factory(slot, model) (engine_embedder.h) and
// default_chunk_token_counter().
retrieval::IndexDeps server_index_deps(std::shared_ptr<EngineSlot> slot,
                                       const ModelSettings& model);

}  // namespace sluice::app
