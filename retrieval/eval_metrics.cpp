#include "retrieval/eval_metrics.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace sluice::retrieval {
namespace {

int relevance(const Judgements& judged, const std::string& id) {
    auto it = judged.find(id);
    return it == judged.end() ? 0 : it->second;
}

// Rankers can return a document twice (several chunks of one document); only its first, best
// rank counts, as when results are collapsed to documents.
std::vector<std::string> first_occurrences(const std::vector<std::string>& ranked,
                                           std::size_t k) {
    std::vector<std::string> out;
    std::set<std::string> seen;
    for (const auto& id : ranked) {
        if (out.size() == k) {
            break;
        }
        if (seen.insert(id).second) {
            out.push_back(id);
        }
    }
    return out;
}

}  // namespace

double ndcg_at_k(const std::vector<std::string>& ranked, const Judgements& judged, std::size_t k) {
    auto top = first_occurrences(ranked, k);
    double dcg = 0;
    for (std::size_t i = 0; i < top.size(); ++i) {
        dcg += relevance(judged, top[i]) / std::log2(static_cast<double>(i) + 2.0);
    }
    std::vector<int> ideal;
    for (const auto& [id, rel] : judged) {
        if (rel > 0) {
            ideal.push_back(rel);
        }
    }
    std::sort(ideal.rbegin(), ideal.rend());
    double idcg = 0;
    for (std::size_t i = 0; i < ideal.size() && i < k; ++i) {
        idcg += ideal[i] / std::log2(static_cast<double>(i) + 2.0);
    }
    return idcg > 0 ? dcg / idcg : 0.0;
}

double recall_at_k(const std::vector<std::string>& ranked, const Judgements& judged,
                   std::size_t k) {
    std::size_t relevant = 0;
    for (const auto& [id, rel] : judged) {
        relevant += rel > 0 ? 1 : 0;
    }
    if (relevant == 0) {
        return 0.0;
    }
    std::size_t found = 0;
    for (const auto& id : first_occurrences(ranked, k)) {
        found += relevance(judged, id) > 0 ? 1 : 0;
    }
    return static_cast<double>(found) / static_cast<double>(relevant);
}

double mrr_at_k(const std::vector<std::string>& ranked, const Judgements& judged, std::size_t k) {
    auto top = first_occurrences(ranked, k);
    for (std::size_t i = 0; i < top.size(); ++i) {
        if (relevance(judged, top[i]) > 0) {
            return 1.0 / static_cast<double>(i + 1);
        }
    }
    return 0.0;
}

double quantile(std::vector<double> values, double q) {
    if (values.empty()) {
        return 0.0;
    }
    std::sort(values.begin(), values.end());
    auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(values.size())));
    rank = std::clamp<std::size_t>(rank, 1, values.size());
    return values[rank - 1];
}

}  // namespace sluice::retrieval
