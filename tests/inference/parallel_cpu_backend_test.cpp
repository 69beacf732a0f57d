// The parallel CPU backend (tensor and expert plans on 2, 3 and 4 local ranks; tensor x expert
// grids of 2 x 2, 2 x 4, 4 x 2 and 3 x 2) against the single-rank CPU backend and the reference on
// the golden checkpoints: logits at every position, greedy continuations, incremental decoding
// through the paged KV cache, hidden states, and batches mixing prefill and decode.
//
// Tolerance. A parallel rank sums partial products (the out-projection and w2 over heads or ffn
// slices, in rank order; in a grid w2 over the ffn slices of the expert group) where one rank
// sums whole dot products, so logits differ by fp32 rounding only: max |Δlogit| / max |logit| <=
// 1e-5 against one rank, and the golden files' own 1e-4 against the reference. Argmax and greedy
// continuations must be identical.
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

// tensor x expert ranks: a grid when both are above 1.
ParallelConfig sizes(int tensor, int expert) {
    ParallelConfig config;
    config.tensor = tensor;
    config.expert = expert;
    return config;
}

// "tensor 2 x expert 4"
std::string describe(const ParallelConfig& config) {
    return "tensor " + std::to_string(config.tensor) + " x expert " + std::to_string(config.expert);
}

// 2 x 4 and 4 x 2 put 8 ranks on the 8 heads of both goldens: one query head each, and KV heads
// replicated 4 (a_d64_gqa) or 2 (b_d128_clip8) times. 3 x 2 splits heads (8 over 6 ranks) and
// b_d128_clip8's ffn columns (160 over 3) unevenly.
const ParallelConfig kSettings[] = {sizes(2, 1), sizes(3, 1), sizes(4, 1), sizes(1, 2),
                                    sizes(1, 3), sizes(1, 4), sizes(2, 2), sizes(2, 4),
                                    sizes(4, 2), sizes(3, 2)};

void check_against_one_rank(const std::string& name) {
    const std::string dir = golden_dir(name);
    const auto golden = load_json(dir + "/golden.json");
    auto single = open_backend_for(dir, {});
    for (const ParallelConfig& setting : kSettings) {
        INFO(name << ", " << describe(setting));
        auto parallel = open_backend_for(dir, setting);
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

TEST_CASE(
    "parallel cpu: tensor, expert and grid plans match one rank and the reference (a_d64_gqa)") {
    check_against_one_rank("a_d64_gqa");  // 2 KV heads: 3 and 4 ranks replicate them
}

TEST_CASE(
    "parallel cpu: tensor, expert and grid plans match one rank and the reference (b_d128_clip8)") {
    check_against_one_rank("b_d128_clip8");
}

TEST_CASE("parallel cpu: incremental decoding through each rank's kv cache equals a full forward") {
    const std::string dir = golden_dir("a_d64_gqa");
    const auto check = load_json(dir + "/golden.json")["kv_cache_check"];
    const auto ids = to_ids(check["ids"]);
    const auto ref = check["incremental_last_logits"].get<std::vector<float>>();
    for (const ParallelConfig& setting : kSettings) {
        INFO(describe(setting));
        auto backend = open_backend_for(dir, setting, 16);
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
    for (const ParallelConfig& setting : kSettings) {
        INFO(describe(setting));
        auto parallel = open_backend_for(dir, setting);
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
    }
    // Four ranks, two KV heads: each KV head is held by two ranks. The 2 x 2 grid holds the
    // same bytes as four ranks of either plan: a quarter of the heads and the vocabulary, and
    // half the experts' ffn columns of half the experts.
    for (const ParallelConfig& setting :
         {plan(ParallelPlan::kTensor, 4), plan(ParallelPlan::kExpert, 4), sizes(2, 2)}) {
        INFO(describe(setting));
        const BackendMemory four = open_backend_for(dir, setting)->memory();
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
          "config field 'parallel.tensor': 9 ranks, but the model has only 8 attention heads");
    CHECK(open(plan(ParallelPlan::kExpert, 9)).status().message() ==
          "config field 'parallel.expert': 9 ranks, but the model has only 8 attention heads");
    // Attention is split across all ranks of a grid, so 4 x 4 needs 16 heads.
    const auto grid_too_big = open(sizes(4, 4)).status();
    CHECK(grid_too_big.code() == StatusCode::kInvalidArgument);
    CHECK(grid_too_big.message() ==
          "config field 'parallel': tensor 4 x expert 4 = 16 ranks, but the model has only 8 "
          "attention heads");
    ParallelConfig two_nodes = plan(ParallelPlan::kTensor, 2);
    two_nodes.nodes = {"10.0.0.1:29500", "10.0.0.2:29500"};
    // Across nodes the ranks listen at this node's own address (nodes[node]'s host): one this
    // machine does not have is an error naming it, before anything waits for the other node.
    const auto nodes = open(two_nodes).status();
    INFO(nodes.to_string());
    CHECK(nodes.code() == StatusCode::kIoError);
    CHECK(nodes.message().find("10.0.0.1") != std::string::npos);
    ParallelConfig one_node = plan(ParallelPlan::kExpert, 2);
    one_node.nodes = {"127.0.0.1:29500"};
    CHECK(open(one_node).ok());
    ParallelConfig grid_one_node = sizes(2, 2);
    grid_one_node.nodes = {"127.0.0.1:29500"};
    auto opened = open(grid_one_node);
    REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
    CHECK((*opened)->name() == "cpu-grid-parallel-4");
}

TEST_CASE("parallel config: sizes the model cannot take are refused naming the field") {
    ModelConfig dbrx;  // DBRX's counts, where heads allow more ranks than the experts do
    dbrx.d_model = 6144;
    dbrx.n_head = 48;
    dbrx.n_head_kv = 8;
    dbrx.n_expert = 16;
    dbrx.n_ff = 10752;
    CHECK(check_parallel_fits_model(sizes(2, 16), dbrx).ok());
    CHECK(check_parallel_fits_model(sizes(3, 16), dbrx).ok());  // 48 ranks, one head each
    CHECK(check_parallel_fits_model(sizes(1, 32), dbrx).message() ==
          "config field 'parallel.expert': 32 expert groups, but the model has only 16 experts");
    CHECK(check_parallel_fits_model(sizes(7, 7), dbrx).message() ==
          "config field 'parallel': tensor 7 x expert 7 = 49 ranks, but the model has only 48 "
          "attention heads");
    dbrx.n_ff = 3;
    CHECK(check_parallel_fits_model(sizes(4, 2), dbrx).message() ==
          "config field 'parallel.tensor': 4 ranks per expert, but the model has only 3 ffn "
          "columns per expert");
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
    config.expert = 2;
    CHECK(validate_parallel_config(config).ok());
    CHECK(config.plan() == ParallelPlan::kGrid);
    CHECK(config.n_ranks() == 8);
    // Rank 6 is tensor index 2 of expert group 1.
    CHECK(config.expert_group(6) == 1);
    CHECK(config.tensor_index(6) == 2);
    config.tensor = 4096;
    CHECK(validate_parallel_config(config).message() ==
          "config field 'parallel': tensor 4096 x expert 2 = 8192 ranks, expected at most 4096");
    config.tensor = 1 << 20;  // the product overflows an int
    config.expert = 1 << 20;
    CHECK(validate_parallel_config(config).code() == StatusCode::kInvalidArgument);
    config.tensor = 4;
    config.expert = 4;
    for (const char* bad : {"host", ":80", "host:", "host:0", "host:65536", "host:8o"}) {
        config.nodes = {"a:1", bad};
        const Status s = validate_parallel_config(config);
        CHECK_MESSAGE(s.code() == StatusCode::kInvalidArgument, bad);
        CHECK(s.message().find("config field 'parallel.nodes[1]'") == 0);
    }
    config.nodes = {"10.0.0.1:29500", "[fe80::1]:29500", "node-b:1", "node-c:2"};
    CHECK(validate_parallel_config(config).ok());
    CHECK(config.n_nodes() == 4);
    CHECK(config.ranks_per_node() == 4);
    config.node = 3;
    CHECK(validate_parallel_config(config).ok());
    config.node = 4;
    CHECK(validate_parallel_config(config).message() ==
          "config field 'parallel.node': 4, but parallel.nodes names 4 nodes (indices 0..3)");
    config.node = -1;
    CHECK(validate_parallel_config(config).code() == StatusCode::kInvalidArgument);
    config.node = 0;
    config.nodes.pop_back();  // 16 ranks over 3 nodes
    CHECK(validate_parallel_config(config).message() ==
          "config field 'parallel.nodes': 3 nodes cannot share 16 ranks evenly (every node "
          "brings the same number of GPUs)");
    config.nodes = {"solo:1"};  // one entry: this node only
    CHECK(config.n_nodes() == 1);
    CHECK_FALSE(config.multi_node());
    config.node = 1;
    CHECK(validate_parallel_config(config).message() ==
          "config field 'parallel.node': 1, but parallel.nodes names 1 node (index 0)");
    config.node = 0;
    config.join_timeout_s = 0;
    CHECK(validate_parallel_config(config).message() ==
          "config field 'parallel.join_timeout_s': 0, expected at least 1 second");
}

}  // namespace
}  // namespace sluice::inference
