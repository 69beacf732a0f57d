#include "app/vector_search_json.h"

#include <doctest/doctest.h>

using namespace sluice::app;
using nlohmann::json;
using sluice::StatusCode;
using sluice::retrieval::Metadata;
using sluice::retrieval::MetaValue;

TEST_CASE("rows become documents with key, text, acl, vector and metadata") {
    auto docs = documents_from_json(json::parse(R"([
        {"id": 7, "text": "body", "title": "T", "uri": "u", "year": 2020, "lang": "en",
         "draft": true, "vector": [1, 2], "acl": {"principals": ["ann"], "groups": ["eng"]}}
    ])"));
    REQUIRE(docs.ok());
    const auto& doc = docs->front();
    CHECK(doc.key == "7");
    CHECK(doc.text == "body");
    CHECK(doc.title == "T");
    CHECK(doc.vector == std::vector<float>{1, 2});
    CHECK(doc.acl.principals == std::vector<std::string>{"ann"});
    CHECK(doc.acl.groups == std::vector<std::string>{"eng"});
    CHECK(std::get<std::int64_t>(doc.metadata.at("year")) == 2020);
    CHECK(doc.metadata.at("draft") == MetaValue(true));
    CHECK(std::get<std::string>(doc.metadata.at("lang")) == "en");

    CHECK(documents_from_json(json::parse(R"([{"text": "no id"}])")).status().code() ==
          StatusCode::kInvalidArgument);
    CHECK_FALSE(documents_from_json(json::parse(R"([{"id": "a", "vector": ["x"]}])")).ok());
    CHECK_FALSE(documents_from_json(json::parse(R"({"id": "a"})")).ok());
}

TEST_CASE("integer metadata comes back as integers, floats as floats; filters meet both") {
    // 2^53 + 1, which a double cannot hold, and 2^64 - 1, which only a double can.
    auto docs = documents_from_json(json::parse(R"([
        {"id": "a", "year": 2020, "neg": -7, "ratio": 2.0, "rating": 2.5,
         "big": 9007199254740993, "huge": 18446744073709551615}
    ])"));
    REQUIRE(docs.ok());
    sluice::retrieval::Hit hit;
    hit.chunk.doc_key = "a";
    hit.chunk.metadata = docs->front().metadata;
    hit.score = 0.5;
    json answer = results_to_json({hit}, {"year", "neg", "ratio", "rating", "big", "huge"});
    CHECK(answer["result"]["data_array"][0].dump() ==
          "[2020,-7,2.0,2.5,9007199254740993,1.8446744073709552e+19,0.5]");

    const Metadata& stored = hit.chunk.metadata;
    auto matches = [&](const char* text) {
        CAPTURE(text);
        auto filter = filter_from_json(json::parse(text));
        REQUIRE_MESSAGE(filter.ok(), filter.status().to_string());
        return filter->matches(stored);
    };
    CHECK(matches(R"({"year >=": 2019})"));
    CHECK(matches(R"({"year >=": 2019.5, "year <": 2020.5})"));
    CHECK(matches(R"({"year": 2020.0})"));
    CHECK(matches(R"({"year": [2019, 2020]})"));
    CHECK(matches(R"({"ratio": 2})"));
    CHECK(matches(R"({"rating >": 2, "rating <": 3})"));
    CHECK_FALSE(matches(R"({"year >": 2020})"));
    CHECK_FALSE(matches(R"({"rating": 2})"));
    CHECK(matches(R"({"big": 9007199254740993})"));
    CHECK_FALSE(matches(R"({"big": 9007199254740992})"));  // equal only as doubles
}

TEST_CASE("a score column named in the request holds the score, and only once") {
    sluice::retrieval::Hit hit;
    hit.chunk.doc_key = "a";
    hit.score = 0.75;
    json named = results_to_json({hit}, {"score", "id"});
    CHECK(named["manifest"]["column_count"] == 2);
    CHECK(named["manifest"]["columns"] == json::array({{{"name", "score"}}, {{"name", "id"}}}));
    CHECK(named["result"]["data_array"][0] == json::array({0.75, "a"}));
    json added = results_to_json({hit}, {"id"});
    CHECK(added["manifest"]["columns"] == json::array({{{"name", "id"}}, {{"name", "score"}}}));
    CHECK(added["result"]["data_array"][0] == json::array({"a", 0.75}));
}

TEST_CASE("boolean metadata comes back as true and false; filters match booleans only") {
    auto docs = documents_from_json(json::parse(R"([
        {"id": "a", "published": true, "draft": false, "flag": 1, "old": 1.0}
    ])"));
    REQUIRE(docs.ok());
    const Metadata& stored = docs->front().metadata;
    CHECK(stored.at("published") == MetaValue(true));
    CHECK(stored.at("draft") == MetaValue(false));
    sluice::retrieval::Hit hit;
    hit.chunk.doc_key = "a";
    hit.chunk.metadata = stored;
    hit.score = 0.5;
    json answer = results_to_json({hit}, {"published", "draft", "flag", "old"});
    CHECK(answer["result"]["data_array"][0].dump() == "[true,false,1,1.0,0.5]");

    auto matches = [&](const char* text) {
        CAPTURE(text);
        auto filter = filter_from_json(json::parse(text));
        REQUIRE_MESSAGE(filter.ok(), filter.status().to_string());
        return filter->matches(stored);
    };
    CHECK(matches(R"({"published": true})"));
    CHECK_FALSE(matches(R"({"published": false})"));
    CHECK(matches(R"({"draft": false})"));
    CHECK(matches(R"({"published": [false, true]})"));
    CHECK_FALSE(matches(R"({"draft": [true]})"));
    CHECK(matches(R"({"published NOT": false})"));
    CHECK_FALSE(matches(R"({"published NOT": true})"));
    CHECK(matches(R"({"not": {"draft": true}})"));
    // A boolean is not a number: true is not 1, nor the 1.0 that earlier builds stored for it.
    CHECK_FALSE(matches(R"({"flag": true})"));
    CHECK_FALSE(matches(R"({"old": true})"));
    CHECK(matches(R"({"old": 1})"));
    CHECK_FALSE(matches(R"({"published": 1})"));
    CHECK_FALSE(matches(R"({"published": "true"})"));
    // A number or text bound never admits a boolean (kinds differ), as for text and numbers.
    CHECK_FALSE(matches(R"({"published >=": 0})"));
    CHECK_FALSE(matches(R"({"published PREFIX": "t"})"));
    // Booleans have no order: a range with a boolean bound is refused, naming the filter.
    for (const char* text : {R"({"published >": false})", R"({"published <=": true})",
                             R"({"or": [{"published >=": true}]})"}) {
        CAPTURE(text);
        auto refused = filter_from_json(json::parse(text));
        REQUIRE_FALSE(refused.ok());
        CHECK(refused.status().code() == StatusCode::kInvalidArgument);
        CHECK(refused.status().message().find("published") != std::string::npos);
        CHECK(refused.status().message().find("boolean has no order") != std::string::npos);
    }
    CHECK(filter_from_json(json::parse(R"({"published PREFIX": true})")).status().code() ==
          StatusCode::kInvalidArgument);
}

TEST_CASE("filters in the Databricks shape and nested and/or/not") {
    Metadata doc = {{"year", 2021.0}, {"lang", std::string("en")}, {"path", std::string("/a")}};
    auto check = [&](const char* text, bool expected) {
        CAPTURE(text);
        auto filter = filter_from_json(json::parse(text));
        REQUIRE_MESSAGE(filter.ok(), filter.status().to_string());
        CHECK(filter->matches(doc) == expected);
    };
    check(R"({"lang": "en"})", true);
    check(R"({"lang": ["de", "en"]})", true);
    check(R"({"lang NOT": "en"})", false);
    check(R"({"year >=": 2021, "year <": 2022})", true);
    check(R"({"year >": 2021})", false);
    check(R"({"path PREFIX": "/a"})", true);
    check(R"({"or": [{"lang": "de"}, {"year <=": 2021}]})", true);
    check(R"({"not": {"lang": "en"}})", false);
    check(R"({})", true);
    CHECK(filter_from_json(json::parse(R"({"lang LIKE": "e"})")).status().code() ==
          StatusCode::kInvalidArgument);
    CHECK_FALSE(filter_from_json(json::parse(R"({"and": {}})")).ok());
    // NOT with a list: none of them.
    check(R"({"lang NOT": ["de", "en"]})", false);
    check(R"({"lang NOT": ["de", "fr"]})", true);
    // A field with a space, as an extra space before the operator makes, names no field a
    // filter can match: refused, not matched against nothing.
    for (const char* spaced :
         {R"({"year  >": 2020})", R"({" year": 2021})", R"({"lang ": "en"})"}) {
        auto refused = filter_from_json(json::parse(spaced));
        CAPTURE(spaced);
        CHECK(refused.status().code() == StatusCode::kInvalidArgument);
        CHECK(refused.status().message().find("one space") != std::string::npos);
    }
}

TEST_CASE("query requests and index settings") {
    auto query = query_from_json(json::parse(
        R"({"query_text": "q", "num_results": 3, "query_type": "ANN",
            "filters_json": "{\"lang\": \"en\"}"})"));
    REQUIRE(query.ok());
    CHECK(query->k == 3);
    CHECK(query->mode == sluice::retrieval::QueryMode::kAnn);
    CHECK_FALSE(query->filter.matches_all());
    CHECK_FALSE(query_from_json(json::parse(R"({"query_type": "FUZZY"})")).ok());
    CHECK_FALSE(query_from_json(json::parse(R"({"filters_json": "{"})")).ok());
    // num_results is a positive integer: -1 wrapped to 2^64 - 1, 2.5 was cut to 2.
    for (const char* k : {"-1", "0", "2.5", "1e300", "\"5\"", "18446744073709551615"}) {
        CAPTURE(k);
        auto refused = query_from_json(json::parse(std::string(R"({"num_results": )") + k + "}"));
        REQUIRE_FALSE(refused.ok());
        CHECK(refused.status().message().find("num_results") != std::string::npos);
    }
    CHECK(query_from_json(json::parse(R"({"num_results": 7})"))->k == 7);
    CHECK_FALSE(
        query_from_json(json::parse(R"({"filters": {"a": 1}, "filters_json": "{\"a\": 2}"})"))
            .ok());
    CHECK_FALSE(query_from_json(json::parse(R"({"query_vector": [1, 1e39]})")).ok());

    auto settings = settings_from_json(json::parse(
        R"({"name": "kb", "index_factory": "HNSW32", "metric": "l2",
            "direct_access_index_spec": {"embedding_vector_columns":
                [{"name": "vector", "embedding_dimension": 8}]}})"));
    REQUIRE(settings.ok());
    CHECK(settings->dimension == 8);
    CHECK(settings->embedder == "none");
    CHECK(settings->metric == sluice::retrieval::Metric::kL2);
    CHECK(settings_from_json(json::parse(R"({"name": "bad name"})")).status().code() ==
          StatusCode::kInvalidArgument);

    // The model's index takes the model's width unless one is given; other embedders are told.
    auto by_model = settings_from_json(json::parse(R"({"name": "kb", "embedder": "model"})"));
    REQUIRE(by_model.ok());
    CHECK(by_model->dimension == sluice::retrieval::kEmbedderDimension);
    auto given = settings_from_json(
        json::parse(R"({"name": "kb", "embedder": "model", "embedding_dimension": 64})"));
    REQUIRE(given.ok());
    CHECK(given->dimension == 64);
    // Fusion for queries that name none: absent is the embedder's default, kept unset.
    auto fused = settings_from_json(
        json::parse(R"({"name": "kb", "fusion": "weighted", "vector_weight": 0.3})"));
    REQUIRE_MESSAGE(fused.ok(), fused.status().to_string());
    CHECK(fused->fusion == sluice::retrieval::FusionMethod::kWeighted);
    CHECK(fused->vector_weight == doctest::Approx(0.3));
    CHECK_FALSE(
        settings_from_json(json::parse(R"({"name": "kb", "fusion": "rrf", "vector_weight": 0.3})"))
            .ok());
    CHECK_FALSE(settings_from_json(json::parse(R"({"name": "kb", "vector_weight": 2})")).ok());
    CHECK_FALSE(settings_from_json(json::parse(R"({"name": "kb", "fusion": "max"})")).ok());
    auto lexical = settings_from_json(json::parse(R"({"name": "kb"})"));
    REQUIRE(lexical.ok());
    CHECK_FALSE(lexical->fusion.has_value());
    REQUIRE(lexical.ok());
    CHECK(lexical->dimension == 256);
    CHECK(settings_from_json(json::parse(R"({"name": "kb", "embedding_dimension": 0})"))
              .status()
              .code() == StatusCode::kInvalidArgument);
    CHECK_FALSE(settings_from_json(json::parse(R"({"language": "english"})")).ok());
}

namespace {

// The message of a refused request, which must name `member` and list the accepted ones.
std::string refusal(const sluice::Status& status) {
    CHECK(status.code() == StatusCode::kInvalidArgument);
    return status.message();
}

bool has(const std::string& message, const std::string& part) {
    return message.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("index creation refuses unknown members, naming them and listing the accepted ones") {
    auto typo = settings_from_json(json::parse(R"({"name": "kb", "embedding_dimensions": 64})"));
    REQUIRE_FALSE(typo.ok());
    const std::string message = refusal(typo.status());
    CHECK_MESSAGE(has(message, "unrecognized request parameters: 'embedding_dimensions'"), message);
    CHECK_MESSAGE(has(message, "accepted: "), message);
    CHECK_MESSAGE(has(message, "embedding_dimension,"), message);
    CHECK_MESSAGE(has(message, "direct_access_index_spec"), message);

    // Databricks' direct access shape is taken whole; endpoint_name and schema_json change nothing.
    auto databricks = settings_from_json(json::parse(R"({
        "name": "kb", "endpoint_name": "vs", "primary_key": "id", "index_type": "DIRECT_ACCESS",
        "comment": "notes",
        "direct_access_index_spec": {
            "embedding_vector_columns": [{"name": "vector", "embedding_dimension": 8}],
            "schema_json": "{\"id\": \"string\", \"vector\": \"array<float>\"}"}})"));
    REQUIRE_MESSAGE(databricks.ok(), databricks.status().to_string());
    CHECK(databricks->dimension == 8);
    CHECK(databricks->embedder == "none");

    // What the index cannot honour is refused, not dropped.
    const std::vector<std::pair<const char*, const char*>> refused = {
        {R"({"name": "kb", "primary_key": "doc_id"})", "primary_key \"doc_id\""},
        {R"({"name": "kb", "index_type": "DELTA_SYNC"})", "index_type \"DELTA_SYNC\""},
        {R"({"name": "kb", "direct_access_index_spec": {"embedding_source_columns": []}})",
         "direct_access_index_spec: unrecognized request parameters: "
         "'embedding_source_columns'; accepted: embedding_vector_columns"},
        {R"({"name": "kb", "direct_access_index_spec": {"embedding_vector_columns":
            [{"name": "v", "dimension": 8}]}})",
         "embedding_vector_columns[0]: unrecognized request parameters: 'dimension'"},
        {R"({"name": "kb", "direct_access_index_spec": {"embedding_vector_columns":
            [{"name": "a"}, {"name": "b"}]}})",
         "one column"},
        {R"({"name": "kb", "direct_access_index_spec": []})", "direct_access_index_spec"},
        {R"({"name": "kb", "comment": 5})", "comment: expected a string"},
    };
    for (const auto& [body, part] : refused) {
        CAPTURE(body);
        auto settings = settings_from_json(json::parse(body));
        REQUIRE_FALSE(settings.ok());
        CHECK_MESSAGE(has(refusal(settings.status()), part), settings.status().message());
    }
}

TEST_CASE("queries refuse unknown members and weights without weighted fusion") {
    for (const char* member : {"num_result", "filter_json", "query", "k", "score_threshold"}) {
        CAPTURE(member);
        json body = {{"query_text", "q"}, {member, 5}};
        auto query = query_from_json(body);
        REQUIRE_FALSE(query.ok());
        const std::string message = refusal(query.status());
        CHECK_MESSAGE(has(message, std::string("'") + member + "'"), message);
        CHECK_MESSAGE(has(message,
                          "accepted: columns, filters, filters_json, fusion, "
                          "num_results, query_text, query_type, query_vector, "
                          "vector_weight"),
                      message);
    }
    // What Databricks' clients send: debug_level, and null for no filters.
    auto databricks = query_from_json(json::parse(
        R"({"query_text": "q", "num_results": 3, "columns": ["id"], "filters_json": null,
            "debug_level": 1, "query_type": "ANN"})"));
    REQUIRE_MESSAGE(databricks.ok(), databricks.status().to_string());
    CHECK(databricks->filter.matches_all());
    CHECK(databricks->k == 3);
    // Without fusion members the index's own fusion applies; a weight alone asks for weighted
    // fusion; with reciprocal rank fusion a weight would be dropped, so it is refused.
    auto unnamed = query_from_json(json::parse(R"({"query_text": "q"})"));
    REQUIRE(unnamed.ok());
    CHECK_FALSE(unnamed->fusion.has_value());
    CHECK_FALSE(unnamed->vector_weight.has_value());
    auto weight_only = query_from_json(json::parse(R"({"query_text": "q", "vector_weight": 0.7})"));
    REQUIRE(weight_only.ok());
    CHECK_FALSE(weight_only->fusion.has_value());
    CHECK(weight_only->vector_weight == doctest::Approx(0.7));
    auto rrf_weight = query_from_json(json::parse(R"({"fusion": "rrf", "vector_weight": 0.7})"));
    REQUIRE_FALSE(rrf_weight.ok());
    CHECK(has(refusal(rrf_weight.status()), "vector_weight applies to weighted fusion only"));
    auto weighted = query_from_json(json::parse(R"({"fusion": "weighted", "vector_weight": 0.7})"));
    REQUIRE(weighted.ok());
    CHECK(weighted->fusion == sluice::retrieval::FusionMethod::kWeighted);
    CHECK(weighted->vector_weight == doctest::Approx(0.7));
    for (const char* bad : {R"({"vector_weight": 1.5})", R"({"vector_weight": -0.1})",
                            R"({"vector_weight": "0.5"})", R"({"fusion": "max"})"}) {
        CAPTURE(bad);
        CHECK(query_from_json(json::parse(bad)).status().code() ==
              sluice::StatusCode::kInvalidArgument);
    }

    CHECK(*columns_from_json(json::parse(R"({"columns": null})")) == default_columns());
    CHECK(*columns_from_json(json::parse(R"({"columns": ["id", "year"]})")) ==
          std::vector<std::string>{"id", "year"});
    CHECK_FALSE(columns_from_json(json::parse(R"({"columns": ["id", 3]})")).ok());
}

TEST_CASE("a delete names its rows in primary_keys, which is required") {
    CHECK(*primary_keys_from_json(json::parse(R"({"primary_keys": ["a", 7]})")) ==
          std::vector<std::string>{"a", "7"});
    // Nothing to delete is a request that does nothing, said so by deleted_row_count 0.
    CHECK(primary_keys_from_json(json::parse(R"({"primary_keys": []})"))->empty());
    const std::vector<std::pair<const char*, const char*>> refused = {
        {R"({})", "primary_keys is required"},
        {R"({"primary_keys": null})", "primary_keys is required"},
        {R"({"primary_key": ["a"]})",
         "unrecognized request parameters: 'primary_key'; accepted: primary_keys"},
        {R"({"primary_keys": "a"})", "expected an array of strings or integers, found string"},
        {R"({"primary_keys": ["a", 1.5]})", "found 1.5"},
    };
    for (const auto& [body, part] : refused) {
        CAPTURE(body);
        auto keys = primary_keys_from_json(json::parse(body));
        REQUIRE_FALSE(keys.ok());
        CHECK_MESSAGE(has(refusal(keys.status()), part), keys.status().message());
    }
}

TEST_CASE("an upsert takes its rows from inputs_json or inputs, and refuses other members") {
    auto text = upsert_rows_from_json(json{{"inputs_json", R"([{"id": "a"}, {"id": 7}])"}});
    REQUIRE_MESSAGE(text.ok(), text.status().to_string());
    CHECK(text->size() == 2);
    auto rows = upsert_rows_from_json(json::parse(R"({"inputs": [{"id": "a"}]})"));
    REQUIRE(rows.ok());
    CHECK(rows->front().key == "a");
    const std::vector<std::pair<const char*, const char*>> refused = {
        {R"({"input": [{"id": "a"}]})",
         "unrecognized request parameters: 'input'; accepted: inputs, inputs_json"},
        {R"({"inputs": [{"id": "a"}], "overwrite": true})", "'overwrite'"},
        {R"({})",
         "inputs_json (the rows as a JSON string) or inputs (an array of rows) is required"},
        {R"({"inputs": [], "inputs_json": "[]"})", "not both"},
        {R"({"inputs_json": [{"id": "a"}]})", "inputs_json: expected a string"},
        {R"({"inputs_json": "[{"})", "inputs_json is not valid JSON"},
    };
    for (const auto& [body, part] : refused) {
        CAPTURE(body);
        auto documents = upsert_rows_from_json(json::parse(body));
        REQUIRE_FALSE(documents.ok());
        CHECK_MESSAGE(has(refusal(documents.status()), part), documents.status().message());
    }
}

TEST_CASE("a filter nested past the limit is a 400, as an object or in filters_json") {
    auto nested = [](std::size_t depth) {
        std::string text;
        for (std::size_t i = 0; i < depth; ++i) {
            text += R"({"not": )";
        }
        text += R"({"lang": "en"})";
        text += std::string(depth, '}');
        return text;
    };
    // At the limit the filter is read whole: an even number of nots is the leaf itself.
    auto deepest = query_from_json(
        json::parse(R"({"query_text": "x", "filters": )" + nested(kMaxFilterDepth) + "}"));
    REQUIRE_MESSAGE(deepest.ok(), deepest.status().to_string());
    CHECK(deepest->filter.matches(Metadata{{"lang", std::string("en")}}));
    CHECK_FALSE(deepest->filter.matches(Metadata{{"lang", std::string("de")}}));
    // 20,000 levels overflowed the server's stack (a copy of the member, then the walk).
    for (std::size_t depth : {kMaxFilterDepth + 1, std::size_t{200000}}) {
        CAPTURE(depth);
        const std::string filter = nested(depth);
        for (const json& body : {json::parse(R"({"query_text": "x", "filters": )" + filter + "}"),
                                 json{{"query_text", "x"}, {"filters_json", filter}}}) {
            auto refused = query_from_json(body);
            REQUIRE_FALSE(refused.ok());
            CHECK(refused.status().code() == StatusCode::kInvalidArgument);
            CHECK(refused.status().message() == "filters: and/or/not nested more than 100 deep");
        }
    }
    std::string ors = R"({"lang": "en"})";
    for (std::size_t i = 0; i <= kMaxFilterDepth; ++i) {
        ors = R"({"or": [{"lang": "de"}, )" + ors + "]}";
    }
    CHECK(filter_from_json(json::parse(ors)).status().code() == StatusCode::kInvalidArgument);
    CHECK(
        query_from_json(json{{"query_text", "x"}, {"filters_json", "null"}})->filter.matches_all());
}

TEST_CASE("a vector component beyond a float's range is refused, in a row and in a query") {
    // 1e39 became infinity as a float, which cosine made NaN: the row ranked last and scored null.
    auto row = documents_from_json(json::parse(R"([{"id": "a", "vector": [0.5, 1e39, 0]}])"));
    REQUIRE_FALSE(row.ok());
    CHECK(row.status().code() == StatusCode::kInvalidArgument);
    CHECK(row.status().message() ==
          "row 0: vector[1] is 1e+39, beyond a float's range (about 3.4e38)");
    auto query = query_from_json(json::parse(R"({"query_vector": [-1e39, 0]})"));
    REQUIRE_FALSE(query.ok());
    CHECK(query.status().message() ==
          "query_vector[0] is -1e+39, beyond a float's range (about 3.4e38)");
    CHECK(query_from_json(json::parse(R"({"query_vector": [1, "x"]})")).status().code() ==
          StatusCode::kInvalidArgument);
    auto largest = documents_from_json(json::parse(R"([{"id": "a", "vector": [3.4e38, -1e-50]}])"));
    REQUIRE(largest.ok());
    CHECK(largest->front().vector == std::vector<float>{3.4e38f, -0.0f});
}

TEST_CASE("integer ids and delete keys are read as written") {
    // Read as a long long, 2^64 - 1 became "-1": the key of another row.
    auto docs = documents_from_json(json::parse(R"([
        {"id": 18446744073709551615, "text": "largest"}, {"id": -1, "text": "negative"},
        {"id": 9223372036854775807, "text": "int64"}
    ])"));
    REQUIRE(docs.ok());
    CHECK((*docs)[0].key == "18446744073709551615");
    CHECK((*docs)[1].key == "-1");
    CHECK((*docs)[2].key == "9223372036854775807");
    auto keys =
        primary_keys_from_json(json::parse(R"({"primary_keys": [18446744073709551615, -1, 7]})"));
    REQUIRE(keys.ok());
    CHECK(*keys == std::vector<std::string>{"18446744073709551615", "-1", "7"});
}

TEST_CASE("an index's sizes are whole numbers: a fraction, a negative or a float is refused") {
    // Read as sizes, 1.5 was cut to 1 (an index of width 1 was made), -1 wrapped to 2^64 - 1
    // and 1e300 became 0.
    const std::pair<const char*, const char*> cases[] = {
        {R"({"name": "kb", "embedder": "none", "embedding_dimension": 1.5})",
         "embedding_dimension: expected a non-negative integer, found 1.5"},
        {R"({"name": "kb", "embedding_dimension": -1})",
         "embedding_dimension: expected a non-negative integer, found -1"},
        {R"({"name": "kb", "chunk_max_tokens": 1e300})",
         "chunk_max_tokens: expected a non-negative integer, found 1e+300"},
        {R"({"name": "kb", "chunk_overlap_tokens": 8.0})",
         "chunk_overlap_tokens: expected a non-negative integer, found 8.0"},
        {R"({"name": "kb", "direct_access_index_spec": {"embedding_vector_columns":
             [{"name": "vector", "embedding_dimension": 2.5}]}})",
         "direct_access_index_spec.embedding_vector_columns[0].embedding_dimension: expected a "
         "non-negative integer, found 2.5"},
    };
    for (const auto& [body, message] : cases) {
        CAPTURE(body);
        auto refused = settings_from_json(json::parse(body));
        REQUIRE_FALSE(refused.ok());
        CHECK(refused.status().code() == StatusCode::kInvalidArgument);
        CHECK(refused.status().message() == message);
    }
    auto given = settings_from_json(json{{"name", "kb"},
                                         {"embedding_dimension", 64},
                                         {"chunk_max_tokens", 128},
                                         {"chunk_overlap_tokens", 0}});
    REQUIRE_MESSAGE(given.ok(), given.status().to_string());
    CHECK(given->dimension == 64);
    CHECK(given->chunk.max_tokens == 128);
    CHECK(given->chunk.overlap_tokens == 0);
}

TEST_CASE("a filter on id is a filter on the row's key") {
    // No metadata may be named id, so {"id": ...} matched nothing, silently.
    const Metadata row = {{"doc_key", std::string("7")}, {"lang", std::string("en")}};
    auto matches = [&](const char* text) {
        CAPTURE(text);
        auto filter = filter_from_json(json::parse(text));
        REQUIRE_MESSAGE(filter.ok(), filter.status().to_string());
        return filter->matches(row);
    };
    CHECK(matches(R"({"id": "7"})"));
    CHECK(matches(R"({"id": 7})"));
    CHECK(matches(R"({"id": ["a", 7]})"));
    CHECK(matches(R"({"id NOT": 8, "lang": "en"})"));
    CHECK(matches(R"({"id PREFIX": "7"})"));
    CHECK(matches(R"({"id >=": "7"})"));
    CHECK_FALSE(matches(R"({"id": "8"})"));
    CHECK_FALSE(matches(R"({"id NOT": "7"})"));
    CHECK_FALSE(matches(R"({"not": {"id": [7]}})"));
    // Keys compare as text: a number bound would admit "9" above 10.
    for (const char* text : {R"({"id >=": 10})", R"({"id": 7.5})", R"({"id": [true]})"}) {
        CAPTURE(text);
        auto refused = filter_from_json(json::parse(text));
        REQUIRE_FALSE(refused.ok());
        CHECK(refused.status().code() == StatusCode::kInvalidArgument);
        CHECK(refused.status().message().find("a row's id is text") != std::string::npos);
    }
}
