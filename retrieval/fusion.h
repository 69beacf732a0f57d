#pragma once
// Fusing the lexical and the vector ranking of one query.
//   Reciprocal rank fusion (Cormack, Clarke and Büttcher, SIGIR 2009): score(d) = sum over
//   rankings of 1 / (k + rank(d)), rank 1-based, k = 60 as in the paper.
//   Weighted fusion: each ranking's scores min-max normalised to [0, 1] over its own list, then
//   w * vector + (1 - w) * lexical; a document missing from a list gets 0 from it.
//
// Thread safety: pure functions.

#include <string_view>
#include <vector>

#include "common/result.h"
#include "retrieval/lexical_index.h"

namespace sluice::retrieval {

enum class FusionMethod { kRrf, kWeighted };

// "rrf" or "weighted"; kInvalidArgument otherwise.
Result<FusionMethod> parse_fusion_method(std::string_view name);
std::string_view fusion_method_name(FusionMethod method);

// The vector side's weight in weighted fusion when neither the query nor the index names one.
inline constexpr double kDefaultVectorWeight = 0.5;

// How a hybrid query fuses its two rankings.
struct FusionChoice {
    FusionMethod method = FusionMethod::kRrf;
    double vector_weight = kDefaultVectorWeight;  // weighted fusion only
};

struct FusedId {
    std::uint64_t id = 0;
    double score = 0;
    double lexical_score = 0;
    double vector_score = 0;
};

// Both inputs best first. Output best first, ties by smaller id, at most `k`.
std::vector<FusedId> reciprocal_rank_fusion(const std::vector<ScoredId>& lexical,
                                            const std::vector<ScoredId>& vector, std::size_t k,
                                            double rrf_k = 60.0);

std::vector<FusedId> weighted_fusion(const std::vector<ScoredId>& lexical,
                                     const std::vector<ScoredId>& vector, std::size_t k,
                                     double vector_weight);

}  // namespace sluice::retrieval
