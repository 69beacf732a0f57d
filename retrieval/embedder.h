#pragma once
// Embedders turn chunk text into dense vectors. Each index names one embedder; its id() keys the
// chunk store's embedding cache together with the text's content hash, so unchanged text is never
// embedded twice and a different embedder never reuses another's vectors.
//
// On offer here:
//   LexicalHashEmbedder  weight-free: hashed words, word bigrams and character n-grams into a
//                        dense L2-normalised vector. It captures shared surface forms, not
//                        meaning; it is a lexical embedder, useful without any model.
//   ModelEmbedder        adapts EmbeddingModel, the seam through which app/ hands in the loaded
//                        model's embeddings (retrieval does not depend on inference/).
// app/ adds an embedder for OpenAI-compatible /v1/embeddings servers.
//
// Thread safety: implementations must be thread-safe (queries embed concurrently).

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"

namespace sluice::retrieval {

using Vector = std::vector<float>;

class Embedder {
public:
    virtual ~Embedder() = default;
    // Stable name of the embedder and its settings, e.g. "lexical-hash-v1:384"; part of the cache
    // key, so it changes whenever the vectors would.
    virtual std::string id() const = 0;
    virtual std::size_t dimension() const = 0;
    // The most texts one embed() call takes.
    virtual std::size_t max_batch() const { return 64; }
    // One vector of dimension() floats per text, in order. Errors: kInvalidArgument for input the
    // embedder refuses, kUnavailable when a remote embedder cannot be reached.
    virtual Result<std::vector<Vector>> embed(const std::vector<std::string>& texts) const = 0;
};

// Embeds `texts` in batches of at most embedder.max_batch() and checks every vector's dimension
// (kInternal naming the embedder when one is wrong).
Result<std::vector<Vector>> embed_all(const Embedder& embedder,
                                      const std::vector<std::string>& texts);

class LexicalHashEmbedder final : public Embedder {
public:
    // Precondition: 16 <= dimension <= 65536.
    explicit LexicalHashEmbedder(std::size_t dimension);
    std::string id() const override;
    std::size_t dimension() const override { return dimension_; }
    std::size_t max_batch() const override { return 1024; }
    Result<std::vector<Vector>> embed(const std::vector<std::string>& texts) const override;

    Vector embed_one(std::string_view text) const;

private:
    std::size_t dimension_;
};

// What app/ implements over the in-process model: raw (not necessarily normalised) vectors.
class EmbeddingModel {
public:
    virtual ~EmbeddingModel() = default;
    virtual std::string model_id() const = 0;
    virtual std::size_t dimension() const = 0;
    virtual std::size_t max_batch() const = 0;
    virtual Result<std::vector<Vector>> embed(const std::vector<std::string>& texts) const = 0;
};

// The model's embeddings, L2-normalised so that inner product is cosine similarity.
class ModelEmbedder final : public Embedder {
public:
    explicit ModelEmbedder(std::shared_ptr<const EmbeddingModel> model);
    std::string id() const override { return "model:" + model_->model_id(); }
    std::size_t dimension() const override { return model_->dimension(); }
    std::size_t max_batch() const override { return model_->max_batch(); }
    Result<std::vector<Vector>> embed(const std::vector<std::string>& texts) const override;

private:
    std::shared_ptr<const EmbeddingModel> model_;
};

// Scales `v` to unit L2 norm (a zero vector stays zero).
void l2_normalize(Vector& v);
// kInvalidArgument naming `what` and the first component of `v` that is infinite or NaN.
Status check_finite(const Vector& v, const std::string& what);

}  // namespace sluice::retrieval
