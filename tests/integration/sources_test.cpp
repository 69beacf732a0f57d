// Sources through the real binary: `sluice source add/list/poll`, and HTTP push with
// idempotency keys and validation into a running server, read back with `source poll`.
#include <doctest/doctest.h>
#include <httplib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "child_process.h"
#include "run_sluice.h"
#include "sluice_server.h"

namespace {

using nlohmann::json;
using sluice::testing::ChildProcess;
using sluice::testing::ServeStart;
using sluice::testing::wait_listening;
using namespace std::chrono_literals;

std::filesystem::path fresh_dir() {
    return std::filesystem::temp_directory_path() /
           ("sluice-it-src-" + std::to_string(std::random_device{}()));
}

using sluice::testing::run_sluice;

std::vector<json> json_lines(const std::string& text) {
    std::vector<json> out;
    std::stringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        if (!line.empty()) {
            out.push_back(json::parse(line));
        }
    }
    return out;
}

}  // namespace

TEST_CASE("source commands: add, list, poll from a checkpoint") {
    const auto dir = fresh_dir();
    std::filesystem::create_directories(dir / "docs");
    std::ofstream(dir / "docs" / "a.md") << "# Alpha\n\ntext\n";
    std::ofstream(dir / "docs" / "b.txt") << "beta";
    const std::string data = (dir / "data").string();
    auto [added, added_out] = run_sluice(
        {"source", "add", "handbook", "--type", "file", "--config",
         json{{"root", (dir / "docs").string()}, {"acl", {{"principals", {"admin"}}}}}.dump(),
         "--data-dir", data});
    REQUIRE(added == 0);
    auto [bad, bad_out] = run_sluice({"source", "add", "x", "--type", "file", "--config", "{}",
                                  "--data-dir", data});
    CHECK(bad == 1);
    auto [listed, list_out] = run_sluice({"source", "list", "--data-dir", data});
    REQUIRE(listed == 0);
    CHECK(json::parse(list_out)["sources"][0]["name"] == "handbook");

    auto [polled, poll_out] = run_sluice({"source", "poll", "handbook", "--max", "1", "--data-dir",
                                      data});
    REQUIRE(polled == 0);
    auto lines = json_lines(poll_out);
    REQUIRE(lines.size() == 2);
    CHECK(lines[0]["key"] == "a.md");
    CHECK(lines[0]["document"]["metadata"]["title"] == "Alpha");
    CHECK(lines[1]["caught_up"] == false);
    auto [next, next_out] = run_sluice({"source", "poll", "handbook", "--from",
                                    lines[1]["checkpoint"], "--data-dir", data});
    REQUIRE(next == 0);
    auto rest = json_lines(next_out);
    REQUIRE(rest.size() == 2);
    CHECK(rest[0]["key"] == "b.txt");
    CHECK(rest[1]["caught_up"] == true);
    std::filesystem::remove_all(dir);
}

TEST_CASE("http push: idempotency keys, validation, authorisation, read back by poll") {
    const auto dir = fresh_dir();
    const std::string data = (dir / "data").string();
    REQUIRE(run_sluice({"source", "add", "kb", "--type", "http", "--data-dir", data}).first == 0);
    // A file source beside it (its root outside the data directory), which takes no pushes.
    std::filesystem::create_directories(dir / "docs");
    REQUIRE(run_sluice({"source", "add", "files", "--type", "file", "--config",
                        json{{"root", (dir / "docs").string()},
                             {"acl", {{"principals", {"admin"}}}}}
                            .dump(),
                        "--data-dir", data})
                .first == 0);
    ChildProcess serve({SLUICE_BINARY, "serve", "--port", "0", "--data-dir", data});
    const ServeStart start = wait_listening(serve);
    REQUIRE(!start.admin_token.empty());
    httplib::Client client("127.0.0.1", start.port);
    client.set_read_timeout(10, 0);
    const std::string admin = start.admin_token;

    const json body = json::parse(R"({"events": [
        {"key": "kb/1", "op": "upsert", "document": {"text": "How to reset a password",
         "metadata": {"lang": "en"}, "acl": {"groups": ["support"]}}},
        {"key": "kb/2", "op": "delete"}]})");
    auto post = [&](const std::string& path, const json& payload, const std::string& key,
                    const std::string& token) {
        httplib::Headers headers{{"Authorization", "Bearer " + token}};
        if (!key.empty()) {
            headers.emplace("Idempotency-Key", key);
        }
        return client.Post(path, headers, payload.dump(), "application/json");
    };
    auto first = post("/api/sources/kb/events", body, "req-1", admin);
    REQUIRE(first);
    REQUIRE_MESSAGE(first->status == 200, first->body);
    CHECK(json::parse(first->body) == json{{"accepted", 2}, {"first_seq", 1}, {"last_seq", 2}});
    auto again = post("/api/sources/kb/events", body, "req-1", admin);
    REQUIRE(again);
    CHECK(again->status == 200);
    CHECK(again->body == first->body);
    CHECK(again->get_header_value("Idempotent-Replayed") == "true");

    json bad = body;
    bad["events"][0]["document"]["text"] = 7;
    auto invalid = post("/api/sources/kb/events", bad, "req-2", admin);
    REQUIRE(invalid);
    CHECK(invalid->status == 400);
    CHECK(json::parse(invalid->body)["error"]["message"].get<std::string>().starts_with(
        "events[0].document.text"));
    auto no_key = post("/api/sources/kb/events", body, "", admin);
    REQUIRE(no_key);
    CHECK(no_key->status == 400);
    auto reused = post("/api/sources/kb/events", json{{"events", {body["events"][1]}}}, "req-1",
                       admin);
    REQUIRE(reused);
    CHECK(reused->status == 409);
    auto unknown = post("/api/sources/nope/events", body, "req-3", admin);
    REQUIRE(unknown);
    CHECK(unknown->status == 404);
    auto not_push = post("/api/sources/files/events", body, "req-4", admin);
    REQUIRE(not_push);
    CHECK(not_push->status == 409);
    auto anonymous = post("/api/sources/kb/events", body, "req-5", "slc_not_a_token");
    REQUIRE(anonymous);
    CHECK(anonymous->status == 401);
    // An unbound source has no running sync to wake.
    auto unbound = client.Post("/api/sources/kb/sync", httplib::Headers{{"Authorization",
                                                                         "Bearer " + admin}},
                               "{}", "application/json");
    REQUIRE(unbound);
    CHECK(unbound->status == 409);
    CHECK(json::parse(unbound->body)["error"]["message"].get<std::string>().find(
              "not bound to an index") != std::string::npos);

    // The sync engine's view, from another process while the server runs.
    auto [code, printed] = run_sluice({"source", "poll", "kb", "--data-dir", data});
    REQUIRE(code == 0);
    auto lines = json_lines(printed);
    REQUIRE(lines.size() == 3);
    CHECK(lines[0]["key"] == "kb/1");
    CHECK(lines[0]["document"]["acl"]["groups"] == json::array({"support"}));
    CHECK(lines[1]["op"] == "delete");
    CHECK(lines[2]["checkpoint"] == R"({"seq":2,"v":1})");
    std::filesystem::remove_all(dir);
}
