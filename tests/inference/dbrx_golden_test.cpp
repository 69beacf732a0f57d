// The CPU backend against the reference (Hugging Face DbrxForCausalLM, fp32): logits at every
// position, greedy continuations, and incremental decoding through the paged KV cache.
#include <doctest/doctest.h>

#include "inference/cpu_backend.h"
#include "inference_test_support.h"

namespace sluice::inference {
namespace {

using testing::golden_dir;
using testing::load_json;
using testing::relative_max_diff;
using testing::scrambled_blocks;
using testing::to_ids;

constexpr double kTolerance = 1e-4;  // max |Δlogit| / max |logit|, the golden files' own bound

std::unique_ptr<Backend> open_golden(const std::string& dir, int32_t block_size = 4) {
    auto backend = open_cpu_backend(dir, {WeightFormat::kAsStored, 2});
    REQUIRE_MESSAGE(backend.ok(), backend.status().to_string());
    REQUIRE((*backend)->configure_kv_cache({block_size, 64}).ok());
    return std::move(*backend);
}

void check_case_logits(Backend& backend, const nlohmann::json& golden_case) {
    const auto ids = to_ids(golden_case["ids"]);
    const auto rows = testing::forward_all(backend, ids, scrambled_blocks(64));
    const auto& ref = golden_case["logits"];
    REQUIRE(rows.size() == ref.size());
    for (size_t p = 0; p < rows.size(); ++p) {
        const double diff = relative_max_diff(rows[p], ref[p].get<std::vector<float>>());
        INFO("case " << golden_case["name"].get<std::string>() << ", position " << p);
        CHECK(diff <= kTolerance);
        CHECK(testing::argmax(rows[p]) == golden_case["argmax"][p].get<int32_t>());
    }
}

void check_golden(const std::string& name) {
    const std::string dir = golden_dir(name);
    const auto golden = load_json(dir + "/golden.json");
    auto backend = open_golden(dir);
    for (const auto& golden_case : golden["cases"]) {
        check_case_logits(*backend, golden_case);
        const auto ids = to_ids(golden_case["ids"]);
        const auto expected = to_ids(golden_case["greedy"]);
        const auto got = testing::greedy(*backend, ids, static_cast<int>(expected.size()),
                                         scrambled_blocks(64));
        CHECK_MESSAGE(got == expected, "greedy continuation of case "
                                           << golden_case["name"].get<std::string>());
    }
}

void check_kv_cache(const std::string& name, int32_t block_size) {
    const std::string dir = golden_dir(name);
    const auto golden = load_json(dir + "/golden.json");
    const auto& check = golden["kv_cache_check"];
    const auto ids = to_ids(check["ids"]);
    auto backend = open_golden(dir, block_size);
    const auto blocks = scrambled_blocks(64);
    const auto incremental = testing::forward_incremental(*backend, ids, blocks);
    const auto full = testing::forward_all(*backend, ids, blocks).back();
    const auto ref_full = check["full_forward_last_logits"].get<std::vector<float>>();
    const auto ref_incremental = check["incremental_last_logits"].get<std::vector<float>>();
    CHECK(relative_max_diff(incremental, ref_incremental) <= kTolerance);
    CHECK(relative_max_diff(full, ref_full) <= kTolerance);
    CHECK(relative_max_diff(incremental, full) <= kTolerance);
}

}  // namespace

TEST_CASE("dbrx cpu: logits and greedy continuations match the reference (a_d64_gqa)") {
    check_golden("a_d64_gqa");
}

TEST_CASE("dbrx cpu: logits and greedy continuations match the reference (b_d128_clip8)") {
    check_golden("b_d128_clip8");
}

TEST_CASE("dbrx cpu: incremental decoding through the paged kv cache equals a full forward") {
    for (int32_t block_size : {1, 4, 16}) {
        INFO("block size " << block_size);
        check_kv_cache("a_d64_gqa", block_size);
        check_kv_cache("b_d128_clip8", block_size);
    }
}

}  // namespace sluice::inference
