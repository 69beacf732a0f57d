#pragma once
// Helpers for connector tests: temporary directories, files, and draining a source.

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "connectors/source.h"

namespace sluice::testing {

struct TempDir {
    std::filesystem::path path;
    explicit TempDir(const std::string& name) {
        std::random_device random;
        path = std::filesystem::temp_directory_path() /
               ("sluice-conn-" + name + "-" + std::to_string(random()));
        std::filesystem::remove_all(path);
        std::filesystem::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
};

inline void write_file(const std::filesystem::path& path, const std::string& content) {
    std::filesystem::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
}

inline std::string shared_data(const std::string& relative) {
    const char* dir = std::getenv("SLUICE_SHARED_DIR");
    // ctest sets SLUICE_SHARED_DIR; run by hand, the shared folder beside the checkout.
    return std::string(dir != nullptr ? dir : SLUICE_SOURCE_DIR "/../shared") + "/data/" + relative;
}

// Polls until caught up, collecting every event and error; returns the final checkpoint.
struct Drained {
    std::vector<connectors::ChangeEvent> events;
    std::vector<connectors::ErrorRecord> errors;
    std::string checkpoint;
    int batches = 0;
};

inline Drained drain(connectors::Source& source, std::string checkpoint,
                     std::size_t max_events = 1000, bool acknowledge = false) {
    Drained out;
    for (int i = 0; i < 100000; ++i) {
        auto batch = source.poll(checkpoint, connectors::PollOptions{max_events});
        REQUIRE_MESSAGE(batch.ok(), batch.status().to_string());
        ++out.batches;
        for (auto& event : batch->events) {
            out.events.push_back(std::move(event));
        }
        for (auto& error : batch->errors) {
            out.errors.push_back(std::move(error));
        }
        checkpoint = batch->checkpoint;
        if (acknowledge) {
            REQUIRE(source.acknowledge(checkpoint).ok());
        }
        if (batch->caught_up || batch->paused) {
            break;
        }
    }
    out.checkpoint = checkpoint;
    return out;
}

// The state a consumer converges on: key → document text, applying events in order.
inline void apply(std::map<std::string, std::string>& state,
                  const std::vector<connectors::ChangeEvent>& events) {
    for (const auto& event : events) {
        if (event.op == connectors::Op::kDelete) {
            state.erase(event.key);
        } else {
            state[event.key] = event.document.text;
        }
    }
}

}  // namespace sluice::testing
