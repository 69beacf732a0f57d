#pragma once
// What the crash tests of the sync engine share (tests/integration/sync_crash*_test.cpp): the
// server's environment, running and killing it, waiting for it to catch up, and comparing the
// index it left with the rows of its source.

#include <doctest/doctest.h>
#include <httplib.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "child_process.h"
#include "retrieval/index.h"
#include "sluice_server.h"

namespace sluice::testing::sync_crash {

using namespace std::chrono_literals;

// A row of the source as the index must hold it: its text and its one ACL group.
struct Row {
    std::string body;
    std::string group;
};

inline std::map<std::string, std::string> server_environment() {
    return {{"SLUICE_LOG_ACCESS_LOG", "false"},
            {"SLUICE_SERVER_METRICS_PUBLIC", "true"},
            // Small batches: a kill lands inside the initial sync, between many commits.
            {"SLUICE_SYNC_MAX_BATCH", "16"},
            {"SLUICE_SYNC_IDLE_WAIT_S", "0.2"}};
}

inline std::vector<std::string> serve_argv(const std::filesystem::path& data) {
    return {SLUICE_BINARY, "serve", "--port", "0", "--data-dir", data.string()};
}

// Runs `argv` and kills it with SIGKILL after `delay` (unless it has exited by then).
inline void run_and_kill(const std::vector<std::string>& argv, std::chrono::milliseconds delay) {
    ChildProcess child(argv, server_environment());
    REQUIRE(child.started());
    std::this_thread::sleep_for(delay);
    child.signal(SIGKILL);
    child.wait(20s);
}

// The value of a per-source metric; -1 when the source has none (it failed to open).
inline double metric(int port, const std::string& name) {
    httplib::Client client("127.0.0.1", port);
    auto result = client.Get("/metrics");
    REQUIRE(result);
    auto at = result->body.find("\n" + name + "{");
    if (at == std::string::npos) {
        return -1;
    }
    auto space = result->body.find("} ", at);
    return std::stod(result->body.substr(space + 2));
}

// Restarts the server and waits until its sync is caught up, then stops it gracefully.
inline void catch_up_with_server(const std::filesystem::path& data) {
    ChildProcess server(serve_argv(data), server_environment());
    REQUIRE(server.started());
    const int port = wait_listening(server, 30s).port;
    bool caught_up = false;
    for (int i = 0; i < 600 && !caught_up; ++i) {
        caught_up = metric(port, "sluice_source_caught_up") == 1 &&
                    metric(port, "sluice_source_lag_events") == 0;
        if (!caught_up) {
            std::this_thread::sleep_for(50ms);
        }
    }
    REQUIRE_MESSAGE(caught_up, "sync never caught up: " << server.output());
    server.signal(SIGTERM);
    REQUIRE(server.wait(30s) == 0);
}

inline void check_index_matches(const std::filesystem::path& data,
                                const std::map<std::string, Row>& rows, unsigned seed) {
    auto opened =
        sluice::retrieval::Index::open(data / "indexes" / "kb", sluice::retrieval::IndexDeps{});
    REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
    const auto& index = **opened;
    std::map<std::string, Row> held;
    std::size_t chunk_total = 0;
    REQUIRE(index
                .for_each_document([&](const sluice::retrieval::DocumentRecord& record) {
                    auto chunks = index.chunks_of(record.key);
                    REQUIRE(chunks.ok());
                    chunk_total += chunks->size();
                    REQUIRE_MESSAGE(chunks->size() == 1, "seed " << seed << ": " << record.key
                                                                 << " has " << chunks->size()
                                                                 << " chunks");
                    const auto& groups = chunks->front().acl.groups;
                    held[record.key] =
                        Row{chunks->front().text, groups.size() == 1 ? groups.front() : "?"};
                    return true;
                })
                .ok());
    std::vector<std::string> missing;
    std::vector<std::string> resurrected;
    std::vector<std::string> stale;
    for (const auto& [key, row] : rows) {
        auto it = held.find(key);
        if (it == held.end()) {
            missing.push_back(key);
        } else if (it->second.body != row.body || it->second.group != row.group) {
            stale.push_back(key + " (index '" + it->second.body + "'/" + it->second.group +
                            ", table '" + row.body + "'/" + row.group + ")");
        }
    }
    for (const auto& [key, row] : held) {
        if (rows.count(key) == 0) {
            resurrected.push_back(key);
        }
    }
    INFO("seed " << seed);
    CHECK_MESSAGE(missing.empty(), "missing: " << nlohmann::json(missing).dump());
    CHECK_MESSAGE(resurrected.empty(), "deleted but held: " << nlohmann::json(resurrected).dump());
    CHECK_MESSAGE(stale.empty(), "stale: " << nlohmann::json(stale).dump());
    // No duplicate chunk, and the vectors replayed from the snapshot agree with the store.
    const auto stats = index.stats();
    CHECK(stats.documents == rows.size());
    CHECK(stats.chunks == chunk_total);
    CHECK(stats.vectors == chunk_total);
}

}  // namespace sluice::testing::sync_crash
