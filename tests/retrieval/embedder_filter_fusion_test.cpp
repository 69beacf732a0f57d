#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "retrieval/embedder.h"
#include "retrieval/filter.h"
#include "retrieval/fusion.h"

using namespace sluice::retrieval;

namespace {

double dot(const Vector& a, const Vector& b) {
    double sum = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        sum += static_cast<double>(a[i]) * b[i];
    }
    return sum;
}

class FakeModel final : public EmbeddingModel {
public:
    std::string model_id() const override { return "fake"; }
    std::size_t dimension() const override { return 2; }
    std::size_t max_batch() const override { return 2; }
    sluice::Result<std::vector<Vector>> embed(const std::vector<std::string>& texts) const override {
        ++calls;
        std::vector<Vector> out;
        for (const auto& text : texts) {
            out.push_back({static_cast<float>(text.size()), 0.0f});
        }
        return out;
    }
    mutable int calls = 0;
};

// Returns what it is given to return, whatever it is asked.
class ScriptedModel final : public EmbeddingModel {
public:
    explicit ScriptedModel(std::vector<Vector> vectors) : vectors_(std::move(vectors)) {}
    std::string model_id() const override { return "scripted"; }
    std::size_t dimension() const override { return 2; }
    std::size_t max_batch() const override { return 8; }
    sluice::Result<std::vector<Vector>> embed(const std::vector<std::string>&) const override {
        return vectors_;
    }

private:
    std::vector<Vector> vectors_;
};

}  // namespace

TEST_CASE("the lexical hash embedder is unit length, deterministic and lexically sensitive") {
    LexicalHashEmbedder embedder(256);
    CHECK(embedder.id() == "lexical-hash-v1:256");
    auto a = embedder.embed_one("bacterial infection of the lung");
    auto b = embedder.embed_one("lung infections caused by bacteria");
    auto c = embedder.embed_one("quarterly revenue grew in Europe");
    CHECK(a.size() == 256);
    CHECK(dot(a, a) == doctest::Approx(1.0));
    CHECK(embedder.embed_one("bacterial infection of the lung") == a);
    CHECK(dot(a, b) > dot(a, c) + 0.1);
    auto empty = embedder.embed_one("");
    CHECK(dot(empty, empty) == 0.0);
}

TEST_CASE("embed_all batches by max_batch and the model embedder normalises") {
    auto model = std::make_shared<FakeModel>();
    ModelEmbedder embedder(model);
    auto vectors = embed_all(embedder, {"a", "bb", "ccc", "dddd", "eeeee"});
    REQUIRE(vectors.ok());
    CHECK(model->calls == 3);
    CHECK(vectors->size() == 5);
    CHECK((*vectors)[2] == Vector{1.0f, 0.0f});
    CHECK(embedder.id() == "model:fake");
}

TEST_CASE("the model embedder refuses a model's non-finite, misshapen or missing vectors") {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    auto refused = [](std::vector<Vector> vectors) {
        ModelEmbedder embedder(std::make_shared<ScriptedModel>(std::move(vectors)));
        return embedder.embed({"first", "second"}).status();
    };
    auto with_nan = refused({{1.0f, 0.0f}, {nan, 1.0f}});
    CHECK(with_nan.code() == sluice::StatusCode::kInternal);
    CHECK(with_nan.message().find("text 1 of the batch[0] is nan") != std::string::npos);
    CHECK(refused({{inf, 0.0f}, {1.0f, 1.0f}}).message().find("text 0") != std::string::npos);
    CHECK(refused({{1.0f, 0.0f}}).message().find("1 vectors for 2 texts") != std::string::npos);
    CHECK(refused({{1.0f, 0.0f}, {1.0f}}).message().find("1 floats, expected 2") !=
          std::string::npos);
    auto fine = ModelEmbedder(std::make_shared<ScriptedModel>(
                                  std::vector<Vector>{{3.0f, 4.0f}, {0.0f, 2.0f}}))
                    .embed({"first", "second"});
    REQUIRE(fine.ok());
    CHECK((*fine)[0][0] == doctest::Approx(0.6));
}

TEST_CASE("filters: equals, in, range, prefix, and/or/not, missing fields") {
    Metadata doc = {{"year", 2021.0}, {"lang", std::string("en")}, {"path", std::string("/a/b")}};
    CHECK(Filter().matches(doc));
    CHECK(Filter::equals("lang", std::string("en")).matches(doc));
    CHECK_FALSE(Filter::equals("lang", std::string("de")).matches(doc));
    CHECK_FALSE(Filter::equals("year", std::string("2021")).matches(doc));  // kinds differ
    CHECK(Filter::in("year", {2020.0, 2021.0}).matches(doc));
    CHECK(Filter::range("year", 2021.0, true, 2022.0, false).matches(doc));
    CHECK_FALSE(Filter::range("year", 2021.0, false, std::nullopt, true).matches(doc));
    CHECK(Filter::prefix("path", "/a/").matches(doc));
    CHECK_FALSE(Filter::prefix("year", "20").matches(doc));
    CHECK_FALSE(Filter::equals("missing", 1.0).matches(doc));
    CHECK(Filter::negate(Filter::equals("missing", 1.0)).matches(doc));
    auto both = Filter::all_of({Filter::equals("lang", std::string("en")),
                                Filter::negate(Filter::range("year", std::nullopt, true, 2000.0,
                                                             true))});
    CHECK(both.matches(doc));
    CHECK(Filter::any_of({Filter::equals("lang", std::string("fr")),
                          Filter::prefix("path", "/a")})
              .matches(doc));
    CHECK(both.describe() == "(lang = \"en\" and not year <= 2000)");
}

TEST_CASE("integer and float metadata compare as numbers, by exact value") {
    const std::int64_t two_53 = std::int64_t{1} << 53;
    Metadata doc = {{"year", std::int64_t{2020}}, {"score", 2.5}, {"big", two_53 + 1}};
    // Integers against floats, in every leaf.
    CHECK(Filter::equals("year", 2020.0).matches(doc));
    CHECK(Filter::equals("year", std::int64_t{2020}).matches(doc));
    CHECK(Filter::in("year", {std::int64_t{2019}, 2020.0}).matches(doc));
    CHECK(Filter::range("year", std::int64_t{2019}, true, std::nullopt, true).matches(doc));
    CHECK(Filter::range("year", 2019.5, true, 2020.5, true).matches(doc));
    CHECK_FALSE(Filter::range("year", 2020.0, false, std::nullopt, true).matches(doc));
    CHECK(Filter::range("score", std::int64_t{2}, true, std::int64_t{3}, false).matches(doc));
    CHECK_FALSE(Filter::equals("score", std::int64_t{2}).matches(doc));
    CHECK_FALSE(Filter::equals("year", std::string("2020")).matches(doc));  // kinds differ
    // 2^53 + 1 has no double: converted to one it would equal the float 2^53.
    CHECK_FALSE(Filter::equals("big", static_cast<double>(two_53)).matches(doc));
    CHECK(
        Filter::range("big", static_cast<double>(two_53), false, std::nullopt, true).matches(doc));
    CHECK(compare_values(std::int64_t{-1}, -0.5) == -1);
    CHECK(compare_values(-1.5, std::int64_t{-1}) == -1);
    CHECK(compare_values(std::int64_t{0}, -0.0) == 0);
    CHECK(compare_values(std::numeric_limits<std::int64_t>::max(), 9223372036854775808.0) == -1);
    CHECK(compare_values(std::numeric_limits<std::int64_t>::min(), -9223372036854775808.0) == 0);
    CHECK(compare_values(std::int64_t{1}, -HUGE_VAL) == 1);
    CHECK_FALSE(compare_values(std::int64_t{1}, std::nan("")).has_value());
    // Values print as given; a float's text reads back as the same float.
    CHECK(describe_value(std::int64_t{2020}) == "2020");
    CHECK(describe_value(2.5) == "2.5");
    CHECK(describe_value(0.1) == "0.1");
    CHECK(describe_value(1234567.0) == "1234567");  // %g alone gave 1.23457e+06
    CHECK(Filter::range("year", std::int64_t{2019}, true, std::nullopt, true).describe() ==
          "year >= 2019");
}

TEST_CASE("reciprocal rank fusion and weighted fusion") {
    std::vector<ScoredId> lexical = {{1, 9.0}, {2, 5.0}, {3, 1.0}};
    std::vector<ScoredId> vector = {{3, 0.9}, {1, 0.8}, {4, 0.1}};
    auto rrf = reciprocal_rank_fusion(lexical, vector, 10);
    REQUIRE(rrf.size() == 4);
    CHECK(rrf[0].id == 1);  // 1/61 + 1/62
    CHECK(rrf[0].score == doctest::Approx(1.0 / 61 + 1.0 / 62));
    CHECK(rrf[1].id == 3);  // 1/63 + 1/61
    CHECK(rrf[0].lexical_score == 9.0);
    CHECK(rrf[0].vector_score == doctest::Approx(0.8));
    CHECK(reciprocal_rank_fusion(lexical, vector, 2).size() == 2);

    auto weighted = weighted_fusion(lexical, vector, 10, 0.5);
    // Normalised: lexical 1 -> 1, 2 -> 0.5, 3 -> 0; vector 3 -> 1, 1 -> 0.875, 4 -> 0.
    CHECK(weighted[0].id == 1);
    CHECK(weighted[0].score == doctest::Approx(0.5 * 1.0 + 0.5 * 0.875));
    CHECK(weighted[1].id == 3);
    CHECK(weighted[1].score == doctest::Approx(0.5));
}
