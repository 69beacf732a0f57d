#include "retrieval/eval_metrics.h"

#include <doctest/doctest.h>

#include <cmath>

using namespace sluice::retrieval;

// Hand-computed: ranking [x, a, y, b, z], relevant a (grade 1) and b (grade 2), c (grade 1).
//   DCG@5  = 1/log2(3) + 2/log2(5) = 0.630930 + 0.861353 = 1.492283
//   IDCG@5 = 2/log2(2) + 1/log2(3) + 1/log2(4) = 2 + 0.630930 + 0.5 = 3.130930
//   nDCG@5 = 0.476626; Recall@5 = 2/3; MRR@5 = 1/2.
TEST_CASE("metrics match a hand-computed ranking") {
    std::vector<std::string> ranked = {"x", "a", "y", "b", "z"};
    Judgements judged = {{"a", 1}, {"b", 2}, {"c", 1}, {"n", 0}};
    CHECK(ndcg_at_k(ranked, judged, 5) == doctest::Approx(0.476626).epsilon(1e-5));
    CHECK(recall_at_k(ranked, judged, 5) == doctest::Approx(2.0 / 3.0));
    CHECK(mrr_at_k(ranked, judged, 5) == doctest::Approx(0.5));
    // Cut-offs apply: at k = 1 nothing relevant is retrieved.
    CHECK(ndcg_at_k(ranked, judged, 1) == 0.0);
    CHECK(mrr_at_k(ranked, judged, 1) == 0.0);
    // k = 2: DCG = 1/log2(3); IDCG = 2 + 1/log2(3).
    CHECK(ndcg_at_k(ranked, judged, 2) ==
          doctest::Approx((1 / std::log2(3.0)) / (2 + 1 / std::log2(3.0))));
}

TEST_CASE("a perfect ranking scores 1 and repeated documents count once") {
    Judgements judged = {{"a", 1}, {"b", 1}};
    CHECK(ndcg_at_k({"a", "b", "c"}, judged, 10) == doctest::Approx(1.0));
    CHECK(ndcg_at_k({"a", "a", "b"}, judged, 10) == doctest::Approx(1.0));
    CHECK(recall_at_k({"a", "a"}, judged, 10) == doctest::Approx(0.5));
    CHECK(ndcg_at_k({}, judged, 10) == 0.0);
    CHECK(recall_at_k({"a"}, {}, 10) == 0.0);
}

TEST_CASE("quantile uses nearest rank") {
    CHECK(quantile({}, 0.5) == 0.0);
    CHECK(quantile({5, 1, 3, 2, 4}, 0.5) == 3.0);
    CHECK(quantile({5, 1, 3, 2, 4}, 0.99) == 5.0);
    CHECK(quantile({5, 1, 3, 2, 4}, 0.0) == 1.0);
}
