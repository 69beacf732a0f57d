#include "app/http_embedder.h"

#include <doctest/doctest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>

#include "fake_embeddings_server.h"

using sluice::StatusCode;
using sluice::app::HttpEmbedder;
using sluice::testing::FakeEmbeddingsServer;

namespace {

// data[] for the inputs, each vector (i + 1, 2 (i + 1), 0 ...) of `dimension`, listed in reverse
// order so that only "index" says which input each belongs to.
nlohmann::json reversed_answer(std::size_t inputs, std::size_t dimension) {
    nlohmann::json data = nlohmann::json::array();
    for (std::size_t i = inputs; i-- > 0;) {
        std::vector<float> embedding(dimension, 0.0f);
        embedding[0] = static_cast<float>(i + 1);
        embedding[1] = static_cast<float>(2 * (i + 1));
        data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", embedding}});
    }
    return {{"object", "list"}, {"model", "m"}, {"data", data}};
}

void answer_json(httplib::Response& res, const nlohmann::json& body) {
    res.set_content(body.dump(), "application/json");
}

}  // namespace

TEST_CASE("http embedder: sends model and inputs, places vectors by index, normalises them") {
    FakeEmbeddingsServer server([](const nlohmann::json& request, httplib::Response& res) {
        answer_json(res, reversed_answer(request["input"].size(), 4));
    });
    HttpEmbedder embedder(server.endpoint(), "my-model", 4);
    // The trailing slash of the endpoint is dropped, so the id names one server once.
    CHECK(embedder.id() ==
          "http:" + server.endpoint().substr(0, server.endpoint().size() - 1) + "|my-model:4");
    auto vectors = embedder.embed({"first", "second", "third"});
    REQUIRE(vectors.ok());
    auto request = server.last_request();
    CHECK(request["model"] == "my-model");
    CHECK(request["input"] == nlohmann::json::array({"first", "second", "third"}));
    REQUIRE(vectors->size() == 3);
    const double inv_sqrt5 = 1.0 / std::sqrt(5.0);
    for (const auto& vector : *vectors) {
        REQUIRE(vector.size() == 4);
        // (i + 1) * (1, 2, 0, 0) normalised is the same direction for every i.
        CHECK(vector[0] == doctest::Approx(inv_sqrt5));
        CHECK(vector[1] == doctest::Approx(2 * inv_sqrt5));
        CHECK(vector[2] == 0.0f);
    }
}

TEST_CASE("http embedder: an answer without index is read in order") {
    FakeEmbeddingsServer server([](const nlohmann::json&, httplib::Response& res) {
        answer_json(res, {{"data", {{{"embedding", {3.0, 4.0}}}, {{"embedding", {0.0, 2.0}}}}}});
    });
    HttpEmbedder embedder(server.endpoint(), "m", 2);
    auto vectors = embedder.embed({"a", "b"});
    REQUIRE(vectors.ok());
    CHECK((*vectors)[0][0] == doctest::Approx(0.6));
    CHECK((*vectors)[0][1] == doctest::Approx(0.8));
    CHECK((*vectors)[1][1] == doctest::Approx(1.0));
}

TEST_CASE("http embedder: a server error or no server is kUnavailable naming the endpoint") {
    FakeEmbeddingsServer server([](const nlohmann::json&, httplib::Response& res) {
        res.status = 404;
        res.set_content(R"({"error": {"message": "model 'm' is not served here"}})",
                        "application/json");
    });
    auto refused = HttpEmbedder(server.endpoint(), "m", 2).embed({"a"});
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.status().code() == StatusCode::kUnavailable);
    std::string message(refused.status().message());
    CHECK(message.find("answered 404") != std::string::npos);
    CHECK(message.find("not served here") != std::string::npos);

    // Port 9 on loopback (discard) has no listener here.
    auto unreachable = HttpEmbedder("http://127.0.0.1:9", "m", 2).embed({"a"});
    REQUIRE_FALSE(unreachable.ok());
    CHECK(unreachable.status().code() == StatusCode::kUnavailable);
    CHECK(std::string(unreachable.status().message()).find("cannot be reached") !=
          std::string::npos);
}

TEST_CASE("http embedder: malformed answers are kDataLoss, never a throw") {
    struct Case {
        const char* name;
        std::string body;
        const char* message;
    };
    const std::vector<Case> cases = {
        {"not JSON", "<html>", "expected data[] with 2 embeddings"},
        {"too few", R"({"data": [{"index": 0, "embedding": [1, 0]}]})",
         "expected data[] with 2 embeddings"},
        {"index not an integer",
         R"({"data": [{"index": "0", "embedding": [1, 0]}, {"index": 1, "embedding": [1, 0]}]})",
         "data[0].index is not an integer"},
        {"index out of range",
         R"({"data": [{"index": 0, "embedding": [1, 0]}, {"index": 2, "embedding": [1, 0]}]})",
         "malformed data[1]"},
        {"negative index",
         R"({"data": [{"index": -1, "embedding": [1, 0]}, {"index": 1, "embedding": [1, 0]}]})",
         "malformed data[0]"},
        {"same index twice",
         R"({"data": [{"index": 1, "embedding": [1, 0]}, {"index": 1, "embedding": [1, 0]}]})",
         "two embeddings for input 1"},
        {"item not an object", R"({"data": [[1, 0], [1, 0]]})", "malformed data[0]"},
        {"no embedding", R"({"data": [{"index": 0}, {"index": 1, "embedding": [1, 0]}]})",
         "malformed data[0]"},
        {"text in the vector",
         R"({"data": [{"index": 0, "embedding": [1, "x"]}, {"index": 1, "embedding": [1, 0]}]})",
         "non-numeric embedding"},
        {"beyond a float",
         R"({"data": [{"index": 0, "embedding": [1, 1e39]}, {"index": 1, "embedding": [1, 0]}]})",
         "data[0] holds 1e+39, beyond a float's range"},
        {"wrong width",
         R"({"data": [{"index": 0, "embedding": [1, 0, 0]}, {"index": 1, "embedding": [1, 0]}]})",
         "returned 3 dimensions, expected 2"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.name);
        FakeEmbeddingsServer server([&](const nlohmann::json&, httplib::Response& res) {
            res.set_content(c.body, "application/json");
        });
        auto vectors = HttpEmbedder(server.endpoint(), "m", 2).embed({"a", "b"});
        REQUIRE_FALSE(vectors.ok());
        CHECK(vectors.status().code() == StatusCode::kDataLoss);
        CHECK(std::string(vectors.status().message()).find(c.message) != std::string::npos);
    }
}
