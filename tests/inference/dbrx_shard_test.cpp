// The slices of DBRX's tensors a rank of a parallel plan holds (inference/dbrx_shard.h), which
// the CUDA backend uploads: Wqkv's three row runs and out_proj's columns per head, every
// expert's ffn rows, lm_head's vocabulary rows, the fp8 scales that follow them, and the int4
// groups a split must not cut.
#include "inference/dbrx_shard.h"

#include <doctest/doctest.h>

#include <algorithm>

namespace sluice::inference {
namespace {

// DBRX's shapes, small: 8 query heads of 16 over 2 KV heads, 4 experts of ffn 256.
ModelConfig small_config() {
    ModelConfig config;
    config.d_model = 128;
    config.n_head = 8;
    config.n_head_kv = 2;
    config.n_ff = 256;
    config.n_expert = 4;
    config.n_expert_used = 2;
    config.n_vocab = 1000;
    config.n_layer = 1;
    config.int4_group_size = 64;
    return config;
}

DbrxShard shard(const ModelConfig& config, int tensor, int rank) {
    ParallelConfig parallel;
    parallel.tensor = tensor;
    auto result = shard_for_rank(config, parallel, rank);
    REQUIRE_MESSAGE(result.ok(), result.status().to_string());
    return *result;
}

const std::string kWqkv = "transformer.blocks.0.norm_attn_norm.attn.Wqkv.weight";
const std::string kOut = "transformer.blocks.0.norm_attn_norm.attn.out_proj.weight";
const std::string kW1 = "transformer.blocks.0.ffn.experts.mlp.w1";
const std::string kW2 = "transformer.blocks.0.ffn.experts.mlp.w2";

TEST_CASE("dbrx shard: wqkv holds the rank's query heads and the kv heads they read") {
    const ModelConfig config = small_config();  // head_dim 16, n_embd_kv 32, n_qkv 192
    // 2 ranks: heads 0-3 read kv head 0, heads 4-7 kv head 1.
    const TensorSlice r1 = tensor_slice(kWqkv, 192, 128, config, shard(config, 2, 1));
    CHECK(r1.rows == std::vector<Split>{{64, 64}, {128 + 16, 16}, {160 + 16, 16}});
    CHECK(r1.cols.begin == 0);
    CHECK(r1.cols.count == 128);
    CHECK(r1.n_rows() == 96);
    // 4 ranks outnumber the 2 kv heads: ranks 0 and 1 both hold (replicate) kv head 0.
    for (const int rank : {0, 1}) {
        const TensorSlice s = tensor_slice(kWqkv, 192, 128, config, shard(config, 4, rank));
        CHECK(s.rows == std::vector<Split>{{rank * 32, 32}, {128, 16}, {160, 16}});
    }
    // 3 ranks, uneven: rank 1 has heads 2, 3, 4, which read kv heads 0 and 1.
    const TensorSlice u = tensor_slice(kWqkv, 192, 128, config, shard(config, 3, 1));
    CHECK(u.rows == std::vector<Split>{{32, 48}, {128, 32}, {160, 32}});
}

TEST_CASE("dbrx shard: out_proj holds its heads' columns, experts their ffn rows, lm_head vocab") {
    const ModelConfig config = small_config();
    const DbrxShard s = shard(config, 4, 3);
    const TensorSlice out = tensor_slice(kOut, 128, 128, config, s);
    CHECK(out.rows == std::vector<Split>{{0, 128}});
    CHECK(out.cols.begin == 96);
    CHECK(out.cols.count == 32);
    // [n_expert · n_ff, d]: ffn rows 192 .. 255 of each of the 4 experts.
    const TensorSlice w1 = tensor_slice(kW1, 4 * 256, 128, config, s);
    CHECK(w1.rows == std::vector<Split>{{192, 64}, {448, 64}, {704, 64}, {960, 64}});
    CHECK(w1.n_rows() == 256);
    CHECK(tensor_slice(kW2, 4 * 256, 128, config, s) == w1);
    // 1000 over 4: rows 750 .. 999.
    const TensorSlice head = tensor_slice("lm_head.weight", 1000, 128, config, s);
    CHECK(head.rows == std::vector<Split>{{750, 250}});
    // Held whole.
    const TensorSlice wte = tensor_slice("transformer.wte.weight", 1000, 128, config, s);
    CHECK(wte.rows == std::vector<Split>{{0, 1000}});
    CHECK(wte.cols.count == 128);
}

TEST_CASE("dbrx shard: the pieces of every rank cover each split tensor exactly once") {
    const ModelConfig config = small_config();
    for (const int n : {2, 3, 4, 8}) {
        std::vector<int> out_cols(128, 0);
        std::vector<int> w1_rows(4 * 256, 0);
        std::vector<int> vocab(1000, 0);
        for (int r = 0; r < n; ++r) {
            const DbrxShard s = shard(config, n, r);
            const TensorSlice out = tensor_slice(kOut, 128, 128, config, s);
            for (int64_t c = 0; c < out.cols.count; ++c) {
                ++out_cols[static_cast<size_t>(out.cols.begin + c)];
            }
            for (const Split& run : tensor_slice(kW1, 4 * 256, 128, config, s).rows) {
                for (int64_t i = 0; i < run.count; ++i) {
                    ++w1_rows[static_cast<size_t>(run.begin + i)];
                }
            }
            for (const Split& run : tensor_slice("lm_head.weight", 1000, 128, config, s).rows) {
                for (int64_t i = 0; i < run.count; ++i) {
                    ++vocab[static_cast<size_t>(run.begin + i)];
                }
            }
        }
        INFO(n << " ranks");
        CHECK(std::ranges::all_of(out_cols, [](int c) { return c == 1; }));
        CHECK(std::ranges::all_of(w1_rows, [](int c) { return c == 1; }));
        CHECK(std::ranges::all_of(vocab, [](int c) { return c == 1; }));
    }
}

TEST_CASE("dbrx shard: fp8 scales are sliced with the rows they scale") {
    const ModelConfig config = small_config();
    const DbrxShard s = shard(config, 2, 1);
    // Per-row scales follow the row runs.
    const TensorSlice wqkv = tensor_slice(kWqkv, 192, 128, config, s);
    const TensorSlice wqkv_scales = fp8_scale_slice(kWqkv, wqkv, s);
    CHECK(wqkv_scales.rows == wqkv.rows);
    CHECK(wqkv_scales.cols.begin == 0);
    CHECK(wqkv_scales.cols.count == 1);
    const TensorSlice w1 = tensor_slice(kW1, 4 * 256, 128, config, s);
    CHECK(fp8_scale_slice(kW1, w1, s).rows == w1.rows);
    // out_proj is sliced by columns: every row keeps its scale.
    const TensorSlice out = tensor_slice(kOut, 128, 128, config, s);
    CHECK(fp8_scale_slice(kOut, out, s).rows == std::vector<Split>{{0, 128}});
    // w2's scales are per expert and output column ([n_expert, d]): all of them, since the
    // tensor plan slices w2's ffn rows, not its columns.
    const TensorSlice w2 = tensor_slice(kW2, 4 * 256, 128, config, s);
    const TensorSlice w2_scales = fp8_scale_slice(kW2, w2, s);
    CHECK(w2_scales.rows == std::vector<Split>{{0, 4}});
    CHECK(w2_scales.cols.begin == 0);
    CHECK(w2_scales.cols.count == 128);
}

TEST_CASE("dbrx shard: int4 splits keep w2's groups whole or are refused naming the field") {
    ModelConfig config = small_config();  // n_ff 256, groups of 64
    for (const int n : {2, 4}) {
        for (int r = 0; r < n; ++r) {
            CHECK(check_int4_shard(config, shard(config, n, r), n).ok());
        }
    }
    // 3 ranks: ffn [85, 170) cuts the groups of 64.
    const Status cut = check_int4_shard(config, shard(config, 3, 1), 3);
    CHECK(cut.code() == StatusCode::kInvalidArgument);
    CHECK(cut.message().find("parallel.tensor") != std::string::npos);
    CHECK(cut.message().find("[85, 170)") != std::string::npos);
    // 8 ranks: slices of 32, half a group.
    CHECK(!check_int4_shard(config, shard(config, 8, 0), 8).ok());

    // w2 in the int4 layout is [n_expert · d, n_ff]: every row, the shard's ffn columns, and
    // the scales' columns are those divided by the group size.
    const DbrxShard s = shard(config, 4, 2);  // ffn [128, 192)
    const TensorSlice w2 = int4_slice(kW2, config, s);
    CHECK(w2.rows == std::vector<Split>{{0, 4 * 128}});
    CHECK(w2.cols.begin == 128);
    CHECK(w2.cols.count == 64);
    const TensorSlice w2_scales = int4_scale_slice(w2, config.int4_group_size);
    CHECK(w2_scales.rows == w2.rows);
    CHECK(w2_scales.cols.begin == 2);
    CHECK(w2_scales.cols.count == 1);
    // w1 keeps its layout [n_expert · n_ff, d]: the ffn rows of each expert, all of d.
    const TensorSlice w1 = int4_slice(kW1, config, s);
    CHECK(w1.rows == std::vector<Split>{{128, 64}, {384, 64}, {640, 64}, {896, 64}});
    CHECK(w1.cols.count == 128);
    CHECK(int4_scale_slice(w1, config.int4_group_size).cols.count == 2);
}

// The expert plan and the grid: a rank holds its group's experts (rows of those experts only),
// each whole (expert plan) or its group's ffn slice of each (grid), and their fp8 and int4 scales.
TEST_CASE("dbrx shard: expert-parallel shards hold their group's experts") {
    const ModelConfig config = small_config();  // 4 experts of ffn 256
    ParallelConfig expert;
    expert.expert = 2;
    auto e1 = shard_for_rank(config, expert, 1);
    REQUIRE(e1.ok());
    CHECK(e1->expert_parallel);
    CHECK(e1->expert_begin == 2);
    CHECK(e1->n_expert == 2);
    const TensorSlice w1 = tensor_slice(kW1, 4 * 256, 128, config, *e1);
    CHECK(w1.rows == std::vector<Split>{{512, 256}, {768, 256}});
    CHECK(w1.cols == Split{0, 128});
    CHECK(tensor_slice(kW2, 4 * 256, 128, config, *e1) == w1);
    const TensorSlice w2_scales = fp8_scale_slice(kW2, w1, *e1);
    CHECK(w2_scales.rows == std::vector<Split>{{2, 2}});
    CHECK(w2_scales.cols == Split{0, 128});
    CHECK(fp8_scale_slice(kW1, w1, *e1).rows == w1.rows);
    // int4: w2 transposed per expert, [n_expert · d, n_ff]: the rows of experts 2 and 3.
    const TensorSlice w2_int4 = int4_slice(kW2, config, *e1);
    CHECK(w2_int4.rows == std::vector<Split>{{2 * 128, 2 * 128}});
    CHECK(w2_int4.cols == Split{0, 256});
    // 3 groups over 4 experts: [0, 1), [1, 2), [2, 4).
    ParallelConfig three;
    three.expert = 3;
    std::vector<int64_t> held;
    for (int r = 0; r < 3; ++r) {
        auto s = shard_for_rank(config, three, r);
        REQUIRE(s.ok());
        held.push_back(s->n_expert);
        CHECK(tensor_slice(kW1, 4 * 256, 128, config, *s).rows.size() ==
              static_cast<size_t>(s->n_expert));
    }
    CHECK(held == std::vector<int64_t>{1, 1, 2});

    // Grid 2 x 2: rank 3 is group 1, tensor index 1: experts 2 and 3, ffn [128, 256) of each.
    ParallelConfig grid;
    grid.tensor = 2;
    grid.expert = 2;
    auto g3 = shard_for_rank(config, grid, 3);
    REQUIRE(g3.ok());
    const TensorSlice g3_w1 = tensor_slice(kW1, 4 * 256, 128, config, *g3);
    CHECK(g3_w1.rows == std::vector<Split>{{512 + 128, 128}, {768 + 128, 128}});
    const TensorSlice g3_w2 = int4_slice(kW2, config, *g3);
    CHECK(g3_w2.rows == std::vector<Split>{{256, 256}});
    CHECK(g3_w2.cols == Split{128, 128});
}

}  // namespace
}  // namespace sluice::inference
