// Deterministic metrics and the statistics of runs, on cases computed by hand.

#include "agents/evaluation/metrics.h"
#include "agents/evaluation/statistics.h"
#include "doctest/doctest.h"

namespace sluice::agents::evaluation {

TEST_CASE("SQuAD normalisation, exact match and token F1") {
    CHECK(normalize_answer("The  Norman-conquest, of AN England!") == "normanconquest of england");
    CHECK(exact_match("the France.", {"Italy", "France"}) == 1);
    CHECK(exact_match("in France", {"France"}) == 0);
    // prediction "in northern france" vs gold "france": 1 common; P = 1/3, R = 1, F1 = 0.5.
    CHECK(token_f1("in northern France", {"France"}) == doctest::Approx(0.5));
    // The best gold answer counts: "10th and 11th centuries" matches the second fully.
    CHECK(token_f1("10th and 11th centuries", {"10th century", "in the 10th and 11th centuries"}) ==
          doctest::Approx(2 * 1.0 * 0.8 / 1.8));
    CHECK(token_f1("", {"x"}) == 0);
    CHECK(token_f1("a the", {"an"}) == 1);  // both normalise to nothing
    CHECK(token_f1("x", {}) == 0);
}

TEST_CASE("retrieval precision, recall and nDCG at k") {
    std::vector<ContextChunk> retrieved = {{"a", "alpha"}, {"x", "noise"}, {"b", "beta"},
                                           {"y", "noise"}};
    std::vector<ContextChunk> expected = {{"a", ""}, {"b", ""}, {"c", ""}};
    RetrievalScores at3 = retrieval_scores(retrieved, expected, 3);
    CHECK(at3.precision == doctest::Approx(2.0 / 3));
    CHECK(at3.recall == doctest::Approx(2.0 / 3));
    // DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG(3) = 1 + 1/log2(3) + 1/log2(4).
    CHECK(at3.ndcg == doctest::Approx(1.5 / (1 + 1 / std::log2(3.0) + 0.5)));
    RetrievalScores at1 = retrieval_scores(retrieved, expected, 1);
    CHECK(at1.precision == 1);
    CHECK(at1.recall == doctest::Approx(1.0 / 3));
    CHECK(at1.ndcg == 1);
    // Without doc_uri, an expected chunk is found by its content.
    RetrievalScores by_content = retrieval_scores(retrieved, {{"", "bet"}}, 5);
    CHECK(by_content.recall == 1);
    CHECK(by_content.precision == doctest::Approx(0.25));
    CHECK(retrieval_scores({}, expected, 5).recall == 0);
}

TEST_CASE("bootstrap interval: seeded, degenerate cases exact, width as the normal theory says") {
    std::vector<int> ones(50, 1);
    Interval all = bootstrap_interval(ones, 1000, 7);
    CHECK(all.low == 1);
    CHECK(all.high == 1);
    std::vector<int> half;
    for (int i = 0; i < 400; ++i) {
        half.push_back(i % 2);
    }
    Interval a = bootstrap_interval(half, 2000, 7);
    Interval b = bootstrap_interval(half, 2000, 7);
    CHECK(a.low == b.low);
    CHECK(a.high == b.high);
    // p = 0.5, n = 400: standard error 0.025, so the 95% interval is about 0.5 +- 0.049.
    CHECK(a.low == doctest::Approx(0.451).epsilon(0.02));
    CHECK(a.high == doctest::Approx(0.549).epsilon(0.02));
    CHECK(a.low < 0.5);
    CHECK(a.high > 0.5);
    // Resampled means of 0/1 outcomes are multiples of 1/n.
    CHECK(a.low * 400 == doctest::Approx(std::round(a.low * 400)));
    Interval other_seed = bootstrap_interval(half, 2000, 8);
    CHECK(other_seed.low == doctest::Approx(a.low).epsilon(0.03));
    CHECK(bootstrap_interval({}, 100, 1).high == 0);
    // One outcome: every resample is that outcome.
    Interval single = bootstrap_interval({0}, 100, 1);
    CHECK(single.low == 0);
    CHECK(single.high == 0);
}

TEST_CASE("McNemar exact p-values on constructed tables") {
    CHECK(mcnemar_exact(1, 9) == doctest::Approx(0.021484375));  // 2 * (1 + 10) / 1024
    CHECK(mcnemar_exact(9, 1) == doctest::Approx(0.021484375));
    CHECK(mcnemar_exact(0, 5) == doctest::Approx(0.0625));        // 2 / 32
    CHECK(mcnemar_exact(3, 3) == 1);
    CHECK(mcnemar_exact(0, 0) == 1);
    CHECK(mcnemar_exact(10, 30) == doctest::Approx(0.0022214337732293643));
    CHECK(mcnemar_exact(2, 8) == doctest::Approx(2 * (1 + 10 + 45) / 1024.0));
}

TEST_CASE("paired bootstrap of a mean difference") {
    PairedDifference all_better = paired_bootstrap(std::vector<double>(30, 0.5), 500, 3);
    CHECK(all_better.mean == 0.5);
    CHECK(all_better.ci.low == 0.5);
    CHECK(all_better.ci.high == 0.5);
    CHECK(all_better.p_value == 0);  // no resample reaches 0
    PairedDifference none = paired_bootstrap(std::vector<double>(30, 0.0), 500, 3);
    CHECK(none.p_value == 1);
    // Half the rows +1, half -1: no difference, and the interval straddles 0.
    std::vector<double> mixed;
    for (int i = 0; i < 200; ++i) {
        mixed.push_back(i % 2 == 0 ? 1.0 : -1.0);
    }
    PairedDifference noise = paired_bootstrap(mixed, 2000, 3);
    CHECK(noise.mean == 0);
    CHECK(noise.ci.low < 0);
    CHECK(noise.ci.high > 0);
    CHECK(noise.p_value > 0.5);
    // The standard error of the mean of +-1 over 200 rows is 1 / sqrt(200) = 0.0707.
    CHECK(noise.ci.high == doctest::Approx(1.96 * 0.0707).epsilon(0.1));
}

TEST_CASE("Cohen's kappa on the textbook table") {
    // 50 items: both yes 20, first yes / second no 5, first no / second yes 10, both no 15.
    std::vector<bool> first, second;
    auto add = [&](int n, bool a, bool b) {
        for (int i = 0; i < n; ++i) {
            first.push_back(a);
            second.push_back(b);
        }
    };
    add(20, true, true);
    add(5, true, false);
    add(10, false, true);
    add(15, false, false);
    Agreement k = cohens_kappa(first, second);
    CHECK(k.n == 50);
    CHECK(k.agreement == doctest::Approx(0.7));
    CHECK(k.kappa == doctest::Approx(0.4));  // p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5
    CHECK(cohens_kappa({true, true}, {true, true}).kappa == 1);
    CHECK(cohens_kappa({true, false}, {false, true}).kappa == doctest::Approx(-1));
    CHECK(cohens_kappa({}, {}).n == 0);
}

}  // namespace sluice::agents::evaluation
