#pragma once
// An embedder that calls an OpenAI-compatible embeddings server: POST {endpoint}/v1/embeddings
// with {"model", "input": [texts]}, reading data[i].embedding in data[i].index order. Vectors are
// L2-normalised here, whatever the server returns.
//
// Errors: kUnavailable when the server cannot be reached or answers non-2xx (with its status and
// the start of its body), kDataLoss when the answer is not the expected JSON.
//
// Thread safety: thread-safe; each call opens its own connection.

#include <string>

#include "retrieval/embedder.h"
#include "retrieval/index.h"

namespace sluice::app {

class HttpEmbedder final : public retrieval::Embedder {
public:
    // `endpoint` is a base URL such as "http://127.0.0.1:8000".
    HttpEmbedder(std::string endpoint, std::string model, std::size_t dimension);
    std::string id() const override;
    std::size_t dimension() const override { return dimension_; }
    std::size_t max_batch() const override { return 64; }
    Result<std::vector<retrieval::Vector>> embed(
        const std::vector<std::string>& texts) const override;

private:
    std::string endpoint_;
    std::string model_;
    std::size_t dimension_;
};

// The embedders the server offers: retrieval's own (lexical-hash, none), plus http. "model"
// answers kNotSupported until an engine with embeddings is loaded in this process.
retrieval::EmbedderFactory server_embedder_factory();

}  // namespace sluice::app
