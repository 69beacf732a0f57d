#pragma once
// The settings an index is created with and keeps for its life (stored in its chunk store):
// analyzer language, chunking, embedder, vector index type and metric, BM25 parameters.
//
// Thread safety: a value type.

#include <optional>
#include <string>

#include "common/result.h"
#include "retrieval/chunker.h"
#include "retrieval/fusion.h"
#include "retrieval/lexical_index.h"
#include "retrieval/vector_index.h"

namespace sluice::retrieval {

// IndexSettings::dimension asking for the embedder's own width.
inline constexpr std::size_t kEmbedderDimension = 0;

struct IndexSettings {
    std::string name;
    std::string language = "english";  // Snowball language of the lexical analyzer, or "none"
    bool chunking = true;              // false: each document is one chunk
    ChunkingOptions chunk;
    // "lexical-hash" (weight-free), "http" (OpenAI-compatible server), "model" (the loaded
    // model), or "none" (vectors come with the documents and queries).
    std::string embedder = "lexical-hash";
    std::string embedder_endpoint;  // http: base URL, e.g. http://127.0.0.1:8000
    std::string embedder_model;     // http: the "model" field of the request
    // Width of the vectors. kEmbedderDimension, for "model" only: the embedder's own width (the
    // model's d_model), which Index::create resolves and stores; a stored index never has 0.
    std::size_t dimension = 256;
    std::string factory = "Flat";  // FAISS factory string
    Metric metric = Metric::kCosine;
    Bm25Params bm25;
    // How hybrid queries that name no fusion fuse; unset: the embedder's default
    // (hybrid_fusion()). vector_weight (0 to 1) is for weighted fusion only; given alone, it
    // asks for weighted fusion.
    std::optional<FusionMethod> fusion;
    std::optional<double> vector_weight;
};

// The fusion hybrid queries on this index use when they name none: the settings' own, else
// weighted fusion with vector weight 0.2 for the lexical-hash embedder (its vectors hash the same
// words BM25 ranks, so an equal say in reciprocal rank fusion lets their weaker ranking pull
// BM25's down: SciFact nDCG@10 0.515 against BM25's 0.687, docs/benchmarks.md), else
// reciprocal rank fusion (k = 60) for embedders that carry meaning of their own. The weight is
// the settings' own, else 0.2 for lexical-hash and kDefaultVectorWeight for the others.
FusionChoice hybrid_fusion(const IndexSettings& settings);

// kInvalidArgument naming the first bad setting. The vector index is built once, empty, from
// the factory string, dimension and metric (vector_factory.h lists the strings accepted); with
// kEmbedderDimension the checks that need the width wait for Index::create.
Status validate(const IndexSettings& settings);
// Index names: 1 to 128 of [A-Za-z0-9_.-], not starting with '.'.
Status validate_index_name(const std::string& name);

// A line-oriented key=value form, stable across releases (unknown keys are refused on read).
std::string encode_settings(const IndexSettings& settings);
Result<IndexSettings> decode_settings(const std::string& text);

VectorIndexOptions vector_options(const IndexSettings& settings);

}  // namespace sluice::retrieval
