#pragma once
// Ranking quality metrics as BEIR and TREC define them, for `sluice bench retrieval`:
//   nDCG@k   = DCG@k / IDCG@k, DCG = sum over ranks i (1-based) of rel_i / log2(i + 1), with graded
//              relevance used as the gain (trec_eval's linear gain, which BEIR's pytrec_eval uses);
//   Recall@k = relevant documents in the top k / all relevant documents (relevance > 0);
//   MRR@k    = 1 / rank of the first relevant document in the top k, 0 when none.
// A query without relevant documents scores 0 on all three; callers skip such queries, as BEIR
// evaluates only queries that have judgements.
//
// Thread safety: pure functions.

#include <map>
#include <string>
#include <vector>

namespace sluice::retrieval {

// Document id -> graded relevance (0 = not relevant).
using Judgements = std::map<std::string, int>;

double ndcg_at_k(const std::vector<std::string>& ranked, const Judgements& judged, std::size_t k);
double recall_at_k(const std::vector<std::string>& ranked, const Judgements& judged, std::size_t k);
double mrr_at_k(const std::vector<std::string>& ranked, const Judgements& judged, std::size_t k);

// The value at quantile q in [0, 1] of `values` (nearest rank on the sorted copy); 0 when empty.
double quantile(std::vector<double> values, double q);

}  // namespace sluice::retrieval
