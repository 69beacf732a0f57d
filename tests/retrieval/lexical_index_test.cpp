#include "retrieval/lexical_index.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

using namespace sluice::retrieval;

namespace {

TermCounts terms(std::initializer_list<const char*> words) {
    std::vector<std::string> list(words.begin(), words.end());
    return count_terms(list);
}

}  // namespace

TEST_CASE("bm25 scores match the formula by hand") {
    LexicalIndex index;
    index.add(1, terms({"cat", "sat", "mat"}));
    index.add(2, terms({"cat", "cat", "dog", "bark", "loud", "yard"}));
    index.add(3, terms({"dog", "bone"}));
    // N = 3, avgdl = (3 + 6 + 2) / 3; "cat" in 2 docs: idf = ln(1 + (3 - 2 + 0.5) / 2.5).
    double avgdl = 11.0 / 3.0;
    double idf = std::log(1.0 + 1.5 / 2.5);
    auto bm25 = [&](double tf, double dl) {
        return idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * dl / avgdl));
    };
    auto hits = index.search({"cat"}, 10);
    REQUIRE(hits.size() == 2);
    CHECK(hits[0].id == 2);
    CHECK(hits[0].score == doctest::Approx(bm25(2, 6)));
    CHECK(hits[1].id == 1);
    CHECK(hits[1].score == doctest::Approx(bm25(1, 3)));
    // Repeating a query term doubles its contribution.
    auto twice = index.search({"cat", "cat"}, 10);
    CHECK(twice[0].score == doctest::Approx(2 * bm25(2, 6)));
}

TEST_CASE("after deletes an index scores exactly like one built without the deleted chunks") {
    LexicalIndex churned;
    churned.add(1, terms({"alpha", "beta"}));
    churned.add(2, terms({"beta", "gamma", "gamma"}));
    churned.add(3, terms({"alpha", "delta"}));
    churned.add(4, terms({"beta"}));
    CHECK(churned.remove(2));
    CHECK_FALSE(churned.remove(2));
    churned.add(5, terms({"gamma", "beta"}));

    LexicalIndex fresh;
    fresh.add(1, terms({"alpha", "beta"}));
    fresh.add(3, terms({"alpha", "delta"}));
    fresh.add(4, terms({"beta"}));
    fresh.add(5, terms({"gamma", "beta"}));

    for (auto query : {std::vector<std::string>{"beta"}, {"gamma", "alpha"}, {"delta", "beta"}}) {
        auto a = churned.search(query, 10);
        auto b = fresh.search(query, 10);
        REQUIRE(a.size() == b.size());
        for (std::size_t i = 0; i < a.size(); ++i) {
            CHECK(a[i].id == b[i].id);
            CHECK(a[i].score == doctest::Approx(b[i].score));
        }
    }
    CHECK(churned.size() == 4);
    CHECK(churned.average_length() == doctest::Approx(fresh.average_length()));
}

TEST_CASE("an index updated many times stays the size of its corpus and scores as a fresh one") {
    // 300 chunks over a vocabulary that drifts: each round rewrites every chunk with words of
    // its round, so old words leave the corpus as new ones come.
    auto words_of = [](std::uint64_t id, int round) {
        std::vector<std::string> words;
        for (int w = 0; w < 6; ++w) {
            std::string word(1, 'w');
            word += std::to_string((id * 7 + static_cast<std::uint64_t>(w)) % 40 +
                                   static_cast<std::uint64_t>(round) * 3);
            words.push_back(std::move(word));
        }
        return count_terms(words);
    };
    constexpr std::uint64_t kChunks = 300;
    LexicalIndex churned;
    for (std::uint64_t id = 0; id < kChunks; ++id) {
        churned.add(id, words_of(id, 0));
    }
    constexpr int kRounds = 40;
    std::size_t most_slots = 0;
    for (int round = 1; round <= kRounds; ++round) {
        for (std::uint64_t id = 0; id < kChunks; ++id) {
            REQUIRE(churned.remove(id));
            churned.add(id, words_of(id, round));
            most_slots = std::max(most_slots, churned.slot_count());
        }
    }
    LexicalIndex fresh;
    for (std::uint64_t id = 0; id < kChunks; ++id) {
        fresh.add(id, words_of(id, kRounds));
    }
    // 12,300 chunks were added in all; the slots never pass the floor of dead ones plus twice
    // the corpus, and the words of earlier rounds are gone.
    CHECK(most_slots <= 1024 + 2 * kChunks + 1);
    CHECK(churned.term_count() <= fresh.term_count() + 3 * 40);
    CHECK(churned.size() == kChunks);
    for (auto query :
         {std::vector<std::string>{"w120"}, {"w125", "w130", "w159"}, {"w3", "w121"}}) {
        auto a = churned.search(query, 20);
        auto b = fresh.search(query, 20);
        REQUIRE(a.size() == b.size());
        for (std::size_t i = 0; i < a.size(); ++i) {
            CHECK(a[i].id == b[i].id);
            CHECK(a[i].score == doctest::Approx(b[i].score));
        }
    }
    CHECK(churned.search({"w0"}, 5).empty());  // a word of round 0 only
}

TEST_CASE("refused chunks are never scored and k results still come back") {
    LexicalIndex index;
    for (std::uint64_t id = 1; id <= 200; ++id) {
        index.add(id, terms({"common", id % 2 == 0 ? "even" : "odd"}));
    }
    std::size_t asked = 0;
    std::function<bool(std::uint64_t)> only_multiples_of_50 = [&](std::uint64_t id) {
        ++asked;
        return id % 50 == 0;
    };
    auto hits = index.search({"common"}, 4, &only_multiples_of_50);
    REQUIRE(hits.size() == 4);
    for (const auto& hit : hits) {
        CHECK(hit.id % 50 == 0);
    }
    CHECK(asked == 200);  // asked once per candidate, not once per posting
    CHECK(index.search({"missing"}, 5).empty());
    CHECK(index.search({"common"}, 0).empty());
}
