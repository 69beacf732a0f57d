#include "retrieval/fusion.h"

#include <algorithm>
#include <unordered_map>

namespace sluice::retrieval {
namespace {

std::vector<FusedId> top(std::unordered_map<std::uint64_t, FusedId>& fused, std::size_t k) {
    std::vector<FusedId> out;
    out.reserve(fused.size());
    for (auto& [id, entry] : fused) {
        out.push_back(entry);
    }
    std::sort(out.begin(), out.end(), [](const FusedId& a, const FusedId& b) {
        return a.score != b.score ? a.score > b.score : a.id < b.id;
    });
    if (out.size() > k) {
        out.resize(k);
    }
    return out;
}

// Min-max normalisation over one list; a list of equal scores maps to 1.
std::vector<double> normalised(const std::vector<ScoredId>& list) {
    std::vector<double> out(list.size(), 1.0);
    if (list.empty()) {
        return out;
    }
    auto [lo, hi] = std::minmax_element(list.begin(), list.end(),
                                        [](const ScoredId& a, const ScoredId& b) {
                                            return a.score < b.score;
                                        });
    double span = hi->score - lo->score;
    if (span <= 0) {
        return out;
    }
    for (std::size_t i = 0; i < list.size(); ++i) {
        out[i] = (list[i].score - lo->score) / span;
    }
    return out;
}

}  // namespace

std::vector<FusedId> reciprocal_rank_fusion(const std::vector<ScoredId>& lexical,
                                            const std::vector<ScoredId>& vector, std::size_t k,
                                            double rrf_k) {
    std::unordered_map<std::uint64_t, FusedId> fused;
    for (std::size_t rank = 0; rank < lexical.size(); ++rank) {
        FusedId& entry = fused[lexical[rank].id];
        entry.id = lexical[rank].id;
        entry.score += 1.0 / (rrf_k + static_cast<double>(rank + 1));
        entry.lexical_score = lexical[rank].score;
    }
    for (std::size_t rank = 0; rank < vector.size(); ++rank) {
        FusedId& entry = fused[vector[rank].id];
        entry.id = vector[rank].id;
        entry.score += 1.0 / (rrf_k + static_cast<double>(rank + 1));
        entry.vector_score = vector[rank].score;
    }
    return top(fused, k);
}

Result<FusionMethod> parse_fusion_method(std::string_view name) {
    if (name == "rrf") {
        return FusionMethod::kRrf;
    }
    if (name == "weighted") {
        return FusionMethod::kWeighted;
    }
    return invalid_argument("fusion '" + std::string(name) + "', expected rrf or weighted");
}

std::string_view fusion_method_name(FusionMethod method) {
    return method == FusionMethod::kRrf ? "rrf" : "weighted";
}

std::vector<FusedId> weighted_fusion(const std::vector<ScoredId>& lexical,
                                     const std::vector<ScoredId>& vector, std::size_t k,
                                     double vector_weight) {
    std::unordered_map<std::uint64_t, FusedId> fused;
    auto lexical_norm = normalised(lexical);
    auto vector_norm = normalised(vector);
    for (std::size_t i = 0; i < lexical.size(); ++i) {
        FusedId& entry = fused[lexical[i].id];
        entry.id = lexical[i].id;
        entry.score += (1.0 - vector_weight) * lexical_norm[i];
        entry.lexical_score = lexical[i].score;
    }
    for (std::size_t i = 0; i < vector.size(); ++i) {
        FusedId& entry = fused[vector[i].id];
        entry.id = vector[i].id;
        entry.score += vector_weight * vector_norm[i];
        entry.vector_score = vector[i].score;
    }
    return top(fused, k);
}

}  // namespace sluice::retrieval
