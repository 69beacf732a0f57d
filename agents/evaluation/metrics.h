#pragma once
// Deterministic metrics of one answer against its evaluation row.
//
//   exact_match / token_f1   SQuAD's official definitions (evaluate-v2.0.py): answers are
//                            normalised (lower case, punctuation removed, the articles a/an/the
//                            removed, whitespace collapsed); F1 is over the bag of normalised
//                            tokens; with several gold answers the best score counts. An empty
//                            normalised answer matches only an empty gold answer.
//   retrieval@k              over the first k retrieved chunks. A chunk is relevant when its
//                            doc_uri equals an expected chunk's doc_uri or, for an expected chunk
//                            without doc_uri, when it contains the expected content.
//                            precision = relevant chunks / chunks considered (at most k);
//                            recall    = expected chunks found / expected chunks;
//                            nDCG      = DCG / ideal DCG with binary gains, 1/log2(rank+1).
//
// Thread safety: pure functions.

#include <string>
#include <string_view>
#include <vector>

#include "agents/evaluation/eval_set.h"

namespace sluice::agents::evaluation {

std::string normalize_answer(std::string_view text);
std::vector<std::string> answer_tokens(std::string_view text);

// Best over `golds`; 0 when there are none.
double exact_match(std::string_view prediction, const std::vector<std::string>& golds);
double token_f1(std::string_view prediction, const std::vector<std::string>& golds);

struct RetrievalScores {
    double precision = 0;
    double recall = 0;
    double ndcg = 0;
};
// Precondition: `expected` is not empty.
RetrievalScores retrieval_scores(const std::vector<ContextChunk>& retrieved,
                                 const std::vector<ContextChunk>& expected, size_t k);

}  // namespace sluice::agents::evaluation
