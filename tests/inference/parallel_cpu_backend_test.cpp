// The parallel CPU backend (tensor and expert plans, 2, 3 and 4 local ranks) against the
// single-rank CPU backend and the reference on the golden checkpoints: logits at every
// position, greedy continuations, incremental decoding through the paged KV cache, hidden
// states, and batches mixing prefill and decode.
//
// Tolerance. A parallel rank sums partial products (the out-projection and w2 over heads or ffn
// slices, in rank order) where one rank sums whole dot products, so logits differ by fp32
// rounding only: max |Δlogit| / max |logit| <= 1e-5 against one rank, and the golden files' own
// 1e-4 against the reference. Argmax and greedy continuations must be identical.
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

constexpr double kToleranceVsOneRank = 1e-5;
constexpr double kToleranceVsReference = 1e-4;

std::unique_ptr<Backend> open_backend_for(const std::string& dir, ParallelConfig parallel,
                                          int32_t block_size = 4) {
    CpuBackendOptions options;
    options.n_threads = 1;  // per rank
    options.parallel = std::move(parallel);
    auto backend = open_cpu_backend(dir, options);
    REQUIRE_MESSAGE(backend.ok(), backend.status().to_string());
    REQUIRE((*backend)->configure_kv_cache({block_size, 64}).ok());
    return std::move(*backend);
}

ParallelConfig plan(ParallelPlan kind, int n_ranks) {
    ParallelConfig config;
    (kind == ParallelPlan::kTensor ? config.tensor : config.expert) = n_ranks;
    return config;
}

struct Setting {
    ParallelPlan kind;
    int n_ranks;
};
const Setting kSettings[] = {{ParallelPlan::kTensor, 2}, {ParallelPlan::kTensor, 3},
                             {ParallelPlan::kTensor, 4}, {ParallelPlan::kExpert, 2},
                             {ParallelPlan::kExpert, 3}, {ParallelPlan::kExpert, 4}};

void check_against_one_rank(const std::string& name) {
    const std::string dir = golden_dir(name);
    const auto golden = load_json(dir + "/golden.json");
    auto single = open_backend_for(dir, {});
    for (const Setting& setting : kSettings) {
        INFO(name << ", " << parallel_plan_name(setting.kind) << " plan, " << setting.n_ranks
                  << " ranks");
        auto parallel = open_backend_for(dir, plan(setting.kind, setting.n_ranks));
        for (const auto& golden_case : golden["cases"]) {
            INFO("case " << golden_case["name"].get<std::string>());
            const auto ids = to_ids(golden_case["ids"]);
            const auto rows = testing::forward_all(*parallel, ids, scrambled_blocks(64));
            const auto one = testing::forward_all(*single, ids, scrambled_blocks(64));
            const auto& ref = golden_case["logits"];
            REQUIRE(rows.size() == ref.size());
            for (size_t p = 0; p < rows.size(); ++p) {
                INFO("position " << p);
                CHECK(relative_max_diff(rows[p], one[p]) <= kToleranceVsOneRank);
                CHECK(relative_max_diff(rows[p], ref[p].get<std::vector<float>>()) <=
                      kToleranceVsReference);
                CHECK(testing::argmax(rows[p]) == golden_case["argmax"][p].get<int32_t>());
            }
            const auto expected = to_ids(golden_case["greedy"]);
            CHECK(testing::greedy(*parallel, ids, static_cast<int>(expected.size()),
                                  scrambled_blocks(64)) == expected);
        }
    }
}

TEST_CASE("parallel cpu: tensor and expert plans match one rank and the reference (a_d64_gqa)") {
    check_against_one_rank("a_d64_gqa");  // 2 KV heads: 3 and 4 ranks replicate them
}

TEST_CASE("parallel cpu: tensor and expert plans match one rank and the reference (b_d128_clip8)") {
    check_against_one_rank("b_d128_clip8");
}

TEST_CASE("parallel cpu: incremental decoding through each rank's kv cache equals a full forward") {
    const std::string dir = golden_dir("a_d64_gqa");
    const auto check = load_json(dir + "/golden.json")["kv_cache_check"];
    const auto ids = to_ids(check["ids"]);
    const auto ref = check["incremental_last_logits"].get<std::vector<float>>();
    for (const Setting& setting : kSettings) {
        INFO(parallel_plan_name(setting.kind) << " plan, " << setting.n_ranks << " ranks");
        auto backend = open_backend_for(dir, plan(setting.kind, setting.n_ranks), 16);
        const auto blocks = scrambled_blocks(64);
        const auto incremental = testing::forward_incremental(*backend, ids, blocks);
        CHECK(relative_max_diff(incremental, ref) <= kToleranceVsReference);
        // Copy-on-write of a block copies every rank's heads.
        REQUIRE(backend->copy_kv_block(blocks[0], 63).ok());
    }
}

TEST_CASE("parallel cpu: a batch mixing prefill and decode gives each sequence its rows alone") {
    const std::string dir = golden_dir("b_d128_clip8");
    auto single = open_backend_for(dir, {});
    const std::vector<int32_t> long_prompt = {5, 17, 99, 3, 250, 1000, 42, 7, 8, 9, 10, 11,
                                              12, 13, 14, 15, 16, 18, 19, 20};
    const std::vector<int32_t> short_prompt = {300, 301, 302};
    const std::vector<int32_t> next = {77};
    for (const Setting& setting : kSettings) {
        INFO(parallel_plan_name(setting.kind) << " plan, " << setting.n_ranks << " ranks");
        auto parallel = open_backend_for(dir, plan(setting.kind, setting.n_ranks));
        std::vector<std::vector<float>> rows[2];
        std::vector<std::vector<float>> hidden[2];
        Backend* backends[2] = {single.get(), parallel.get()};
        for (int b = 0; b < 2; ++b) {
            const auto blocks_a = scrambled_blocks(16, 0);
            const auto blocks_b = scrambled_blocks(16, 16);
            // Step 1: prefill the short prompt. Step 2: decode it while prefilling the long one.
            ForwardBatch first;
            first.sequences.push_back({short_prompt, 0, blocks_a, LogitsRows::kLast});
            REQUIRE(backends[b]->forward(first).ok());
            ForwardBatch mixed;
            mixed.sequences.push_back({next, 3, blocks_a, LogitsRows::kLast});
            SequenceStep prefill{long_prompt, 0, blocks_b, LogitsRows::kAll};
            prefill.hidden = true;
            mixed.sequences.push_back(prefill);
            auto out = backends[b]->forward(mixed);
            REQUIRE_MESSAGE(out.ok(), out.status().to_string());
            for (size_t s = 0; s < 2; ++s) {
                for (int64_t i = 0; i < out->n_rows[s]; ++i) {
                    const auto row = out->row(s, i);
                    rows[b].emplace_back(row.begin(), row.end());
                }
            }
            for (int64_t i = 0; i < out->hidden_n_rows[1]; ++i) {
                const auto row = out->hidden_row(1, i);
                hidden[b].emplace_back(row.begin(), row.end());
            }
        }
        REQUIRE(rows[0].size() == 1 + long_prompt.size());
        REQUIRE(rows[1].size() == rows[0].size());
        for (size_t r = 0; r < rows[0].size(); ++r) {
            CHECK(relative_max_diff(rows[1][r], rows[0][r]) <= kToleranceVsOneRank);
        }
        REQUIRE(hidden[1].size() == long_prompt.size());
        for (size_t r = 0; r < hidden[0].size(); ++r) {
            CHECK(relative_max_diff(hidden[1][r], hidden[0][r]) <= kToleranceVsOneRank);
        }
    }
}

TEST_CASE("parallel cpu: ranks hold only their shards of the weights and of the kv cache") {
    // a_d64_gqa: d 64, 8 heads / 2 KV heads (head_dim 8), 16 experts, 2 layers, f32 weights.
    const std::string dir = golden_dir("a_d64_gqa");
    auto single = open_backend_for(dir, {});
    const BackendMemory one = single->memory();
    const ModelConfig& c = single->config();
    const int64_t router_bytes = c.n_layer * c.n_expert * c.d_model * 4;
    for (ParallelPlan kind : {ParallelPlan::kTensor, ParallelPlan::kExpert}) {
        INFO(parallel_plan_name(kind) << " plan");
        // Two ranks split every matrix exactly; only the router is held by both.
        const BackendMemory two = open_backend_for(dir, plan(kind, 2))->memory();
        CHECK(two.weight_bytes == one.weight_bytes + router_bytes);
        CHECK(two.kv_cache_bytes == one.kv_cache_bytes);
        // Four ranks, two KV heads: each KV head is held by two ranks.
        const BackendMemory four = open_backend_for(dir, plan(kind, 4))->memory();
        const int64_t kv_rows_replicated = c.n_layer * 2 * c.n_embd_kv() * c.d_model * 4;
        CHECK(four.weight_bytes == one.weight_bytes + 3 * router_bytes + kv_rows_replicated);
        CHECK(four.kv_cache_bytes == 2 * one.kv_cache_bytes);
    }
}

TEST_CASE("parallel cpu: settings the model or the cpu backend cannot take are refused") {
    const std::string dir = golden_dir("a_d64_gqa");
    auto open = [&](ParallelConfig parallel) {
        CpuBackendOptions options;
        options.n_threads = 1;
        options.parallel = std::move(parallel);
        return open_cpu_backend(dir, options);
    };
    const auto too_many_heads = open(plan(ParallelPlan::kTensor, 9)).status();
    CHECK(too_many_heads.code() == StatusCode::kInvalidArgument);
    CHECK(too_many_heads.message() ==
          "parallel tensor plan: 9 ranks, but the model has only 8 attention heads");
    ParallelConfig two_nodes = plan(ParallelPlan::kTensor, 2);
    two_nodes.nodes = {"10.0.0.1:29500", "10.0.0.2:29500"};
    const auto nodes = open(two_nodes).status();
    CHECK(nodes.code() == StatusCode::kInvalidArgument);
    CHECK(nodes.message().find("config field 'parallel.nodes': 2 nodes") == 0);
    ParallelConfig one_node = plan(ParallelPlan::kExpert, 2);
    one_node.nodes = {"127.0.0.1:29500"};
    CHECK(open(one_node).ok());
    ParallelConfig mixed;
    mixed.tensor = 2;
    mixed.expert = 4;
    CHECK(open(mixed).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("parallel config: validation names the field") {
    ParallelConfig config;
    CHECK(validate_parallel_config(config).ok());
    config.tensor = 0;
    CHECK(validate_parallel_config(config).message() ==
          "config field 'parallel.tensor': 0, expected at least 1");
    config = {};
    config.expert = -2;
    CHECK(validate_parallel_config(config).message() ==
          "config field 'parallel.expert': -2, expected at least 1");
    config = {};
    config.tensor = 4;
    config.expert = 4;
    CHECK(validate_parallel_config(config).ok());
    CHECK(config.plan() == ParallelPlan::kExpert);
    CHECK(config.n_ranks() == 4);
    for (const char* bad : {"host", ":80", "host:", "host:0", "host:65536", "host:8o"}) {
        config.nodes = {"a:1", bad};
        const Status s = validate_parallel_config(config);
        CHECK_MESSAGE(s.code() == StatusCode::kInvalidArgument, bad);
        CHECK(s.message().find("config field 'parallel.nodes[1]'") == 0);
    }
    config.nodes = {"10.0.0.1:29500", "[fe80::1]:29500", "node-b:1"};
    CHECK(validate_parallel_config(config).ok());
}

}  // namespace
}  // namespace sluice::inference
