// The read path of an index: query modes, fusion, and Index::query (admission by ACL and
// filter inside both rankers, fusion, hydration from the chunk store).
#include <omp.h>

#include <algorithm>
#include <mutex>
#include <shared_mutex>

#include "common/check.h"
#include "retrieval/detail/rw_lock.h"
#include "retrieval/fusion.h"
#include "retrieval/index.h"

namespace sluice::retrieval {

Result<QueryMode> parse_query_mode(std::string_view name) {
    if (name == "ann" || name == "ANN" || name == "vector") {
        return QueryMode::kAnn;
    }
    if (name == "hybrid" || name == "HYBRID") {
        return QueryMode::kHybrid;
    }
    if (name == "lexical" || name == "LEXICAL" || name == "full_text" || name == "FULL_TEXT") {
        return QueryMode::kLexical;
    }
    return invalid_argument("query mode '" + std::string(name) +
                            "', expected ann, hybrid or lexical");
}

std::string_view query_mode_name(QueryMode mode) {
    switch (mode) {
        case QueryMode::kAnn:
            return "ann";
        case QueryMode::kHybrid:
            return "hybrid";
        case QueryMode::kLexical:
            return "lexical";
    }
    return "unknown";
}

FusionChoice query_fusion(const Query& query, const IndexSettings& settings) {
    FusionChoice choice = hybrid_fusion(settings);
    if (query.fusion) {
        choice.method = *query.fusion;
    } else if (query.vector_weight) {
        choice.method = FusionMethod::kWeighted;
    }
    if (query.vector_weight) {
        choice.vector_weight = *query.vector_weight;
    }
    return choice;
}

std::function<bool(std::uint64_t)> Index::admit(const Filter& filter, const Reader& reader) const {
    return [this, &filter, &reader](std::uint64_t id) {
        auto it = chunks_.find(id);
        if (it == chunks_.end() || !it->second.acl.allows(reader)) {
            return false;
        }
        return filter.matches(it->second.metadata);
    };
}

Result<std::vector<Hit>> Index::query(const Query& query, const Reader& reader) const {
    if (query.k < 1 || query.k > 1000) {
        return invalid_argument("k " + std::to_string(query.k) + ", expected 1 to 1000");
    }
    if (query.vector_weight) {
        if (!(*query.vector_weight >= 0.0 && *query.vector_weight <= 1.0)) {
            return invalid_argument("vector_weight must be from 0 to 1");
        }
        if (query.fusion == FusionMethod::kRrf) {
            return invalid_argument("vector_weight applies to weighted fusion only");
        }
    }
    bool wants_lexical = query.mode != QueryMode::kAnn;
    bool wants_vector = query.mode != QueryMode::kLexical;
    if (wants_lexical && query.text.empty() && query.mode == QueryMode::kLexical) {
        return invalid_argument("lexical query needs query text");
    }
    SLUICE_RETURN_IF_ERROR(check_finite(query.vector, "query vector"));
    auto all_zero = [](const Vector& v) {
        return std::all_of(v.begin(), v.end(), [](float x) { return x == 0.0f; });
    };
    // Cosine similarity with a zero vector is undefined: every score would be 0 and the order
    // arbitrary, so k unrelated chunks would come back.
    if (settings_.metric == Metric::kCosine && !query.vector.empty() && all_zero(query.vector)) {
        return invalid_argument(
            "query vector has no direction (every component is 0): cosine "
            "similarity with it is undefined");
    }
    Vector vector = query.vector;
    if (wants_vector && vector.empty()) {
        if (!embedder_) {
            return failed_precondition("index '" + settings_.name +
                                       "' has no embedder; pass a query vector");
        }
        if (query.text.empty()) {
            return invalid_argument("query needs text or a vector");
        }
        SLUICE_ASSIGN_OR_RETURN(auto embedded, embed_all(*embedder_, {query.text}));
        vector = std::move(embedded.front());
        // Text in which the embedder found nothing (only punctuation, for lexical-hash) gives
        // no vector evidence: ranking by it would return arbitrary chunks at score 0.
        wants_vector = !all_zero(vector);
    }
    // FAISS parallelises one search with OpenMP; requests already run in parallel.
    omp_set_num_threads(1);
    std::size_t depth = query.mode == QueryMode::kHybrid
                            ? std::max(query.k, query.candidates ? query.candidates : 100)
                            : query.k;
    std::shared_lock lock(*mutex_);
    auto allow = admit(query.filter, reader);
    std::vector<ScoredId> lexical;
    std::vector<ScoredId> nearest;
    if (wants_lexical && !query.text.empty()) {
        lexical = lexical_.search(analyzer_->analyze(query.text), depth, &allow);
    }
    if (wants_vector) {
        // A filter or an ACL that admits few chunks names them through the posting lists, and
        // the vector search scans only those; it asks again, for a longer list, only when it
        // must scan anyway (a graph walk ran dry). When the lists name exactly the admitted chunks
        // the scan skips the predicate (a chunk-table lookup and the filter per candidate);
        // otherwise it checks each candidate before scoring it.
        CandidateSource candidates = postings_.source(query.filter, reader);
        SLUICE_ASSIGN_OR_RETURN(nearest,
                                vectors_->search(vector, depth, &allow, nullptr, &candidates));
    }
    std::vector<FusedId> ranked;
    if (query.mode == QueryMode::kHybrid) {
        const FusionChoice fusion = query_fusion(query, settings_);
        ranked = fusion.method == FusionMethod::kRrf
                     ? reciprocal_rank_fusion(lexical, nearest, query.k)
                     : weighted_fusion(lexical, nearest, query.k, fusion.vector_weight);
    } else {
        for (const auto& scored : query.mode == QueryMode::kLexical ? lexical : nearest) {
            FusedId entry{scored.id, scored.score, 0, 0};
            (query.mode == QueryMode::kLexical ? entry.lexical_score : entry.vector_score) =
                scored.score;
            ranked.push_back(entry);
        }
    }
    std::vector<Hit> hits;
    hits.reserve(ranked.size());
    for (const FusedId& entry : ranked) {
        SLUICE_ASSIGN_OR_RETURN(auto chunk, store_->get_chunk(entry.id));
        // Under the shared lock no writer runs, so the store agrees with memory; the check
        // guards the access rule against a bug, not against a race.
        SLUICE_CHECK(chunk.has_value() && chunk->acl.allows(reader),
                     "ranked chunk missing from the store or not readable");
        hits.push_back(
            Hit{std::move(*chunk), entry.score, entry.lexical_score, entry.vector_score});
    }
    return hits;
}

}  // namespace sluice::retrieval
