// The CPU backend against the reference (Hugging Face DbrxForCausalLM, fp32): logits at every
// position, greedy continuations, and incremental decoding through the paged KV cache, on the
// shared goldens and on the repository's own (tests/golden/dbrx, checkpoints rebuilt from seeds).
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>

#include "golden_checkpoint.h"
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

void check_golden(const std::string& dir, const nlohmann::json& golden) {
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

void check_golden(const std::string& name) {
    const std::string dir = golden_dir(name);
    check_golden(dir, load_json(dir + "/golden.json"));
}

void check_kv_cache(const std::string& dir, const nlohmann::json& golden, int32_t block_size) {
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

void check_kv_cache(const std::string& name, int32_t block_size) {
    const std::string dir = golden_dir(name);
    check_kv_cache(dir, load_json(dir + "/golden.json"), block_size);
}

// The folder of the repository's goldens: $SLUICE_DBRX_GOLDENS (set by ctest, and on machines
// where the goldens are made), else the source tree's.
std::filesystem::path own_goldens() {
    const char* env = std::getenv("SLUICE_DBRX_GOLDENS");
    return env != nullptr ? std::filesystem::path(env)
                          : std::filesystem::path(SLUICE_SOURCE_DIR) / "tests/golden/dbrx";
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

TEST_CASE("dbrx golden weights: the C++ generator gives golden_weights.py's values") {
    // Printed by tests/golden/dbrx/golden_weights.py (numpy) for seed 3.
    CHECK(testing::golden_fnv1a64("lm_head.weight") == 12351099237790609165ULL);
    CHECK(testing::golden_word(3, "lm_head.weight", 0) == 7798881770096228479ULL);
    CHECK(testing::golden_word(3, "lm_head.weight", 1) == 16256625806900472177ULL);
    CHECK(testing::golden_word(3, "transformer.norm_f.weight", 1) == 12442181092918773502ULL);
    const nlohmann::json lm_head = {{"name", "lm_head.weight"}, {"shape", {1024, 128}},
                                    {"range", 4096}, {"width", 0.15309310892394862}};
    const auto lm = testing::golden_tensor_values(3, lm_head);
    CHECK(lm[0] == 0.033935546875f);
    CHECK(lm[1] == -0.0146484375f);
    CHECK(lm[2] == 0.072998046875f);
    CHECK(lm.back() == -0.083251953125f);
    const nlohmann::json norm = {{"name", "transformer.norm_f.weight"}, {"shape", {128}},
                                 {"range", 400}, {"width", nullptr}};
    const auto n = testing::golden_tensor_values(3, norm);
    CHECK(n[0] == 0.96533203125f);
    CHECK(n.back() == 0.93798828125f);
    CHECK(testing::golden_token_ids(3, "len7", 7, 1024) ==
          std::vector<int32_t>{728, 402, 199, 86, 622, 1018, 176});
}

TEST_CASE("dbrx cpu: the repository's goldens match the reference") {
    // Made by tests/golden/dbrx/make_dbrx_golden.py where transformers runs; each covers what
    // the shared pair does not (README.md beside them).
    int found = 0;
    for (const char* name :
         {"c_d64_hd8_kv1", "d_d96_mha", "e_d128_clip02", "f_d128_sharded", "g_d128_bf16"}) {
        const std::filesystem::path file = own_goldens() / name / "golden.json";
        if (!std::filesystem::exists(file)) {
            MESSAGE("golden " << std::string(name) << " not generated yet: " << file.string());
            continue;
        }
        ++found;
        INFO("golden " << std::string(name));
        const auto golden = load_json(file.string());
        const auto& checkpoint = golden["checkpoint"];
        for (const auto& golden_case : golden["cases"]) {
            const auto ids = to_ids(golden_case["ids"]);
            CHECK(testing::golden_token_ids(checkpoint["seed"].get<uint64_t>(),
                                            golden_case["name"].get<std::string>(), ids.size(),
                                            checkpoint["config"]["vocab_size"].get<int64_t>()) ==
                  ids);
        }
        testing::TempDir dir;
        testing::write_golden_checkpoint(checkpoint, dir.path());
        check_golden(dir.path(), golden);
        for (int32_t block_size : {1, 16}) {
            check_kv_cache(dir.path(), golden, block_size);
        }
    }
    MESSAGE(found << " of 5 repository goldens checked");
}

}  // namespace sluice::inference
