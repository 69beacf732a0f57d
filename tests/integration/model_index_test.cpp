// A vector index whose embedder is the served model ("embedder": "model") through the real
// binary: the server lends its engine to its indexes, so the index's vectors are the model's own
// embeddings (the same ones /v1/embeddings returns), of the model's width, and they come back
// after a restart. Without a loaded model the index says which index, which embedder and why.
#include <doctest/doctest.h>
#include <httplib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "child_process.h"
#include "model_server_client.h"
#include "sluice_server.h"

namespace {

using nlohmann::json;
using sluice::testing::ChildProcess;
using sluice::testing::d_model_of;
using sluice::testing::model_server_client;
using sluice::testing::ok_json;
using sluice::testing::post_json;
using sluice::testing::ServerProcess;
using sluice::testing::wait_listening;
using sluice::testing::wait_model_loaded;
using namespace std::chrono_literals;

const std::string kIndexes = "/api/2.0/vector-search/indexes";

// Rows the admin may read (a chunk without an access list is read by nobody).
json notes() {
    json rows = json::array({{{"id", "rivers"}, {"text", "Rivers run to the sea."}},
                             {{"id", "mountains"}, {"text", "Mountains stand still in the cold."}},
                             {{"id", "deserts"}, {"text", "Deserts are dry and wide."}}});
    for (auto& row : rows) {
        row["acl"] = {{"principals", {"admin"}}};
    }
    return rows;
}

// The served model's embedding of `text`, from the OpenAI-compatible route.
std::vector<float> model_embedding(httplib::Client& c, const std::string& text) {
    const std::string model = ok_json(c.Get("/v1/models"))["data"][0]["id"];
    json answer = post_json(c, "/v1/embeddings", {{"model", model}, {"input", text}});
    return answer["data"][0]["embedding"].get<std::vector<float>>();
}

// The ids and scores of an ANN query, best first.
std::vector<std::pair<std::string, double>> ann(httplib::Client& c, const json& query) {
    json body = query;
    body["query_type"] = "ANN";
    body["num_results"] = 3;
    body["columns"] = {"id", "text"};
    json answer = post_json(c, kIndexes + "/notes/query", body);
    INFO(answer.dump());
    std::vector<std::pair<std::string, double>> out;
    for (const auto& row : answer["result"]["data_array"]) {
        out.emplace_back(row[0].get<std::string>(), row.back().get<double>());
    }
    return out;
}

// The index finds `key` first by the model's embedding of what it embedded for the document
// (cosine 1, up to the engine's float rounding) and by the document's text. An index embeds a
// chunk's title, section headings and text, one a line: here no title, no heading.
void finds_by_model_embedding(httplib::Client& c, const std::string& key, const std::string& text,
                              int d_model) {
    const std::vector<float> vector = model_embedding(c, "\n" + text);
    REQUIRE(vector.size() == static_cast<std::size_t>(d_model));
    auto by_vector = ann(c, {{"query_vector", vector}});
    REQUIRE_MESSAGE(!by_vector.empty(), "no hit for the embedding of '" << text << "'");
    CHECK(by_vector.front().first == key);
    CHECK(by_vector.front().second > 0.999);
    auto by_text = ann(c, {{"query_text", text}});
    REQUIRE(!by_text.empty());
    CHECK(by_text.front().first == key);
}

}  // namespace

TEST_CASE("an index embedded by the served model: create, add, search, restart") {
    const std::string model = sluice::testing::tiny_model_dir();
    const int d_model = d_model_of(model);
    const auto dir = sluice::testing::fresh_test_dir("model-index");
    const std::vector<std::string> argv = {SLUICE_BINARY, "serve",        "--port", "0",
                                           "--data-dir",  dir.string(), "--model", model};
    const std::map<std::string, std::string> environment = {{"SLUICE_LOG_ACCESS_LOG", "false"}};
    std::string admin;
    {
        ChildProcess serve(argv, environment);
        const auto start = wait_listening(serve);
        admin = start.admin_token;
        auto c = model_server_client(start.port, admin);
        wait_model_loaded(c);

        json created =
            post_json(c, kIndexes,
                      {{"name", "notes"}, {"embedder", "model"}, {"embedding_dimension", d_model}});
        CHECK(created["embedder"] == "model");
        CHECK(created["embedding_dimension"] == d_model);
        json upserted =
            post_json(c, kIndexes + "/notes/upsert-data", {{"inputs_json", notes().dump()}});
        CHECK(upserted["result"]["success_row_count"] == 3);
        finds_by_model_embedding(c, "mountains", "Mountains stand still in the cold.", d_model);
        // The added document comes back whole.
        json hit = post_json(c, kIndexes + "/notes/query",
                             {{"query_text", "Deserts are dry and wide."},
                              {"query_type", "ANN"},
                              {"num_results", 1},
                              {"columns", {"id", "text"}}});
        REQUIRE(hit["result"]["data_array"].size() == 1);
        CHECK(hit["result"]["data_array"][0][0] == "deserts");
        CHECK(hit["result"]["data_array"][0][1] == "Deserts are dry and wide.");

        // A width other than the model's is refused, naming the index and the embedder.
        auto wrong = c.Post(kIndexes,
                            json{{"name", "too-wide"}, {"embedder", "model"},
                                 {"embedding_dimension", d_model + 1}}
                                .dump(),
                            "application/json");
        REQUIRE(wrong);
        CHECK(wrong->status == 409);
        CHECK(wrong->body.find("too-wide") != std::string::npos);
        CHECK(wrong->body.find("model:") != std::string::npos);

        serve.signal(SIGTERM);
        REQUIRE(serve.wait(30s) == 0);
    }
    ChildProcess serve(argv, environment);
    auto c = model_server_client(wait_listening(serve).port, admin);
    wait_model_loaded(c);
    json described = ok_json(c.Get(kIndexes + "/notes"));
    CHECK(described["embedder"] == "model");
    CHECK(described["embedding_dimension"] == d_model);
    CHECK(described["status"]["indexed_row_count"] == 3);
    CHECK(described["status"]["vector_count"] == 3);
    finds_by_model_embedding(c, "rivers", "Rivers run to the sea.", d_model);
    serve.signal(SIGTERM);
    CHECK(serve.wait(30s) == 0);
    std::filesystem::remove_all(dir);
}

TEST_CASE("an index embedded by the served model says which index and why when there is none") {
    // A checkpoint folder with a config but no weights: the width is known, the model never loads.
    const auto folder = sluice::testing::fresh_test_dir("model-index-broken");
    std::filesystem::create_directories(folder);
    std::filesystem::copy_file(
        std::filesystem::path(sluice::testing::tiny_model_dir()) / "config.json",
        folder / "config.json");
    const int d_model = d_model_of(folder.string());
    {
        ServerProcess server("model-index-none", folder.string());
        server.wait_model_ready(false);
        auto c = server.client();
        post_json(c, kIndexes,
                  {{"name", "notes"}, {"embedder", "model"}, {"embedding_dimension", d_model}});
        auto upserted = c.Post(kIndexes + "/notes/upsert-data",
                               json{{"inputs_json", notes().dump()}}.dump(), "application/json");
        REQUIRE(upserted);
        CHECK(upserted->status == 503);
        CHECK(upserted->body.find("index 'notes'") != std::string::npos);
        CHECK(upserted->body.find("embedder 'model'") != std::string::npos);
        CHECK(upserted->body.find("not loaded") != std::string::npos);

        // Without a readable checkpoint the width is unknown: such an index is refused.
        std::filesystem::remove(folder / "config.json");
        auto later = c.Post(kIndexes,
                            json{{"name", "later"}, {"embedder", "model"},
                                 {"embedding_dimension", d_model}}
                                .dump(),
                            "application/json");
        REQUIRE(later);
        CHECK(later->status == 409);
        CHECK(later->body.find("index 'later'") != std::string::npos);
        CHECK(later->body.find("embedder 'model'") != std::string::npos);
    }
    std::filesystem::remove_all(folder);
}
