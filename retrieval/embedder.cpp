#include "retrieval/embedder.h"

#include <algorithm>
#include <cmath>
#include <string_view>

#include "common/check.h"

namespace sluice::retrieval {
namespace {

std::uint64_t fnv1a(std::string_view text, std::uint64_t seed) {
    std::uint64_t h = 0xcbf29ce484222325ULL ^ seed;
    for (unsigned char c : text) {
        h = (h ^ c) * 0x100000001b3ULL;
    }
    // A final avalanche so that the low bits used for the bucket depend on every byte.
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

std::vector<std::string> words_of(std::string_view text) {
    std::vector<std::string> words;
    std::string word;
    for (char raw : text) {
        auto c = static_cast<unsigned char>(raw);
        bool word_byte = (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
                         c >= 0x80;
        if (word_byte) {
            word.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : raw);
        } else if (!word.empty()) {
            words.push_back(std::move(word));
            word.clear();
        }
    }
    if (!word.empty()) {
        words.push_back(std::move(word));
    }
    return words;
}

}  // namespace

void l2_normalize(Vector& v) {
    double norm = 0;
    for (float x : v) {
        norm += static_cast<double>(x) * x;
    }
    if (norm <= 0) {
        return;
    }
    auto scale = static_cast<float>(1.0 / std::sqrt(norm));
    for (float& x : v) {
        x *= scale;
    }
}

Status check_finite(const Vector& v, const std::string& what) {
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (!std::isfinite(v[i])) {
            return invalid_argument(what + "[" + std::to_string(i) + "] is " +
                                    std::to_string(v[i]) + ", expected a finite float");
        }
    }
    return Status::ok_status();
}

Result<std::vector<Vector>> embed_all(const Embedder& embedder,
                                      const std::vector<std::string>& texts) {
    std::vector<Vector> out;
    out.reserve(texts.size());
    std::size_t batch = std::max<std::size_t>(1, embedder.max_batch());
    for (std::size_t first = 0; first < texts.size(); first += batch) {
        std::size_t last = std::min(first + batch, texts.size());
        std::vector<std::string> slice(texts.begin() + static_cast<std::ptrdiff_t>(first),
                                       texts.begin() + static_cast<std::ptrdiff_t>(last));
        SLUICE_ASSIGN_OR_RETURN(auto vectors, embedder.embed(slice));
        if (vectors.size() != slice.size()) {
            return internal_error("embedder '" + embedder.id() + "' returned " +
                                  std::to_string(vectors.size()) + " vectors for " +
                                  std::to_string(slice.size()) + " texts");
        }
        for (auto& v : vectors) {
            if (v.size() != embedder.dimension()) {
                return internal_error("embedder '" + embedder.id() + "' returned a vector of " +
                                      std::to_string(v.size()) + " floats, expected " +
                                      std::to_string(embedder.dimension()));
            }
            out.push_back(std::move(v));
        }
    }
    return out;
}

LexicalHashEmbedder::LexicalHashEmbedder(std::size_t dimension) : dimension_(dimension) {
    SLUICE_CHECK(dimension >= 16 && dimension <= 65536, "lexical hash dimension out of range");
}

std::string LexicalHashEmbedder::id() const {
    return "lexical-hash-v1:" + std::to_string(dimension_);
}

Vector LexicalHashEmbedder::embed_one(std::string_view text) const {
    Vector v(dimension_, 0.0f);
    // Feature hashing with a sign bit (Weinberger et al., 2009), so that collisions cancel in
    // expectation instead of piling up.
    auto add = [&](std::string_view feature, std::uint64_t seed, float weight) {
        std::uint64_t h = fnv1a(feature, seed);
        float sign = (h >> 63) != 0 ? -1.0f : 1.0f;
        v[h % dimension_] += sign * weight;
    };
    auto words = words_of(text);
    for (std::size_t i = 0; i < words.size(); ++i) {
        const std::string& word = words[i];
        add(word, 1, 1.0f);
        if (i + 1 < words.size()) {
            add(word + " " + words[i + 1], 2, 0.5f);
        }
        // Character 3- to 5-grams of the word with boundary marks catch shared stems and
        // inflections ("<infect", "ection>").
        std::string marked = "<" + word + ">";
        std::size_t grams = 0;
        for (std::size_t n = 3; n <= 5; ++n) {
            grams += marked.size() >= n ? marked.size() - n + 1 : 0;
        }
        if (grams == 0) {
            continue;
        }
        float weight = 1.0f / static_cast<float>(std::sqrt(static_cast<double>(grams)));
        for (std::size_t n = 3; n <= 5; ++n) {
            for (std::size_t start = 0; start + n <= marked.size(); ++start) {
                add(std::string_view(marked).substr(start, n), 3 + n, weight);
            }
        }
    }
    l2_normalize(v);
    return v;
}

Result<std::vector<Vector>> LexicalHashEmbedder::embed(
    const std::vector<std::string>& texts) const {
    std::vector<Vector> out;
    out.reserve(texts.size());
    for (const auto& text : texts) {
        out.push_back(embed_one(text));
    }
    return out;
}

ModelEmbedder::ModelEmbedder(std::shared_ptr<const EmbeddingModel> model)
    : model_(std::move(model)) {
    SLUICE_CHECK(model_ != nullptr, "ModelEmbedder needs a model");
}

Result<std::vector<Vector>> ModelEmbedder::embed(const std::vector<std::string>& texts) const {
    SLUICE_ASSIGN_OR_RETURN(auto vectors, model_->embed(texts));
    if (vectors.size() != texts.size()) {
        return internal_error("embedding model '" + model_->model_id() + "' returned " +
                              std::to_string(vectors.size()) + " vectors for " +
                              std::to_string(texts.size()) + " texts");
    }
    for (std::size_t i = 0; i < vectors.size(); ++i) {
        const std::string what = "embedding model '" + model_->model_id() + "': vector of text " +
                                 std::to_string(i) + " of the batch";
        if (vectors[i].size() != model_->dimension()) {
            return internal_error(what + " has " + std::to_string(vectors[i].size()) +
                                  " floats, expected " + std::to_string(model_->dimension()));
        }
        // A model that overflows (a NaN or an infinity in its hidden states) would store a
        // vector whose every score is NaN, which no ranking can order.
        if (Status finite = check_finite(vectors[i], what); !finite.ok()) {
            return internal_error(finite.message());
        }
        l2_normalize(vectors[i]);
    }
    return vectors;
}

}  // namespace sluice::retrieval
