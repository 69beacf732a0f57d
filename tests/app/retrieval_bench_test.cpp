// `sluice bench retrieval` run in-process on a small BEIR-format data set: every mode over one
// index, query halves, a kept index reused without embedding again, and the http embedder.
#include "app/retrieval_bench.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "app/cli.h"
#include "fake_embeddings_server.h"

using sluice::testing::FakeEmbeddingsServer;

namespace {

struct TempDir {
    std::filesystem::path path = std::filesystem::temp_directory_path() /
                                 ("sluice-bench-test-" + std::to_string(std::random_device{}()));
    TempDir() { std::filesystem::create_directories(path); }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
};

// Six documents on three subjects; queries 1-4, each judging the two documents of its subject.
void write_dataset(const std::filesystem::path& dir) {
    std::filesystem::create_directories(dir / "qrels");
    std::ofstream(dir / "corpus.jsonl")
        << R"({"_id": "d1", "title": "Bread", "text": "Knead the dough and bake the bread."})"
        << "\n"
        << R"({"_id": "d2", "title": "Baking", "text": "An oven bakes bread loaves at high heat."})"
        << "\n"
        << R"({"_id": "d3", "title": "Taxes", "text": "Quarterly tax filings are due each quarter."})"
        << "\n"
        << R"({"_id": "d4", "title": "Tax law", "text": "The tax code sets filing deadlines."})"
        << "\n"
        << R"({"_id": "d5", "title": "Rivers", "text": "Rivers carry water to the sea."})"
        << "\n"
        << R"({"_id": "d6", "title": "Seas", "text": "The sea receives water from rivers."})"
        << "\n";
    std::ofstream(dir / "queries.jsonl") << R"({"_id": "1", "text": "bake bread"})"
                                         << "\n"
                                         << R"({"_id": "2", "text": "tax filing"})"
                                         << "\n"
                                         << R"({"_id": "3", "text": "river water"})"
                                         << "\n"
                                         << R"({"_id": "4", "text": "bread oven"})"
                                         << "\n";
    std::ofstream(dir / "qrels" / "test.tsv") << "query-id\tcorpus-id\tscore\n"
                                              << "1\td1\t1\n1\td2\t1\n"
                                              << "2\td3\t1\n2\td4\t1\n"
                                              << "3\td5\t1\n3\td6\t1\n"
                                              << "4\td1\t1\n4\td2\t1\n";
}

struct BenchRun {
    int code = 0;
    nlohmann::json figures;  // the --json line
};

BenchRun run_bench(std::vector<std::string> args) {
    args.insert(args.begin(), {"sluice", "bench", "retrieval", "--json"});
    std::vector<const char*> argv;
    for (const auto& arg : args) {
        argv.push_back(arg.c_str());
    }
    std::ostringstream captured;
    auto* previous = std::cout.rdbuf(captured.rdbuf());
    sluice::app::Cli cli;
    BenchRun out;
    out.code = cli.run(static_cast<int>(argv.size()), argv.data());
    std::cout.rdbuf(previous);
    std::string text = captured.str();
    auto last = text.find_last_of('\n', text.size() >= 2 ? text.size() - 2 : 0);
    std::string line = text.substr(last == std::string::npos ? 0 : last + 1);
    if (out.code == 0) {
        out.figures = nlohmann::json::parse(line);
    }
    return out;
}

std::vector<std::string> labels(const nlohmann::json& figures) {
    std::vector<std::string> out;
    for (const auto& row : figures.at("results")) {
        out.push_back(row.at("label"));
    }
    return out;
}

}  // namespace

TEST_CASE("bench retrieval: every mode and fusion is one row over one index") {
    TempDir dir;
    write_dataset(dir.path / "data");
    auto per_query_path = dir.path / "per-query.jsonl";
    auto run = run_bench({"--dataset", (dir.path / "data").string(), "--mode",
                          "lexical,vector,hybrid", "--fusion", "rrf,weighted", "--vector-weight",
                          "0.2,0.5", "--dim", "64", "--per-query", per_query_path.string()});
    REQUIRE(run.code == 0);
    CHECK(labels(run.figures) == std::vector<std::string>{"lexical", "vector", "hybrid rrf",
                                                          "hybrid weighted w=0.20",
                                                          "hybrid weighted w=0.50"});
    CHECK(run.figures.at("queries") == 4);
    CHECK(run.figures.at("documents") == 6);
    CHECK(run.figures.at("embedder") == "lexical-hash/64");
    // The first row's figures stay at the top level, where one-mode runs put them.
    CHECK(run.figures.at("mode") == "lexical");
    CHECK(run.figures.at("ndcg@10") == run.figures.at("results")[0].at("ndcg@10"));
    // Every query's words name its documents: BM25 finds them all.
    CHECK(run.figures.at("recall@100").get<double>() == doctest::Approx(1.0));
    CHECK(run.figures.at("results")[4].at("vector_weight") == 0.5);
    CHECK(run.figures.at("results")[2].at("fusion") == "rrf");

    // --per-query: a line per row and query whose means are the row's figures.
    std::ifstream per_query(per_query_path);
    std::map<std::string, std::pair<double, int>> ndcg_by_label;
    std::set<std::string> query_ids;
    for (std::string line; std::getline(per_query, line);) {
        auto record = nlohmann::json::parse(line);
        auto& [sum, count] = ndcg_by_label[record.at("label")];
        sum += record.at("ndcg@10").get<double>();
        ++count;
        query_ids.insert(record.at("query"));
    }
    CHECK(query_ids == std::set<std::string>{"1", "2", "3", "4"});
    REQUIRE(ndcg_by_label.size() == 5);
    for (const auto& row : run.figures.at("results")) {
        const auto& [sum, count] = ndcg_by_label.at(row.at("label"));
        CHECK(count == 4);
        CHECK(sum / count == doctest::Approx(row.at("ndcg@10").get<double>()));
    }
}

TEST_CASE("bench retrieval: query halves by id parity") {
    TempDir dir;
    write_dataset(dir.path / "data");
    auto even = run_bench({"--dataset", (dir.path / "data").string(), "--query-split", "even"});
    REQUIRE(even.code == 0);
    CHECK(even.figures.at("queries") == 2);
    CHECK(even.figures.at("query_split") == "even");
    auto odd = run_bench({"--dataset", (dir.path / "data").string(), "--query-split", "odd",
                          "--limit-queries", "1"});
    REQUIRE(odd.code == 0);
    CHECK(odd.figures.at("queries") == 1);
}

TEST_CASE("bench retrieval: a kept index is reopened without embedding again") {
    TempDir dir;
    write_dataset(dir.path / "data");
    auto index_dir = (dir.path / "index").string();
    std::vector<std::string> args = {"--dataset",   (dir.path / "data").string(),
                                     "--mode",      "lexical,hybrid",
                                     "--index-dir", index_dir};
    auto first = run_bench(args);
    REQUIRE(first.code == 0);
    CHECK(first.figures.at("embedded") == 6);
    auto second = run_bench(args);
    REQUIRE(second.code == 0);
    CHECK(second.figures.at("embedded") == 0);
    CHECK(second.figures.at("results")[1].at("ndcg@10") ==
          first.figures.at("results")[1].at("ndcg@10"));
    CHECK(std::filesystem::exists(index_dir));

    // Other settings would measure another index under the same name: refused.
    auto other = args;
    other.insert(other.end(), {"--dim", "128"});
    CHECK(run_bench(other).code == 1);

    // Without --index-dir the index is temporary.
    auto temporary = run_bench({"--dataset", (dir.path / "data").string()});
    REQUIRE(temporary.code == 0);
    CHECK(temporary.figures.at("embedded") == 6);
}

TEST_CASE("bench retrieval: --embedder http embeds through the server it names") {
    TempDir dir;
    write_dataset(dir.path / "data");
    // A vector per subject word, so that the vector ranking is exact on this data set.
    FakeEmbeddingsServer server([](const nlohmann::json& request, httplib::Response& res) {
        nlohmann::json data = nlohmann::json::array();
        for (std::size_t i = 0; i < request["input"].size(); ++i) {
            std::string text = request["input"][i];
            std::vector<float> vector(4, 0.01f);
            for (const auto& [word, slot] : std::vector<std::pair<std::string, int>>{
                     {"bread", 0}, {"tax", 1}, {"river", 2}, {"sea", 2}}) {
                if (text.find(word) != std::string::npos) {
                    vector[static_cast<std::size_t>(slot)] = 1.0f;
                }
            }
            data.push_back({{"index", i}, {"embedding", vector}});
        }
        res.set_content(nlohmann::json{{"data", data}}.dump(), "application/json");
    });
    auto run = run_bench({"--dataset", (dir.path / "data").string(), "--mode", "vector",
                          "--embedder", "http", "--embedder-endpoint", server.endpoint(),
                          "--embedder-model", "fake-encoder", "--dim", "4"});
    REQUIRE(run.code == 0);
    CHECK(server.last_request().at("model") == "fake-encoder");
    CHECK(run.figures.at("embedder").get<std::string>().find("fake-encoder") != std::string::npos);
    CHECK(run.figures.at("ndcg@10").get<double>() == doctest::Approx(1.0));

    // A server of another width fails the run, naming the widths.
    CHECK(run_bench({"--dataset", (dir.path / "data").string(), "--mode", "vector", "--embedder",
                     "http", "--embedder-endpoint", server.endpoint(), "--embedder-model",
                     "fake-encoder", "--dim", "8"})
              .code == 1);
    // Usage errors exit 2 before anything is read.
    CHECK(run_bench({"--dataset", (dir.path / "data").string(), "--embedder", "http"}).code == 2);
}

TEST_CASE("bench retrieval: integer ids are read as written") {
    TempDir dir;
    write_dataset(dir.path);
    // Read as a long long, 2^64 - 1 became "-1": another document's id.
    std::ofstream(dir.path / "corpus.jsonl", std::ios::app)
        << R"({"_id": 18446744073709551615, "text": "largest"})"
        << "\n"
        << R"({"_id": -1, "text": "negative"})"
        << "\n";
    std::ofstream(dir.path / "queries.jsonl", std::ios::app)
        << R"({"_id": 18446744073709551615, "text": "largest"})"
        << "\n";
    auto data = sluice::app::load_beir(dir.path, "test");
    REQUIRE_MESSAGE(data.ok(), data.status().to_string());
    REQUIRE(data->corpus.size() == 8);
    CHECK(data->corpus[6].id == "18446744073709551615");
    CHECK(data->corpus[7].id == "-1");
    CHECK(data->queries.count("18446744073709551615") == 1);
}

TEST_CASE("bench retrieval: a qrels score is a whole integer and ends its line") {
    TempDir dir;
    write_dataset(dir.path);
    // ">> int" read "1.5" as 1, and passed over a fourth column.
    for (const char* line : {"1\td1\t1.5", "1\td1\t1\textra", "1\td1\tone", "1\td1"}) {
        CAPTURE(line);
        std::ofstream(dir.path / "qrels" / "bad.tsv") << "query-id\tcorpus-id\tscore\n"
                                                      << line << "\n";
        auto data = sluice::app::load_beir(dir.path, "bad");
        REQUIRE_FALSE(data.ok());
        CHECK(data.status().code() == sluice::StatusCode::kInvalidArgument);
        CHECK(data.status().message().find("bad.tsv:2: expected query-id, corpus-id and an "
                                           "integer score") != std::string::npos);
    }
    std::ofstream(dir.path / "qrels" / "good.tsv") << "query-id\tcorpus-id\tscore\n"
                                                   << "1\td1\t2\r\n2\td3\t-1\n";
    auto data = sluice::app::load_beir(dir.path, "good");
    REQUIRE_MESSAGE(data.ok(), data.status().to_string());
    CHECK(data->qrels.at("1").at("d1") == 2);
    CHECK(data->qrels.at("2").at("d3") == -1);
}

TEST_CASE("bench retrieval: judgements of queries that queries.jsonl lacks are named, not hidden") {
    TempDir dir;
    write_dataset(dir.path);
    std::ostringstream errors;
    auto* previous = std::cerr.rdbuf(errors.rdbuf());
    // Two of five judged queries have no text: the others run, and the gap is said.
    std::ofstream(dir.path / "qrels" / "partial.tsv") << "query-id\tcorpus-id\tscore\n"
                                                      << "1\td1\t1\n2\td3\t1\n3\td5\t1\n"
                                                      << "8\td1\t1\n9\td2\t1\n";
    BenchRun partial = run_bench({"--dataset", dir.path.string(), "--split", "partial"});
    // None has a text: the error says so, rather than blaming the query split.
    std::ofstream(dir.path / "qrels" / "orphans.tsv") << "query-id\tcorpus-id\tscore\n"
                                                      << "8\td1\t1\n9\td2\t1\n";
    BenchRun orphans = run_bench({"--dataset", dir.path.string(), "--split", "orphans"});
    std::cerr.rdbuf(previous);
    CHECK(partial.code == 0);
    CHECK(errors.str().find("2 judged queries of qrels/partial.tsv are not in queries.jsonl; "
                            "left out") != std::string::npos);
    CHECK(orphans.code != 0);
    CHECK(errors.str().find("no judged query of split 'orphans' has a text: 2 judged queries of "
                            "qrels/orphans.tsv are not in queries.jsonl") != std::string::npos);
}
