#include "app/retrieval_bench_options.h"

#include <doctest/doctest.h>

#include <string>

using sluice::StatusCode;
using sluice::app::bench_index_settings;
using sluice::app::check_reusable;
using sluice::app::expand_runs;
using sluice::app::in_query_split;
using sluice::app::RetrievalBenchOptions;

namespace {

RetrievalBenchOptions http_options() {
    RetrievalBenchOptions options;
    options.dataset = "data";
    options.embedder = "http";
    options.embedder_endpoint = "http://127.0.0.1:8011";
    options.embedder_model = "universal-sentence-encoder-lite";
    options.dimension = 512;
    options.dimension_given = true;
    return options;
}

std::string message_of(const RetrievalBenchOptions& options) {
    auto status = sluice::app::validate(options);
    REQUIRE_FALSE(status.ok());
    CHECK(status.code() == StatusCode::kInvalidArgument);
    return std::string(status.message());
}

}  // namespace

TEST_CASE("retrieval bench: the defaults and a complete http embedder are valid") {
    CHECK(sluice::app::validate(RetrievalBenchOptions{}).ok());
    CHECK(sluice::app::validate(http_options()).ok());
    auto settings = bench_index_settings(http_options());
    CHECK(settings.embedder == "http");
    CHECK(settings.embedder_endpoint == "http://127.0.0.1:8011");
    CHECK(settings.embedder_model == "universal-sentence-encoder-lite");
    CHECK(settings.dimension == 512);
}

TEST_CASE("retrieval bench: an http embedder needs an endpoint URL, a model and a width") {
    auto options = http_options();
    options.embedder_endpoint = "";
    CHECK(message_of(options).find("--embedder-endpoint") != std::string::npos);
    options.embedder_endpoint = "127.0.0.1:8011";
    CHECK(message_of(options).find("found '127.0.0.1:8011'") != std::string::npos);

    options = http_options();
    options.embedder_model = "";
    CHECK(message_of(options).find("--embedder-model") != std::string::npos);

    options = http_options();
    options.dimension_given = false;
    CHECK(message_of(options).find("--dim") != std::string::npos);

    // Endpoint flags on another embedder would be silently ignored: refused instead.
    RetrievalBenchOptions lexical;
    lexical.embedder_endpoint = "http://127.0.0.1:8011";
    CHECK(message_of(lexical).find("not 'lexical-hash'") != std::string::npos);
    lexical = RetrievalBenchOptions{};
    lexical.embedder = "model";
    CHECK(message_of(lexical).find("--embedder 'model'") != std::string::npos);
}

TEST_CASE("retrieval bench: modes, fusions, weights, depths and query splits are checked") {
    RetrievalBenchOptions options;
    options.modes = {"lexical", "ann"};
    CHECK(message_of(options).find("--mode 'ann'") != std::string::npos);
    options.modes = {};
    CHECK(message_of(options).find("--mode") != std::string::npos);

    options = RetrievalBenchOptions{};
    options.fusions = {"rrf", "max"};
    CHECK(message_of(options).find("--fusion 'max'") != std::string::npos);

    options = RetrievalBenchOptions{};
    options.vector_weights = {0.5, 1.01};
    CHECK(message_of(options).find("--vector-weight") != std::string::npos);
    options.vector_weights = {-0.1};
    CHECK(message_of(options).find("--vector-weight") != std::string::npos);
    options.vector_weights = {0.0, 1.0};
    CHECK(sluice::app::validate(options).ok());

    options = RetrievalBenchOptions{};
    options.candidates = {100, 1001};
    CHECK(message_of(options).find("--candidates 1001") != std::string::npos);
    // Below the bench's k the rankers would go k deep anyway: the row would be the default's.
    options.candidates = {0, 50};
    CHECK(message_of(options).find("--candidates 50") != std::string::npos);
    options.candidates = {0, 100, 1000};
    CHECK(sluice::app::validate(options).ok());

    options = RetrievalBenchOptions{};
    options.query_split = "halves";
    CHECK(message_of(options).find("--query-split 'halves'") != std::string::npos);

    // Settings the index itself refuses come back with its message.
    options = RetrievalBenchOptions{};
    options.language = "klingon";
    CHECK_FALSE(sluice::app::validate(options).ok());
}

TEST_CASE("retrieval bench: query splits take integer ids by parity") {
    CHECK(in_query_split("anything", "all").value());
    CHECK(in_query_split("0", "even").value());
    CHECK(in_query_split("1324", "even").value());
    CHECK_FALSE(in_query_split("1324", "odd").value());
    CHECK(in_query_split("873", "odd").value());
    CHECK_FALSE(in_query_split("873", "even").value());
    CHECK(in_query_split("-3", "odd").value());
    for (const char* id : {"", "12a", "q7", "1.5", " 4"}) {
        auto taken = in_query_split(id, "even");
        REQUIRE_FALSE(taken.ok());
        CHECK(taken.status().code() == StatusCode::kInvalidArgument);
        CHECK(std::string(taken.status().message()).find("integer query ids") != std::string::npos);
    }
}

TEST_CASE("retrieval bench: one row per mode, hybrid per fusion, depth and weight") {
    RetrievalBenchOptions options;
    options.modes = {"lexical", "vector", "hybrid"};
    options.fusions = {"rrf", "weighted"};
    // A lexical-hash index's own fusion: weighted, 0.2.
    const sluice::retrieval::FusionChoice index_fusion{sluice::retrieval::FusionMethod::kWeighted,
                                                       0.2};
    auto runs = expand_runs(options, index_fusion);
    REQUIRE(runs.size() == 4);
    CHECK(runs[0].label() == "lexical");
    CHECK(runs[0].query_template().mode == sluice::retrieval::QueryMode::kLexical);
    CHECK(runs[1].label() == "vector");
    CHECK(runs[1].query_template().mode == sluice::retrieval::QueryMode::kAnn);
    CHECK(runs[2].label() == "hybrid rrf");
    CHECK(runs[2].query_template().fusion == sluice::retrieval::FusionMethod::kRrf);
    CHECK_FALSE(runs[2].query_template().vector_weight.has_value());
    // The weighted row without --vector-weight takes the index's weight.
    CHECK(runs[3].vector_weight == doctest::Approx(0.2));
    CHECK(runs[3].label() == "hybrid weighted w=0.20");
    auto weighted = runs[3].query_template();
    CHECK(weighted.mode == sluice::retrieval::QueryMode::kHybrid);
    CHECK(weighted.fusion == sluice::retrieval::FusionMethod::kWeighted);
    CHECK(weighted.k == 100);
    CHECK(weighted.candidates == 0);

    options.modes = {"hybrid"};
    options.vector_weights = {0.3, 0.7};
    options.candidates = {0, 200};
    runs = expand_runs(options, index_fusion);
    // rrf x 2 depths, then weighted x 2 depths x 2 weights
    REQUIRE(runs.size() == 6);
    CHECK(runs[0].label() == "hybrid rrf");
    CHECK(runs[1].label() == "hybrid rrf depth 200");
    CHECK(runs[1].query_template().candidates == 200);
    CHECK(runs[2].label() == "hybrid weighted w=0.30");
    CHECK(runs[3].label() == "hybrid weighted w=0.70");
    CHECK(runs[4].label() == "hybrid weighted w=0.30 depth 200");
    CHECK(runs[5].label() == "hybrid weighted w=0.70 depth 200");
    CHECK(runs[5].query_template().vector_weight == doctest::Approx(0.7));
    CHECK(runs[5].query_template().candidates == 200);

    // The default row: what a query naming no fusion gets, labelled with what that is.
    options = RetrievalBenchOptions{};
    options.modes = {"hybrid"};
    runs = expand_runs(options, index_fusion);
    REQUIRE(runs.size() == 1);
    CHECK(runs[0].label() == "hybrid weighted w=0.20 (index default)");
    CHECK_FALSE(runs[0].query_template().fusion.has_value());
    CHECK_FALSE(runs[0].query_template().vector_weight.has_value());
    runs = expand_runs(options, sluice::retrieval::FusionChoice{});
    CHECK(runs[0].label() == "hybrid rrf (index default)");
}

TEST_CASE("retrieval bench: a kept index is reused only with the same settings") {
    auto requested = bench_index_settings(http_options());
    CHECK(check_reusable(requested, requested).ok());

    auto stored = requested;
    stored.embedder_model = "another-model";
    auto status = check_reusable(stored, requested);
    REQUIRE_FALSE(status.ok());
    CHECK(status.code() == StatusCode::kFailedPrecondition);
    std::string message(status.message());
    CHECK(message.find("stored 'embedder.model=another-model'") != std::string::npos);
    CHECK(message.find("requested 'embedder.model=universal-sentence-encoder-lite'") !=
          std::string::npos);

    stored = requested;
    stored.dimension = 256;
    CHECK_FALSE(check_reusable(stored, requested).ok());
}
