// Crash tests of the sync engine through the real binary: a SQLite table changes all the time
// (inserts, text updates, ACL changes, deletes, updates of the key) while `sluice serve` syncs it
// continuously into an index, or `sluice source sync` does in triggered mode, and the process is
// killed with SIGKILL at random points of the initial sync and of streaming. After the last
// restart has caught up, the index must hold exactly the table: no document missing, none twice,
// none stale, none deleted and back; vectors, chunks and documents agree.
#include "sync_crash.h"

#include <doctest/doctest.h>
#include <httplib.h>
#include <sqlite3.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "child_process.h"
#include "retrieval/index.h"
#include "run_sluice.h"
#include "sluice_server.h"

namespace {

using nlohmann::json;
using sluice::testing::ChildProcess;
using sluice::testing::run_sluice;
using sluice::testing::ServeStart;
using sluice::testing::wait_listening;
using namespace std::chrono_literals;
using sluice::testing::sync_crash::catch_up_with_server;
using sluice::testing::sync_crash::check_index_matches;
using sluice::testing::sync_crash::metric;
using sluice::testing::sync_crash::Row;
using sluice::testing::sync_crash::run_and_kill;
using sluice::testing::sync_crash::serve_argv;
using sluice::testing::sync_crash::server_environment;

using Db = std::unique_ptr<sqlite3, decltype(&sqlite3_close)>;

Db open_db(const std::string& path) {
    sqlite3* raw = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &raw) == SQLITE_OK);
    Db db(raw, &sqlite3_close);
    // The server's source acknowledges (deletes change rows) in the same file.
    sqlite3_busy_timeout(db.get(), 10000);
    return db;
}

void exec(sqlite3* db, const std::string& sql) {
    char* error = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
    std::string message = error != nullptr ? error : "";
    sqlite3_free(error);
    REQUIRE_MESSAGE(rc == SQLITE_OK, sql << ": " << message);
}

// What the index must hold: "docs/<id>" -> row.
std::map<std::string, Row> table_rows(sqlite3* db) {
    std::map<std::string, Row> out;
    sqlite3_stmt* raw = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, "SELECT id, body, grp FROM docs", -1, &raw, nullptr) ==
            SQLITE_OK);
    std::unique_ptr<sqlite3_stmt, decltype(&sqlite3_finalize)> stmt(raw, &sqlite3_finalize);
    while (sqlite3_step(stmt.get()) == SQLITE_ROW) {
        std::string key = "docs/" + std::to_string(sqlite3_column_int64(stmt.get(), 0));
        out[key] = Row{reinterpret_cast<const char*>(sqlite3_column_text(stmt.get(), 1)),
                       reinterpret_cast<const char*>(sqlite3_column_text(stmt.get(), 2))};
    }
    return out;
}

// Changes the table at random, as an application would, until stopped. Every statement is its
// own transaction, so the table is always in a state the index may legitimately show.
class Writer {
public:
    Writer(std::string path, unsigned seed, int next_id)
        : path_(std::move(path)), random_(seed), next_id_(next_id) {}

    void start() {
        thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
    }
    void stop() {
        thread_.request_stop();
        if (thread_.joinable()) {
            thread_.join();
        }
    }
    int writes() const { return writes_.load(); }

private:
    void run(const std::stop_token& stop) {
        Db db = open_db(path_);
        while (!stop.stop_requested()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1 + random_() % 6));
            const int id = 1 + static_cast<int>(random_() % static_cast<unsigned>(next_id_));
            const std::string version = std::to_string(random_());
            switch (random_() % 6) {
                case 0:
                    exec(db.get(), "INSERT OR IGNORE INTO docs VALUES (" +
                                       std::to_string(next_id_++) + ", 'new row " + version +
                                       "', 'staff')");
                    break;
                case 1:
                case 2:
                    exec(db.get(), "UPDATE docs SET body = 'edited " + version +
                                       "' WHERE id = " + std::to_string(id));
                    break;
                case 3:
                    exec(db.get(), "UPDATE docs SET grp = CASE grp WHEN 'staff' THEN 'guests' "
                                   "ELSE 'staff' END WHERE id = " + std::to_string(id));
                    break;
                case 4:
                    exec(db.get(), "DELETE FROM docs WHERE id = " + std::to_string(id));
                    break;
                default:
                    // An update of the key: a delete of the old key and an upsert of the new.
                    exec(db.get(), "UPDATE OR IGNORE docs SET id = " +
                                       std::to_string(next_id_++) +
                                       " WHERE id = " + std::to_string(id));
                    break;
            }
            ++writes_;
        }
    }

    std::string path_;
    std::mt19937 random_;
    int next_id_;
    std::atomic<int> writes_{0};
    std::jthread thread_;
};

// One run: a fresh table and data directory, `kills` crashes at random points, then catch up
// (with the server or with `source sync`, alternating by seed) and compare.
void crash_run(unsigned seed) {
    std::mt19937 random(seed);
    const auto dir = std::filesystem::temp_directory_path() /
                     ("sluice-it-sync-" + std::to_string(seed) + "-" +
                      std::to_string(std::random_device{}()));
    std::filesystem::create_directories(dir);
    const std::string db_path = (dir / "app.sqlite").string();
    const auto data = dir / "data";
    constexpr int kRows = 200;
    {
        Db db = open_db(db_path);
        exec(db.get(), "PRAGMA journal_mode=WAL; CREATE TABLE docs(id INTEGER PRIMARY KEY, "
                       "body TEXT NOT NULL, grp TEXT NOT NULL); WITH RECURSIVE n(i) AS (SELECT 1 "
                       "UNION ALL SELECT i + 1 FROM n WHERE i < " + std::to_string(kRows) +
                       ") INSERT INTO docs SELECT i, 'row ' || i, 'staff' FROM n");
    }
    json config{{"path", db_path},
                {"tables", json::array({{{"table", "docs"},
                                         {"text", {"body"}},
                                         {"acl_groups", "grp"},
                                         {"acl", {{"principals", json::array()}}}}})}};
    auto [added, added_out] = run_sluice({"source", "add", "docs", "--type", "sqlite", "--index",
                                          "kb", "--config", config.dump(), "--data-dir",
                                          data.string()});
    REQUIRE_MESSAGE(added == 0, added_out);

    Writer writer(db_path, seed * 7919U + 1U, kRows + 1);
    // Initial sync: the first kill comes before the writer starts, so it lands in the snapshot
    // of the table (odd seeds in triggered mode).
    const auto first = std::chrono::milliseconds(50 + random() % 400);
    if (seed % 2 == 1) {
        run_and_kill({SLUICE_BINARY, "source", "sync", "docs", "--max-batch", "16", "--data-dir",
                      data.string()},
                     first);
    } else {
        run_and_kill(serve_argv(data), first);
    }
    writer.start();
    // Streaming: kills while the table keeps changing, also while the server is down.
    for (int round = 0; round < 2; ++round) {
        run_and_kill(serve_argv(data), std::chrono::milliseconds(100 + random() % 600));
        std::this_thread::sleep_for(std::chrono::milliseconds(random() % 50));
    }
    writer.stop();
    CHECK(writer.writes() > 0);

    if (seed % 2 == 0) {
        catch_up_with_server(data);
    } else {
        ChildProcess sync({SLUICE_BINARY, "source", "sync", "docs", "--data-dir", data.string()});
        REQUIRE(sync.started());
        const auto code = sync.wait(120s);
        REQUIRE_MESSAGE(code == 0, "source sync failed: " << sync.output());
    }
    Db db = open_db(db_path);
    check_index_matches(data, table_rows(db.get()), seed);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
}

}  // namespace

TEST_CASE("sync survives kill -9 during initial sync and streaming (50 seeds)") {
    // TEST_SYNC_CRASH_RUNS raises or lowers the count for a longer soak or a quick look.
    int runs = 50;
    if (const char* env = std::getenv("TEST_SYNC_CRASH_RUNS")) {
        runs = std::max(1, std::atoi(env));
    }
    const unsigned base = std::random_device{}() % 100000;
    MESSAGE("sync crash runs: " << runs << ", seeds from " << base);
    for (int i = 0; i < runs; ++i) {
        crash_run(base + static_cast<unsigned>(i));
    }
}

TEST_CASE("GET /api/sources shows the bound index and the sync status") {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("sluice-it-sync-api-" + std::to_string(std::random_device{}()));
    std::filesystem::create_directories(dir);
    const std::string db_path = (dir / "app.sqlite").string();
    const auto data = dir / "data";
    {
        Db db = open_db(db_path);
        exec(db.get(), "CREATE TABLE docs(id INTEGER PRIMARY KEY, body TEXT NOT NULL, grp TEXT "
                       "NOT NULL); INSERT INTO docs VALUES (1, 'alpha', 'staff'), (2, 'beta', "
                       "'staff')");
    }
    json config{{"path", db_path},
                {"tables", json::array({{{"table", "docs"},
                                         {"text", {"body"}},
                                         {"acl_groups", "grp"},
                                         {"acl", {{"principals", json::array()}}}}})}};
    REQUIRE(run_sluice({"source", "add", "docs", "--type", "sqlite", "--index", "kb", "--config",
                        config.dump(), "--data-dir", data.string()})
                .first == 0);
    auto [listed, list_out] = run_sluice({"source", "list", "--data-dir", data.string()});
    REQUIRE(listed == 0);
    CHECK(json::parse(list_out)["sources"][0]["index"] == "kb");

    ChildProcess server(serve_argv(data), server_environment());
    const ServeStart start = wait_listening(server, 30s);
    REQUIRE(!start.admin_token.empty());
    const int port = start.port;
    const std::string token = start.admin_token;
    httplib::Client client("127.0.0.1", port);
    client.set_bearer_token_auth(token);

    json sync;
    for (int i = 0; i < 200; ++i) {
        auto result = client.Get("/api/sources");
        REQUIRE(result);
        REQUIRE(result->status == 200);
        sync = json::parse(result->body)["sources"][0]["sync"];
        if (sync["state"] == "caught_up" && sync["documents"] == 2) {
            break;
        }
        std::this_thread::sleep_for(50ms);
    }
    CHECK(sync["state"] == "caught_up");
    CHECK(sync["documents"] == 2);
    CHECK(sync["index"] == "kb");
    CHECK(sync["lag_seconds"] == 0);
    CHECK(sync["last_error"].is_null());

    // A change is applied without restarting anything.
    {
        Db db = open_db(db_path);
        exec(db.get(), "DELETE FROM docs WHERE id = 1");
    }
    for (int i = 0; i < 200 && metric(port, "sluice_source_documents") != 1; ++i) {
        std::this_thread::sleep_for(50ms);
    }
    CHECK(metric(port, "sluice_source_documents") == 1);
    auto one = client.Get("/api/sources/docs");
    REQUIRE(one);
    CHECK(one->status == 200);
    CHECK(json::parse(one->body)["name"] == "docs");
    auto unknown = client.Get("/api/sources/nope");
    REQUIRE(unknown);
    CHECK(unknown->status == 404);
    // "Sync now" answers the source's status; an unknown source is a 404.
    auto woken = client.Post("/api/sources/docs/sync", "{}", "application/json");
    REQUIRE(woken);
    REQUIRE_MESSAGE(woken->status == 200, woken->body);
    CHECK(json::parse(woken->body)["name"] == "docs");
    CHECK(json::parse(woken->body)["sync"]["documents"] == 1);
    auto wake_unknown = client.Post("/api/sources/nope/sync", "{}", "application/json");
    REQUIRE(wake_unknown);
    CHECK(wake_unknown->status == 404);
    httplib::Client anonymous("127.0.0.1", port);
    auto refused = anonymous.Get("/api/sources");
    REQUIRE(refused);
    CHECK(refused->status == 401);
    auto refused_wake = anonymous.Post("/api/sources/docs/sync", "{}", "application/json");
    REQUIRE(refused_wake);
    CHECK(refused_wake->status == 401);

    server.signal(SIGTERM);
    CHECK(server.wait(30s) == 0);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
}

TEST_CASE("events pushed over HTTP are synced into the bound index") {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("sluice-it-sync-push-" + std::to_string(std::random_device{}()));
    const auto data = dir / "data";
    REQUIRE(run_sluice({"source", "add", "kb", "--type", "http", "--index", "articles",
                        "--data-dir", data.string()})
                .first == 0);
    ChildProcess server(serve_argv(data), server_environment());
    const ServeStart start = wait_listening(server, 30s);
    REQUIRE(!start.admin_token.empty());
    const int port = start.port;
    const std::string token = start.admin_token;
    httplib::Client client("127.0.0.1", port);
    client.set_bearer_token_auth(token);

    auto push = [&](const std::string& key, const json& events) {
        httplib::Headers headers = {{"Idempotency-Key", key}};
        auto result = client.Post("/api/sources/kb/events", headers,
                                  json{{"events", events}}.dump(), "application/json");
        REQUIRE(result);
        CHECK_MESSAGE(result->status == 200, result->body);
    };
    auto documents_become = [&](double n) {
        for (int i = 0; i < 200 && metric(port, "sluice_source_documents") != n; ++i) {
            std::this_thread::sleep_for(25ms);
        }
        return metric(port, "sluice_source_documents") == n;
    };
    push("first", json::array({{{"key", "kb/1"}, {"op", "upsert"},
                                {"document", {{"text", "reset the router"},
                                              {"acl", {{"groups", {"support"}}}}}}},
                               {{"key", "kb/2"}, {"op", "upsert"},
                                {"document", {{"text", "renew the certificate"},
                                              {"acl", {{"groups", {"support"}}}}}}}}));
    CHECK(documents_become(2));
    // A replayed request stores nothing and changes nothing.
    push("first", json::array({{{"key", "kb/1"}, {"op", "upsert"},
                                {"document", {{"text", "reset the router"},
                                              {"acl", {{"groups", {"support"}}}}}}},
                               {{"key", "kb/2"}, {"op", "upsert"},
                                {"document", {{"text", "renew the certificate"},
                                              {"acl", {{"groups", {"support"}}}}}}}}));
    push("second", json::array({{{"key", "kb/1"}, {"op", "delete"}}}));
    CHECK(documents_become(1));
    auto described = client.Get("/api/sources/kb");
    REQUIRE(described);
    auto sync = json::parse(described->body)["sync"];
    CHECK(sync["index"] == "articles");
    CHECK(sync["lag_events"] == 0);
    server.signal(SIGTERM);
    CHECK(server.wait(30s) == 0);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
}

TEST_CASE("a source created over REST and re-bound by the offline CLI syncs without a restart") {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("sluice-it-sync-live-" + std::to_string(std::random_device{}()));
    const auto data = dir / "data";
    std::filesystem::create_directories(dir);
    ChildProcess server(serve_argv(data), server_environment());
    const ServeStart start = wait_listening(server, 30s);
    REQUIRE(!start.admin_token.empty());
    const int port = start.port;
    httplib::Client client("127.0.0.1", port);
    client.set_bearer_token_auth(start.admin_token);
    auto send = [&](const std::string& method, const std::string& path, const json& body) {
        auto result = method == "POST"    ? client.Post(path, body.dump(), "application/json")
                      : method == "PATCH" ? client.Patch(path, body.dump(), "application/json")
                                          : client.Delete(path);
        REQUIRE(result);
        return std::make_pair(result->status, json::parse(result->body, nullptr, false));
    };
    REQUIRE(send("POST", "/api/2.1/unity-catalog/catalogs", {{"name", "main"}}).first == 200);
    REQUIRE(send("POST", "/api/2.1/unity-catalog/schemas",
                 {{"name", "feeds"}, {"catalog_name", "main"}})
                .first == 200);
    auto [created, source] = send("POST", "/api/sources",
                                  {{"name", "kb"},
                                   {"type", "http"},
                                   {"schema", "main.feeds"},
                                   {"index", "articles"}});
    REQUIRE_MESSAGE(created == 200, source.dump());
    CHECK(source["catalog_name"] == "main.feeds.kb");
    CHECK(source["owner"] == "admin");
    CHECK(source["sync"]["index"] == "articles");
    auto [again, taken] = send("POST", "/api/sources",
                               {{"name", "kb"}, {"type", "http"}, {"schema", "main.feeds"}});
    CHECK(again == 409);

    httplib::Headers headers = {{"Idempotency-Key", "one"}};
    auto pushed = client.Post("/api/sources/kb/events", headers,
                              json{{"events", json::array({{{"key", "kb/1"},
                                                            {"op", "upsert"},
                                                            {"document", {{"text", "hello"}}}}})}}
                                  .dump(),
                              "application/json");
    REQUIRE(pushed);
    CHECK_MESSAGE(pushed->status == 200, pushed->body);
    auto sync_of_kb = [&]() {
        auto described = client.Get("/api/sources/kb");
        REQUIRE(described);
        return json::parse(described->body)["sync"];
    };
    bool applied = false;
    for (int i = 0; i < 200 && !applied; ++i) {
        std::this_thread::sleep_for(25ms);
        applied = sync_of_kb()["documents"] == 1;
    }
    CHECK(applied);

    // The offline CLI re-binds it while the server runs: the server follows within seconds.
    auto [bound, bound_out] = run_sluice({"source", "bind", "kb", "--index", "archive",
                                          "--data-dir", data.string()});
    REQUIRE_MESSAGE(bound == 0, bound_out);
    bool followed = false;
    for (int i = 0; i < 200 && !followed; ++i) {
        std::this_thread::sleep_for(25ms);
        json sync = sync_of_kb();
        followed = sync.is_object() && sync["index"] == "archive";
    }
    CHECK(followed);

    auto [unbound, unbound_body] = send("PATCH", "/api/sources/kb", {{"index", nullptr}});
    CHECK(unbound == 200);
    CHECK(unbound_body["sync"].is_null());
    auto [removed, removed_body] = send("DELETE", "/api/sources/kb", json());
    CHECK(removed == 200);
    auto gone = client.Get("/api/sources/kb");
    REQUIRE(gone);
    CHECK(gone->status == 404);
    server.signal(SIGTERM);
    CHECK(server.wait(30s) == 0);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
}
