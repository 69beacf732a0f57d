// How hybrid queries fuse when they name no fusion: the index's setting, else its embedder's
// default (hybrid_fusion()), kept across a restart; what a query may override.
#include <doctest/doctest.h>

#include "retrieval/index.h"
#include "temp_dir.h"

using namespace sluice::retrieval;
using sluice::StatusCode;
using sluice::retrieval::testing::TempDir;

namespace {

IndexSettings settings_for(const std::string& embedder) {
    IndexSettings settings;
    settings.name = "fusion";
    settings.embedder = embedder;
    settings.dimension = 32;
    return settings;
}

const Reader kUser{"user", {"everyone"}};

Document doc(const std::string& key, const std::string& text) {
    Document d;
    d.key = key;
    d.uri = "mem://" + key;
    d.title = key;
    d.text = text;
    d.acl = Acl{{}, {"everyone"}};
    return d;
}

// Reciprocal rank fusion scores at most 2 / 61 (first in both rankings); weighted fusion
// scores the best document near 1. The top score tells which fusion ran.
double top_score(const Index& index, Query query) {
    query.text = "alpha beta";
    query.k = 3;
    query.mode = QueryMode::kHybrid;
    auto hits = index.query(query, kUser);
    REQUIRE_MESSAGE(hits.ok(), hits.status().to_string());
    REQUIRE_FALSE(hits->empty());
    return hits->front().score;
}

}  // namespace

TEST_CASE("the default fusion follows the embedder, and chosen settings win") {
    FusionChoice lexical_hash = hybrid_fusion(settings_for("lexical-hash"));
    CHECK(lexical_hash.method == FusionMethod::kWeighted);
    CHECK(lexical_hash.vector_weight == doctest::Approx(0.2));
    for (const char* semantic : {"http", "model", "none"}) {
        FusionChoice choice = hybrid_fusion(settings_for(semantic));
        CHECK(choice.method == FusionMethod::kRrf);
        CHECK(choice.vector_weight == doctest::Approx(kDefaultVectorWeight));
    }
    IndexSettings chosen = settings_for("lexical-hash");
    chosen.fusion = FusionMethod::kRrf;
    CHECK(hybrid_fusion(chosen).method == FusionMethod::kRrf);
    chosen = settings_for("http");
    chosen.fusion = FusionMethod::kWeighted;
    chosen.vector_weight = 0.35;
    CHECK(hybrid_fusion(chosen).method == FusionMethod::kWeighted);
    CHECK(hybrid_fusion(chosen).vector_weight == doctest::Approx(0.35));
}

TEST_CASE("fusion settings are validated and survive encoding; older settings have none") {
    IndexSettings weighted = settings_for("lexical-hash");
    weighted.fusion = FusionMethod::kWeighted;
    weighted.vector_weight = 0.15;
    CHECK(validate(weighted).ok());
    auto decoded = decode_settings(encode_settings(weighted));
    REQUIRE(decoded.ok());
    CHECK(decoded->fusion == FusionMethod::kWeighted);
    CHECK(decoded->vector_weight == 0.15);  // exactly: written with 17 digits

    IndexSettings plain = settings_for("lexical-hash");
    const std::string text = encode_settings(plain);
    CHECK(text.find("\nfusion=") == std::string::npos);
    CHECK(text.find("\nvector_weight=") == std::string::npos);
    auto old = decode_settings(text);
    REQUIRE(old.ok());
    CHECK_FALSE(old->fusion.has_value());
    CHECK_FALSE(old->vector_weight.has_value());

    IndexSettings weight_alone = settings_for("none");
    weight_alone.vector_weight = 0.3;  // asks for weighted fusion, as in a query
    CHECK(validate(weight_alone).ok());
    CHECK(hybrid_fusion(weight_alone).method == FusionMethod::kWeighted);
    CHECK(hybrid_fusion(weight_alone).vector_weight == doctest::Approx(0.3));
    IndexSettings rrf_with_weight = settings_for("none");
    rrf_with_weight.fusion = FusionMethod::kRrf;
    rrf_with_weight.vector_weight = 0.3;  // rank fusion has no weights
    CHECK(validate(rrf_with_weight).code() == StatusCode::kInvalidArgument);
    IndexSettings out_of_range = settings_for("lexical-hash");
    out_of_range.vector_weight = 1.5;
    CHECK(validate(out_of_range).code() == StatusCode::kInvalidArgument);
    CHECK(decode_settings("fusion=max\n").status().code() == StatusCode::kDataLoss);
}

TEST_CASE("a hybrid query that names no fusion uses the index's, across a restart") {
    TempDir dir("fusion");
    const auto path = dir.path() / "fusion";
    {
        auto index = Index::create(path, settings_for("lexical-hash"), IndexDeps{});
        REQUIRE_MESSAGE(index.ok(), index.status().to_string());
        REQUIRE((*index)
                    ->upsert({doc("a", "alpha beta gamma"), doc("b", "alpha delta"),
                              doc("c", "epsilon beta")})
                    .ok());
        // The lexical-hash index fuses by weight...
        CHECK(top_score(**index, Query{}) > 0.5);
        // ...unless the query asks for rank fusion, or a weight alone (weighted, that weight).
        Query rrf;
        rrf.fusion = FusionMethod::kRrf;
        CHECK(top_score(**index, rrf) <= 2.0 / 61.0 + 1e-12);
        Query all_vector;
        all_vector.vector_weight = 1.0;
        Query all_lexical;
        all_lexical.vector_weight = 0.0;
        CHECK(top_score(**index, all_vector) == doctest::Approx(1.0));
        CHECK(top_score(**index, all_lexical) == doctest::Approx(1.0));

        Query bad;
        bad.text = "alpha";
        bad.vector_weight = 1.5;
        CHECK(index.value()->query(bad, kUser).status().code() == StatusCode::kInvalidArgument);
        bad.vector_weight = 0.5;
        bad.fusion = FusionMethod::kRrf;
        CHECK(index.value()->query(bad, kUser).status().code() == StatusCode::kInvalidArgument);
    }
    auto reopened = Index::open(path, IndexDeps{});
    REQUIRE_MESSAGE(reopened.ok(), reopened.status().to_string());
    CHECK(top_score(**reopened, Query{}) > 0.5);
}

TEST_CASE("an index created with rank fusion keeps it") {
    TempDir dir("fusion-rrf");
    IndexSettings settings = settings_for("lexical-hash");
    settings.fusion = FusionMethod::kRrf;
    const auto path = dir.path() / "fusion";
    {
        auto index = Index::create(path, settings, IndexDeps{});
        REQUIRE_MESSAGE(index.ok(), index.status().to_string());
        REQUIRE((*index)->upsert({doc("a", "alpha beta gamma"), doc("b", "alpha delta")}).ok());
        CHECK(top_score(**index, Query{}) <= 2.0 / 61.0 + 1e-12);
    }
    auto reopened = Index::open(path, IndexDeps{});
    REQUIRE(reopened.ok());
    CHECK(reopened.value()->settings().fusion == FusionMethod::kRrf);
    CHECK(top_score(**reopened, Query{}) <= 2.0 / 61.0 + 1e-12);
}
