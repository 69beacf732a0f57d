// A vector index embedded by the model ("embedder": "model") outside the server: `sluice source
// sync` and `sluice search` load the configured model themselves, embed by the server's path and
// under its cache keys, so vectors made offline are the server's and the other way round. They
// load it only when an index needs an embedding, and a model that cannot load is an error that
// names the index and the model's folder.
#include <doctest/doctest.h>
#include <httplib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "child_process.h"
#include "model_server_client.h"
#include "run_sluice.h"
#include "sluice_server.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using sluice::testing::ChildProcess;
using sluice::testing::d_model_of;
using sluice::testing::model_server_client;
using sluice::testing::ok_json;
using sluice::testing::post_json;
using sluice::testing::run_sluice;
using sluice::testing::wait_listening;
using sluice::testing::wait_model_loaded;
using namespace std::chrono_literals;

const std::string kIndexes = "/api/2.0/vector-search/indexes";

// No trailing newline: the chunk is the file's text as is, so a REST row of the same text has
// the same embedding-cache key.
void write_file(const fs::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    REQUIRE(out.good());
}

// How messages name a folder. Appended piece by piece: GCC 12 warns (-Wrestrict, wrongly)
// on "'" + path + "'".
std::string quoted(const std::filesystem::path& path) {
    std::string out = "'";
    out += path.string();
    out += '\'';
    return out;
}

// Runs the binary to its end; its exit code and what it wrote to stderr.
std::pair<int, std::string> run_for_stderr(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {SLUICE_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    ChildProcess child(argv);
    REQUIRE(child.started());
    auto code = child.wait(120s);
    REQUIRE(code.has_value());
    return {*code, child.output()};
}

// A checkpoint folder with the model's config.json and nothing else: an index knows the width,
// but the weights never load. Named as the model's folder, so that the model id (the folder's
// name), and with it the embedding-cache key, stays the same.
fs::path weightless_copy(const fs::path& model, const fs::path& parent) {
    const fs::path where = parent / model.filename();
    fs::create_directories(where);
    fs::copy_file(model / "config.json", where / "config.json");
    return where;
}

}  // namespace

TEST_CASE("a model index synced offline: searched offline, its vectors reused by the server") {
    const fs::path model = sluice::testing::tiny_model_dir();
    const int d_model = d_model_of(model);
    const fs::path dir = sluice::testing::fresh_test_dir("model-sync");
    const fs::path data = dir / "data";
    const fs::path docs = dir / "docs";
    fs::create_directories(docs);
    const std::vector<std::string> serve = {SLUICE_BINARY, "serve",        "--port", "0",
                                            "--data-dir",  data.string(), "--model", model.string()};
    const std::map<std::string, std::string> environment = {{"SLUICE_LOG_ACCESS_LOG", "false"}};

    // The server makes the index (no dimension given: the model's d_model) and embeds one row.
    std::string admin;
    {
        ChildProcess server(serve, environment);
        const auto start = wait_listening(server);
        admin = start.admin_token;
        auto c = model_server_client(start.port, admin);
        wait_model_loaded(c);
        json created = post_json(c, kIndexes, {{"name", "notes"}, {"embedder", "model"}});
        CHECK(created["embedding_dimension"] == d_model);
        json upserted =
            post_json(c, kIndexes + "/notes/upsert-data",
                      {{"inputs_json", json::array({{{"id", "by-server"},
                                                     {"text", "Deserts are dry and wide."},
                                                     {"acl", {{"principals", {"admin"}}}}}})
                                           .dump()}});
        CHECK(upserted["result"]["embedded"] == 1);
        server.signal(SIGTERM);
        REQUIRE(server.wait(30s) == 0);
    }

    write_file(docs / "rivers.txt", "Rivers run to the sea.");
    write_file(docs / "mountains.txt", "Mountains stand still in the cold.");
    const json source_config = {{"root", docs.string()}, {"acl", {{"principals", {"admin"}}}}};
    REQUIRE(run_sluice({"source", "add", "files", "--type", "file", "--config",
                        source_config.dump(), "--index", "notes", "--data-dir", data.string()})
                .first == 0);

    // Offline: the sync embeds with the configured model, the search finds by it.
    auto [synced, sync_out] = run_sluice({"source", "sync", "files", "--data-dir", data.string(),
                                          "--model", model.string()});
    REQUIRE_MESSAGE(synced == 0, sync_out);
    CHECK(json::parse(sync_out)["upserts"] == 2);
    auto [searched, search_out] =
        run_sluice({"search", "--data-dir", data.string(), "--model", model.string(), "--index",
                    "notes", "--mode", "ann", "--json", "--k", "1", "--query",
                    "Mountains stand still in the cold."});
    REQUIRE(searched == 0);
    json hits = json::parse(search_out)["result"]["data_array"];
    REQUIRE(hits.size() == 1);
    CHECK(hits[0].dump().find("mountains.txt") != std::string::npos);
    auto [statused, status_out] = run_sluice({"source", "status", "files", "--data-dir",
                                              data.string(), "--model", model.string()});
    REQUIRE(statused == 0);
    json status = json::parse(status_out);
    CHECK(status["sync"]["embedder"] == "model");
    CHECK(status["sync"]["dimension"] == d_model);
    CHECK(status["sync"]["documents"] == 3);

    // Text the server embedded is not embedded again offline: a model that cannot load is
    // never asked for it. New text needs the model, and the error names the index and folder.
    const fs::path weightless = weightless_copy(model, dir / "weightless");
    write_file(docs / "deserts.txt", "Deserts are dry and wide.");
    auto [cached, cached_out] = run_sluice({"source", "sync", "files", "--data-dir",
                                            data.string(), "--model", weightless.string()});
    REQUIRE_MESSAGE(cached == 0, cached_out);
    CHECK(json::parse(cached_out)["upserts"] == 1);
    write_file(docs / "forests.txt", "Forests grow where the rain falls.");
    auto [failed, why] = run_for_stderr({"source", "sync", "files", "--data-dir", data.string(),
                                         "--model", weightless.string()});
    CHECK(failed != 0);
    CHECK(why.find("index 'notes'") != std::string::npos);
    CHECK(why.find(quoted(weightless)) != std::string::npos);
    // No checkpoint at all: the index cannot even learn its width, and says so with the path.
    const fs::path absent = dir / "absent" / model.filename();
    auto [nowhere, nowhere_why] = run_for_stderr(
        {"source", "sync", "files", "--data-dir", data.string(), "--model", absent.string()});
    CHECK(nowhere != 0);
    CHECK(nowhere_why.find("index 'notes'") != std::string::npos);
    CHECK(nowhere_why.find(quoted(absent / "config.json")) != std::string::npos);
    fs::remove(docs / "forests.txt");
    // Reading the index's state needs no embedding, so no weights.
    auto [shown, shown_out] = run_sluice({"source", "status", "files", "--data-dir",
                                          data.string(), "--model", weightless.string()});
    REQUIRE(shown == 0);
    CHECK(json::parse(shown_out)["sync"]["documents"] == 4);

    // The server opens the vectors made offline and finds the offline text in its cache.
    ChildProcess server(serve, environment);
    auto c = model_server_client(wait_listening(server).port, admin);
    wait_model_loaded(c);
    json described = ok_json(c.Get(kIndexes + "/notes"));
    CHECK(described["embedding_dimension"] == d_model);
    CHECK(described["status"]["vector_count"] == 4);
    // The catalog's entry shows the dimension in use too.
    json entry = ok_json(c.Get("/api/2.1/unity-catalog/vector-indexes/vector_search.default.notes"));
    CHECK(entry["embedder"] == "model");
    CHECK(entry["embedding_dimension"] == d_model);
    json listed = ok_json(c.Get(
        "/api/2.1/unity-catalog/vector-indexes?catalog_name=vector_search&schema_name=default"));
    REQUIRE(listed["vector_indexes"].size() == 1);
    CHECK(listed["vector_indexes"][0]["embedding_dimension"] == d_model);
    json again = post_json(c, kIndexes + "/notes/upsert-data",
                           {{"inputs_json", json::array({{{"id", "copy"},
                                                          {"text", "Rivers run to the sea."},
                                                          {"acl", {{"principals", {"admin"}}}}}})
                                                .dump()}});
    CHECK(again["result"]["embedded"] == 0);
    CHECK(again["result"]["embedding_cache_hits"] == 1);
    server.signal(SIGTERM);
    CHECK(server.wait(30s) == 0);
    fs::remove_all(dir);
}

TEST_CASE("offline commands load no model for indexes that need none") {
    const fs::path dir = sluice::testing::fresh_test_dir("model-sync-none");
    const fs::path data = dir / "data";
    const fs::path docs = dir / "docs";
    fs::create_directories(docs);
    write_file(docs / "note.txt", "A note about lakes.");
    const json source_config = {{"root", docs.string()}, {"acl", {{"principals", {"admin"}}}}};
    REQUIRE(run_sluice({"source", "add", "files", "--type", "file", "--config",
                        source_config.dump(), "--index", "plain", "--data-dir", data.string()})
                .first == 0);
    // The configured model's folder does not exist: a lexical index syncs and shows its state
    // without it.
    const std::string missing = (dir / "no-model").string();
    auto [synced, sync_out] = run_sluice({"source", "sync", "files", "--data-dir", data.string(),
                                          "--model", missing});
    REQUIRE_MESSAGE(synced == 0, sync_out);
    CHECK(json::parse(sync_out)["upserts"] == 1);
    auto [statused, status_out] = run_sluice({"source", "status", "files", "--data-dir",
                                              data.string(), "--model", missing});
    REQUIRE(statused == 0);
    CHECK(json::parse(status_out)["sync"]["documents"] == 1);
    fs::remove_all(dir);
}
