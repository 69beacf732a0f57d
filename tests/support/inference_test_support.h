#pragma once
// Helpers shared by the inference tests: where the golden files are, temporary folders, and
// running whole sequences through a Backend.

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "inference/backend.h"
#include "inference/tiny_model.h"

namespace sluice::inference::testing {

// $SLUICE_SHARED_DIR/golden/dbrx/<name>; fails the test with a clear message when absent.
inline std::string golden_dir(const std::string& name) {
    const char* shared = std::getenv("SLUICE_SHARED_DIR");
    REQUIRE_MESSAGE(shared != nullptr,
                    "SLUICE_SHARED_DIR is not set; it must name the folder holding golden/dbrx");
    const std::filesystem::path dir = std::filesystem::path(shared) / "golden" / "dbrx" / name;
    REQUIRE_MESSAGE(std::filesystem::exists(dir / "golden.json"),
                    "golden files missing: " << (dir / "golden.json").string());
    return dir.string();
}

inline nlohmann::json load_json(const std::string& path) {
    std::ifstream in(path);
    REQUIRE_MESSAGE(in.good(), "cannot open " << path);
    std::stringstream text;
    text << in.rdbuf();
    return nlohmann::json::parse(text.str());
}

// A fresh folder under the system temp dir, removed with everything in it on destruction.
class TempDir {
public:
    TempDir() {
        std::random_device device;
        path_ = std::filesystem::temp_directory_path() /
                ("sluice-test-" + std::to_string(device()) + std::to_string(device()));
        std::filesystem::create_directories(path_);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    std::string path() const { return path_.string(); }
    std::string file(const std::string& name) const { return (path_ / name).string(); }

private:
    std::filesystem::path path_;
};

// The tiny preset with `seed`, written once per test executable and seed (for tests that only
// read it) and removed when the executable ends.
inline const std::string& tiny_model_dir(uint64_t seed) {
    static std::mutex mutex;
    static std::map<uint64_t, std::pair<std::unique_ptr<TempDir>, std::string>> dirs;
    std::lock_guard lock(mutex);
    auto& [dir, path] = dirs[seed];
    if (dir == nullptr) {
        dir = std::make_unique<TempDir>();
        auto summary = write_tiny_model(dir->path(), {.preset = TinyPreset::kTiny, .seed = seed});
        REQUIRE_MESSAGE(summary.ok(), summary.status().to_string());
        path = dir->path();
    }
    return path;
}

// max |a - b| / max |ref| over one row.
inline double relative_max_diff(const std::vector<float>& got, const std::vector<float>& ref) {
    REQUIRE(got.size() == ref.size());
    double max_diff = 0;
    double max_ref = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        max_diff = std::max(max_diff, std::fabs(static_cast<double>(got[i]) - ref[i]));
        max_ref = std::max(max_ref, std::fabs(static_cast<double>(ref[i])));
    }
    return max_diff / std::max(max_ref, 1e-30);
}

inline std::vector<int32_t> to_ids(const nlohmann::json& array) {
    return array.get<std::vector<int32_t>>();
}

// A block table of `n` blocks in a scrambled order, so paging is exercised.
inline std::vector<int32_t> scrambled_blocks(int32_t n, int32_t offset = 0) {
    std::vector<int32_t> table;
    for (int32_t i = 0; i < n; ++i) {
        table.push_back(offset + (i * 7 + 3) % n);
    }
    return table;
}

// Runs `ids` in one step from position 0 and returns a row of logits per position.
inline std::vector<std::vector<float>> forward_all(Backend& backend,
                                                   const std::vector<int32_t>& ids,
                                                   const std::vector<int32_t>& blocks) {
    ForwardBatch batch;
    batch.sequences.push_back({ids, 0, blocks, LogitsRows::kAll});
    auto out = backend.forward(batch);
    REQUIRE_MESSAGE(out.ok(), out.status().to_string());
    std::vector<std::vector<float>> rows;
    for (int64_t i = 0; i < out->n_rows[0]; ++i) {
        auto row = out->row(0, i);
        rows.emplace_back(row.begin(), row.end());
    }
    return rows;
}

// Feeds `ids` one token per step, returning the last step's logits.
inline std::vector<float> forward_incremental(Backend& backend, const std::vector<int32_t>& ids,
                                              const std::vector<int32_t>& blocks) {
    std::vector<float> last;
    for (size_t i = 0; i < ids.size(); ++i) {
        ForwardBatch batch;
        batch.sequences.push_back({std::span<const int32_t>(&ids[i], 1),
                                   static_cast<int32_t>(i), blocks, LogitsRows::kLast});
        auto out = backend.forward(batch);
        REQUIRE_MESSAGE(out.ok(), out.status().to_string());
        auto row = out->row(0);
        last.assign(row.begin(), row.end());
    }
    return last;
}

inline int32_t argmax(std::span<const float> row) {
    return static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
}

// Greedy decoding with the KV cache: prefill `ids`, then feed each chosen token back.
// Logits rows held to a reference at a loose (bf16-level) bound: the worst max |Δ| / max |ref|
// over the rows, and the greedy choice checked at every row whose reference top-2 margin, over
// the row's scale, exceeds twice that worst difference (a narrower margin may flip honestly).
struct MarginChecked {
    double worst = 0;
    int compared = 0;  // rows whose greedy choice was checked
};
inline MarginChecked check_greedy_where_margin_allows(const std::vector<std::vector<float>>& rows,
                                                      const std::vector<std::vector<float>>& ref) {
    REQUIRE(rows.size() == ref.size());
    MarginChecked out;
    for (size_t p = 0; p < rows.size(); ++p) {
        out.worst = std::max(out.worst, relative_max_diff(rows[p], ref[p]));
    }
    for (size_t p = 0; p < rows.size(); ++p) {
        std::vector<float> sorted = ref[p];
        std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<>());
        const float scale = std::max(std::fabs(sorted.front()),
                                     std::fabs(*std::min_element(ref[p].begin(), ref[p].end())));
        if ((sorted[0] - sorted[1]) / scale > 2 * out.worst) {
            ++out.compared;
            CHECK(argmax(rows[p]) == argmax(ref[p]));
        }
    }
    return out;
}

inline std::vector<int32_t> greedy(Backend& backend, const std::vector<int32_t>& ids, int n,
                                   const std::vector<int32_t>& blocks) {
    ForwardBatch batch;
    batch.sequences.push_back({ids, 0, blocks, LogitsRows::kLast});
    auto out = backend.forward(batch);
    REQUIRE_MESSAGE(out.ok(), out.status().to_string());
    std::vector<int32_t> generated{argmax(out->row(0))};
    while (static_cast<int>(generated.size()) < n) {
        const int32_t n_past = static_cast<int32_t>(ids.size() + generated.size() - 1);
        ForwardBatch step;
        step.sequences.push_back(
            {std::span<const int32_t>(&generated.back(), 1), n_past, blocks, LogitsRows::kLast});
        auto next = backend.forward(step);
        REQUIRE_MESSAGE(next.ok(), next.status().to_string());
        generated.push_back(argmax(next->row(0)));
    }
    return generated;
}

}  // namespace sluice::inference::testing
