// Whole-model parity of the CUDA backend with the CPU backend and the reference on the golden
// DBRX checkpoints (SLUICE_SHARED_DIR/golden/dbrx), the KV cache, batching, block copies, errors
// and the memory plan's refusal.
//
// Tolerances. f32 weights: max |Δlogit| / max |logit| ≤ 1e-4 against the reference and the CPU
// (the golden files' own bound). bf16 weights: both backends round the same weights to bf16 and
// do fp32 math, so the CUDA backend is held to the same 1e-4 against the CPU backend on bf16, and
// to identical greedy ids.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <random>

#include "gpu_test_support.h"
#include "inference/cpu_backend.h"
#include "inference/cuda_backend.h"
#include "inference/model_config.h"
#include "inference/quantized_checkpoint.h"
#include "inference/tiny_model.h"
#include "inference_test_support.h"

namespace sluice::inference {
namespace {

using testing::golden_dir;
using testing::load_json;
using testing::relative_max_diff;
using testing::scrambled_blocks;
using testing::to_ids;

constexpr double kTolerance = 1e-4;

std::unique_ptr<Backend> open_cuda(const std::string& dir, WeightFormat format,
                                   int32_t block_size = 4, int32_t n_blocks = 64) {
    auto backend = open_cuda_backend(dir, {format, 0, 256});
    REQUIRE_MESSAGE(backend.ok(), backend.status().to_string());
    REQUIRE((*backend)->configure_kv_cache({block_size, n_blocks}).ok());
    CHECK((*backend)->name() == "cuda");
    return std::move(*backend);
}

std::unique_ptr<Backend> open_cpu(const std::string& dir, WeightFormat format,
                                  int32_t block_size = 4, int32_t n_blocks = 64) {
    auto backend = open_cpu_backend(dir, {format, 0});
    REQUIRE_MESSAGE(backend.ok(), backend.status().to_string());
    REQUIRE((*backend)->configure_kv_cache({block_size, n_blocks}).ok());
    return std::move(*backend);
}

void check_golden(const std::string& name) {
    const std::string dir = golden_dir(name);
    const auto golden = load_json(dir + "/golden.json");
    auto gpu = open_cuda(dir, WeightFormat::kAsStored);
    auto cpu = open_cpu(dir, WeightFormat::kAsStored);
    for (const auto& golden_case : golden["cases"]) {
        const auto ids = to_ids(golden_case["ids"]);
        const std::string case_name = golden_case["name"].get<std::string>();
        const auto rows = testing::forward_all(*gpu, ids, scrambled_blocks(64));
        const auto cpu_rows = testing::forward_all(*cpu, ids, scrambled_blocks(64));
        const auto& ref = golden_case["logits"];
        REQUIRE(rows.size() == ref.size());
        double worst = 0;
        for (size_t p = 0; p < rows.size(); ++p) {
            INFO(name << " case " << case_name << ", position " << p);
            const double diff = relative_max_diff(rows[p], ref[p].get<std::vector<float>>());
            worst = std::max(worst, diff);
            CHECK(diff <= kTolerance);
            CHECK(relative_max_diff(rows[p], cpu_rows[p]) <= kTolerance);
            CHECK(testing::argmax(rows[p]) == golden_case["argmax"][p].get<int32_t>());
        }
        MESSAGE(name << " " << case_name << ": max relative logit error vs reference " << worst);
        const auto expected = to_ids(golden_case["greedy"]);
        const auto got =
            testing::greedy(*gpu, ids, static_cast<int>(expected.size()), scrambled_blocks(64));
        CHECK_MESSAGE(got == expected, name << " greedy continuation of case " << case_name);
    }
}

void check_bf16(const std::string& dir, const std::vector<std::vector<int32_t>>& prompts,
                int greedy_tokens) {
    auto gpu = open_cuda(dir, WeightFormat::kBF16, 16, 64);
    auto cpu = open_cpu(dir, WeightFormat::kBF16, 16, 64);
    for (const auto& ids : prompts) {
        const auto rows = testing::forward_all(*gpu, ids, scrambled_blocks(64));
        const auto cpu_rows = testing::forward_all(*cpu, ids, scrambled_blocks(64));
        double worst = 0;
        for (size_t p = 0; p < rows.size(); ++p) {
            worst = std::max(worst, relative_max_diff(rows[p], cpu_rows[p]));
        }
        MESSAGE(dir << " bf16, " << ids.size() << " tokens: max relative logit difference "
                    << worst);
        CHECK(worst <= kTolerance);
        CHECK(testing::greedy(*gpu, ids, greedy_tokens, scrambled_blocks(64)) ==
              testing::greedy(*cpu, ids, greedy_tokens, scrambled_blocks(64)));
    }
}

std::vector<std::vector<int32_t>> golden_prompts(const std::string& name) {
    std::vector<std::vector<int32_t>> prompts;
    const auto golden = load_json(golden_dir(name) + "/golden.json");
    for (const auto& golden_case : golden["cases"]) {
        prompts.push_back(to_ids(golden_case["ids"]));
    }
    return prompts;
}

}  // namespace

TEST_CASE("cuda dbrx: logits and greedy continuations match the reference and cpu (a_d64_gqa)") {
    check_golden("a_d64_gqa");
}

TEST_CASE("cuda dbrx: logits and greedy continuations match the reference and cpu (b_d128_clip8)") {
    check_golden("b_d128_clip8");
}

TEST_CASE("cuda dbrx: bf16 weights give the cpu backend's bf16 logits and greedy ids") {
    for (const char* name : {"a_d64_gqa", "b_d128_clip8"}) {
        check_bf16(golden_dir(name), golden_prompts(name), 16);
    }
}

namespace {

struct Agreement {
    double worst_relative = 0;  // max over positions of max |Δlogit| / max |logit|
    int top1_equal = 0;
    int positions = 0;
};

Agreement compare_rows(const std::vector<std::vector<float>>& got,
                       const std::vector<std::vector<float>>& want) {
    Agreement a;
    for (size_t p = 0; p < got.size(); ++p) {
        a.worst_relative = std::max(a.worst_relative, relative_max_diff(got[p], want[p]));
        a.top1_equal += testing::argmax(got[p]) == testing::argmax(want[p]) ? 1 : 0;
        ++a.positions;
    }
    return a;
}

}  // namespace

TEST_CASE("cuda dbrx: fp8 weights against bf16 on the goldens (the accuracy report)") {
    // fp8 E4M3 keeps 3 mantissa bits per weight. On these small random models, whose weights
    // amplify every error, the logits move by up to a fifth of their range (measured on an H200:
    // 0.115 and 0.176, top-1 agreement 78/89 and 65/89). The bounds allow that and still catch a
    // wrong scale or layout, which gives errors of order 1 and top-1 agreement near chance.
    for (const char* name : {"a_d64_gqa", "b_d128_clip8"}) {
        auto fp8 = open_cuda(golden_dir(name), WeightFormat::kF8E4M3, 16, 64);
        auto bf16 = open_cuda(golden_dir(name), WeightFormat::kBF16, 16, 64);
        Agreement total;
        for (const auto& ids : golden_prompts(name)) {
            const auto a = compare_rows(testing::forward_all(*fp8, ids, scrambled_blocks(64)),
                                        testing::forward_all(*bf16, ids, scrambled_blocks(64)));
            total.worst_relative = std::max(total.worst_relative, a.worst_relative);
            total.top1_equal += a.top1_equal;
            total.positions += a.positions;
        }
        MESSAGE(std::string(name) << " fp8 vs bf16: max relative logit error "
                                  << total.worst_relative << ", top-1 agreement "
                                  << total.top1_equal << "/" << total.positions);
        CHECK(total.worst_relative <= 0.35);
        CHECK(total.top1_equal >= total.positions * 3 / 5);
    }
}

TEST_CASE(
    "cuda dbrx: an fp8 checkpoint from `model quantize` loads to what quantising at load gives") {
    // The host quantiser (inference/fp8_weights.h) performs the device kernels' arithmetic, so the
    // saved codes and scales are the ones quantising at load makes: the logits are equal, not
    // close. Asked for bf16, the backend widens the codes on the host, as the CPU backend does.
    for (const char* name : {"a_d64_gqa", "b_d128_clip8"}) {
        testing::TempDir tmp;
        const std::string out = tmp.file("fp8");
        auto summary = write_fp8_checkpoint(golden_dir(name), out);
        REQUIRE_MESSAGE(summary.ok(), summary.status().to_string());
        auto at_load = open_cuda(golden_dir(name), WeightFormat::kF8E4M3, 16, 64);
        auto saved = open_cuda(out, WeightFormat::kAsStored, 16, 64);
        auto widened = open_cuda(out, WeightFormat::kBF16, 16, 64);
        auto cpu = open_cpu(out, WeightFormat::kBF16, 16, 64);
        for (const auto& ids : golden_prompts(name)) {
            const auto want = testing::forward_all(*at_load, ids, scrambled_blocks(64));
            CHECK(testing::forward_all(*saved, ids, scrambled_blocks(64)) == want);
            const auto gpu_rows = testing::forward_all(*widened, ids, scrambled_blocks(64));
            const auto cpu_rows = testing::forward_all(*cpu, ids, scrambled_blocks(64));
            for (size_t p = 0; p < gpu_rows.size(); ++p) {
                CHECK(relative_max_diff(gpu_rows[p], cpu_rows[p]) <= kTolerance);
            }
        }
    }
}

namespace {

std::unique_ptr<Backend> open_cuda_int4(const std::string& dir, int64_t group_size) {
    CudaBackendOptions options{WeightFormat::kInt4, 0, 256};
    options.int4_group_size = group_size;
    auto backend = open_cuda_backend(dir, options);
    REQUIRE_MESSAGE(backend.ok(), backend.status().to_string());
    REQUIRE((*backend)->configure_kv_cache({16, 64}).ok());
    return std::move(*backend);
}

}  // namespace

TEST_CASE("cuda dbrx: int4 experts against bf16 on the goldens (the accuracy report)") {
    // Group 32, the one size both goldens' experts divide into. The CPU measures the same
    // comparison on the widened weights (int4_checkpoint_test.cpp: 0.123 / 0.068 and 81/89,
    // 83/89); the kernels' fp32 sums of exact q · scale differ from the CPU's bf16-rounded
    // weights by far less than int4's own error.
    for (const char* name : {"a_d64_gqa", "b_d128_clip8"}) {
        auto int4 = open_cuda_int4(golden_dir(name), 32);
        auto bf16 = open_cuda(golden_dir(name), WeightFormat::kBF16, 16, 64);
        Agreement total;
        for (const auto& ids : golden_prompts(name)) {
            const auto a = compare_rows(testing::forward_all(*int4, ids, scrambled_blocks(64)),
                                        testing::forward_all(*bf16, ids, scrambled_blocks(64)));
            total.worst_relative = std::max(total.worst_relative, a.worst_relative);
            total.top1_equal += a.top1_equal;
            total.positions += a.positions;
        }
        MESSAGE(std::string(name) << " int4 (group 32) vs bf16: max relative logit error "
                                  << total.worst_relative << ", top-1 agreement "
                                  << total.top1_equal << "/" << total.positions);
        CHECK(total.worst_relative <= 0.6);
        CHECK(total.top1_equal >= total.positions / 2);
    }
}

TEST_CASE(
    "cuda dbrx: an int4 checkpoint from `model quantize` loads to what quantising at load gives") {
    // The device quantiser performs the host quantiser's arithmetic, so the saved codes and
    // scales are the ones quantising at load makes and the logits are equal, not close. Asked
    // for bf16, the backend widens the codes on the host as the CPU backend does, and the two
    // backends agree to the bf16 tolerance.
    for (const char* name : {"a_d64_gqa", "b_d128_clip8"}) {
        testing::TempDir tmp;
        const std::string out = tmp.file("int4");
        QuantizeCheckpointOptions options;
        options.format = CheckpointQuantization::kInt4Grouped;
        options.int4_group_size = 32;
        auto summary = write_quantized_checkpoint(golden_dir(name), out, options);
        REQUIRE_MESSAGE(summary.ok(), summary.status().to_string());
        auto at_load = open_cuda_int4(golden_dir(name), 32);
        auto saved = open_cuda(out, WeightFormat::kAsStored, 16, 64);
        auto saved_int4 = open_cuda(out, WeightFormat::kInt4, 16, 64);
        auto widened = open_cuda(out, WeightFormat::kBF16, 16, 64);
        auto cpu = open_cpu(out, WeightFormat::kBF16, 16, 64);
        for (const auto& ids : golden_prompts(name)) {
            const auto want = testing::forward_all(*at_load, ids, scrambled_blocks(64));
            CHECK(testing::forward_all(*saved, ids, scrambled_blocks(64)) == want);
            CHECK(testing::forward_all(*saved_int4, ids, scrambled_blocks(64)) == want);
            const auto gpu_rows = testing::forward_all(*widened, ids, scrambled_blocks(64));
            const auto cpu_rows = testing::forward_all(*cpu, ids, scrambled_blocks(64));
            for (size_t p = 0; p < gpu_rows.size(); ++p) {
                CHECK(relative_max_diff(gpu_rows[p], cpu_rows[p]) <= kTolerance);
            }
        }
        // Codes of one format are not requantised to the other.
        CHECK(open_cuda_backend(out, {WeightFormat::kF8E4M3, 0, 256}).status().code() ==
              StatusCode::kInvalidArgument);
    }
    // Quantising at load refuses a group size the model's dimensions do not divide.
    CudaBackendOptions bad{WeightFormat::kInt4, 0, 256};
    bad.int4_group_size = 128;  // d_model 64
    const auto refused = open_cuda_backend(golden_dir("a_d64_gqa"), bad);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.status().message().find("int4 group size") != std::string::npos);
}

TEST_CASE("cuda dbrx: random weights made on the device are reproducible and quantise sanely") {
    auto config = load_model_config(golden_dir("b_d128_clip8"));
    REQUIRE(config.ok());
    std::mt19937 rng(5);
    std::vector<int32_t> prompt(24);
    for (auto& id : prompt) {
        id = static_cast<int32_t>(rng() % static_cast<uint32_t>(config->n_vocab));
    }
    auto open_random = [&](WeightFormat format, uint64_t seed) {
        auto backend = open_cuda_backend_random(*config, {format, 0, 256}, seed);
        REQUIRE_MESSAGE(backend.ok(), backend.status().to_string());
        REQUIRE((*backend)->configure_kv_cache({16, 64}).ok());
        return testing::forward_all(**backend, prompt, scrambled_blocks(64));
    };
    const auto first = open_random(WeightFormat::kBF16, 11);
    CHECK(compare_rows(open_random(WeightFormat::kBF16, 11), first).worst_relative == 0.0);
    CHECK(compare_rows(open_random(WeightFormat::kBF16, 12), first).worst_relative > 1e-3);
    const auto fp8 = compare_rows(open_random(WeightFormat::kF8E4M3, 11), first);
    MESSAGE("random b_d128_clip8 shapes, fp8 vs bf16: max relative logit error "
            << fp8.worst_relative << ", top-1 agreement " << fp8.top1_equal << "/"
            << fp8.positions);
    CHECK(fp8.worst_relative <= 0.35);  // measured 0.20 on an H200
    auto open_random_int4 = [&](uint64_t seed) {
        CudaBackendOptions options{WeightFormat::kInt4, 0, 256};
        options.int4_group_size = 32;  // divides d_model 128 and ffn 160
        auto backend = open_cuda_backend_random(*config, options, seed);
        REQUIRE_MESSAGE(backend.ok(), backend.status().to_string());
        REQUIRE((*backend)->configure_kv_cache({16, 64}).ok());
        return testing::forward_all(**backend, prompt, scrambled_blocks(64));
    };
    const auto int4 = compare_rows(open_random_int4(11), first);
    MESSAGE("random b_d128_clip8 shapes, int4 experts (group 32) vs bf16: max relative logit "
            "error "
            << int4.worst_relative << ", top-1 agreement " << int4.top1_equal << "/"
            << int4.positions);
    CHECK(int4.worst_relative <= 0.6);
    ModelConfig bad = *config;
    bad.n_head_kv = 3;  // does not divide n_head
    CHECK(open_cuda_backend_random(bad, {}, 1).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("cuda dbrx: the tiny preset (DBRX vocabulary, bf16) matches the cpu backend") {
    // The tiny preset's random weights amplify rounding: on the development machine the CPU
    // backend disagrees with itself by 5.6e-3 (max relative logit difference) between its f32 and
    // bf16 kernels on the very same weight values and this prompt, and the GPU differs from it by
    // 5.7e-3 on an H200. Its documented tolerance is therefore 2e-2, with the greedy choice equal
    // at every position whose top-2 margin is wider than twice the difference found.
    const auto dir = std::filesystem::temp_directory_path() /
                     ("sluice-gpu-tiny-" + std::to_string(std::random_device()()));
    TinyModelOptions options;
    options.seed = 7;
    REQUIRE(write_tiny_model(dir.string(), options).ok());
    std::mt19937 rng(3);
    std::vector<int32_t> prompt(40);
    for (auto& id : prompt) {
        id = static_cast<int32_t>(rng() % 100352);
    }
    auto gpu = open_cuda(dir.string(), WeightFormat::kBF16, 16, 16);
    auto cpu = open_cpu(dir.string(), WeightFormat::kBF16, 16, 16);
    const auto rows = testing::forward_all(*gpu, prompt, scrambled_blocks(16));
    const auto cpu_rows = testing::forward_all(*cpu, prompt, scrambled_blocks(16));
    const auto checked = testing::check_greedy_where_margin_allows(rows, cpu_rows);
    CHECK(checked.worst <= 2e-2);
    MESSAGE("tiny preset, 40 tokens: max relative logit difference gpu vs cpu "
            << checked.worst << "; " << checked.compared
            << " positions with a wide enough margin have equal greedy choices");
    std::filesystem::remove_all(dir);
}

TEST_CASE("cuda dbrx: incremental decoding through the paged kv cache equals a full forward") {
    for (const char* name : {"a_d64_gqa", "b_d128_clip8"}) {
        const auto golden = load_json(golden_dir(name) + "/golden.json");
        const auto& check = golden["kv_cache_check"];
        const auto ids = to_ids(check["ids"]);
        for (const int32_t block_size : {1, 4, 16}) {
            auto backend = open_cuda(golden_dir(name), WeightFormat::kAsStored, block_size, 64);
            const auto blocks = scrambled_blocks(64);
            const auto incremental = testing::forward_incremental(*backend, ids, blocks);
            const auto full = testing::forward_all(*backend, ids, blocks).back();
            INFO(name << ", block size " << block_size);
            CHECK(relative_max_diff(incremental,
                                    check["incremental_last_logits"].get<std::vector<float>>()) <=
                  kTolerance);
            CHECK(relative_max_diff(full,
                                    check["full_forward_last_logits"].get<std::vector<float>>()) <=
                  kTolerance);
            CHECK(relative_max_diff(incremental, full) <= kTolerance);
        }
    }
}

TEST_CASE("cuda dbrx: a mixed prefill and decode batch gives each entry what it gets alone") {
    const std::string dir = golden_dir("b_d128_clip8");
    const auto prompts = golden_prompts("b_d128_clip8");
    const auto& long_prompt = prompts[2];  // 33 tokens
    auto backend = open_cuda(dir, WeightFormat::kAsStored, 4, 64);
    // Entry 1 continues a 20-token prefix already in its blocks 10..14.
    const std::vector<int32_t> table_a = scrambled_blocks(10, 0);
    const std::vector<int32_t> table_b = scrambled_blocks(10, 10);
    const std::vector<int32_t> table_c = scrambled_blocks(10, 20);
    const std::vector<int32_t> prefix(long_prompt.begin(), long_prompt.begin() + 20);
    testing::forward_all(*backend, prefix, table_b);

    auto run = [&](std::vector<SequenceStep> steps) {
        ForwardBatch batch;
        batch.sequences = std::move(steps);
        auto out = backend->forward(batch);
        REQUIRE_MESSAGE(out.ok(), out.status().to_string());
        return std::move(*out);
    };
    const std::vector<int32_t> decode{long_prompt[20]};
    const std::vector<int32_t> chunk(long_prompt.begin() + 20, long_prompt.begin() + 27);
    const SequenceStep prefill_a{prompts[1], 0, table_a, LogitsRows::kAll, true};
    const SequenceStep decode_b{decode, 20, table_b, LogitsRows::kLast};
    const SequenceStep prefill_c{long_prompt, 0, table_c, LogitsRows::kNone};
    const ForwardOutput batched = run({prefill_a, decode_b, prefill_c});
    CHECK(batched.n_rows == std::vector<int64_t>{7, 1, 0});
    CHECK(batched.hidden_n_rows == std::vector<int64_t>{7, 0, 0});
    const ForwardOutput alone_a = run({prefill_a});
    const ForwardOutput alone_b = run({SequenceStep{decode, 20, table_b, LogitsRows::kLast}});
    for (int64_t i = 0; i < 7; ++i) {
        const auto got = batched.row(0, i);
        const auto want = alone_a.row(0, i);
        CHECK(relative_max_diff({got.begin(), got.end()}, {want.begin(), want.end()}) <= 1e-5);
    }
    const auto batched_b = batched.row(1);
    const auto single_b = alone_b.row(0);
    CHECK(relative_max_diff({batched_b.begin(), batched_b.end()},
                            {single_b.begin(), single_b.end()}) <= 1e-5);
    // Hidden rows equal the CPU backend's.
    auto cpu = open_cpu(dir, WeightFormat::kAsStored, 4, 64);
    ForwardBatch hidden_batch;
    hidden_batch.sequences.push_back(prefill_a);
    auto cpu_out = cpu->forward(hidden_batch);
    REQUIRE(cpu_out.ok());
    CHECK(relative_max_diff(batched.hidden, cpu_out->hidden) <= kTolerance);
    // A 7-token chunk after the prefix equals the full prompt's rows 20..26.
    const ForwardOutput chunked = run({SequenceStep{chunk, 20, table_b, LogitsRows::kAll}});
    const auto full = testing::forward_all(*backend, long_prompt, table_c);
    for (int64_t i = 0; i < 7; ++i) {
        const auto got = chunked.row(0, i);
        CHECK(relative_max_diff({got.begin(), got.end()}, full[static_cast<size_t>(20 + i)]) <=
              kTolerance);
    }
}

TEST_CASE("cuda dbrx: copy_kv_block copies every layer's K and V of a block") {
    const std::string dir = golden_dir("a_d64_gqa");
    const auto prompt = golden_prompts("a_d64_gqa")[1];  // 7 tokens: blocks 0 (full) and 1 (3)
    auto backend = open_cuda(dir, WeightFormat::kAsStored, 4, 16);
    testing::forward_all(*backend, prompt, {0, 1});
    REQUIRE(backend->copy_kv_block(1, 5).ok());
    const std::vector<int32_t> next{prompt[0]};
    const std::vector<int32_t> original{0, 1};
    const std::vector<int32_t> copied{0, 5};
    ForwardBatch a;
    a.sequences.push_back({next, 7, original, LogitsRows::kLast});
    auto out_a = backend->forward(a);
    ForwardBatch b;
    b.sequences.push_back({next, 7, copied, LogitsRows::kLast});
    auto out_b = backend->forward(b);
    REQUIRE_MESSAGE(out_a.ok(), out_a.status().to_string());
    REQUIRE_MESSAGE(out_b.ok(), out_b.status().to_string());
    CHECK(out_a->logits == out_b->logits);
    CHECK(backend->copy_kv_block(0, 16).code() == StatusCode::kInvalidArgument);
}

TEST_CASE("cuda dbrx: malformed batches are refused as the cpu backend refuses them") {
    const std::string dir = golden_dir("a_d64_gqa");
    auto gpu_unconfigured = open_cuda_backend(dir, {WeightFormat::kAsStored, 0, 8});
    REQUIRE(gpu_unconfigured.ok());
    const std::vector<int32_t> ids{1, 2, 3};
    const std::vector<int32_t> table{0};
    ForwardBatch ok_batch;
    ok_batch.sequences.push_back({ids, 0, table, LogitsRows::kLast});
    CHECK((*gpu_unconfigured)->forward(ok_batch).status().code() ==
          StatusCode::kFailedPrecondition);

    auto gpu = open_cuda(dir, WeightFormat::kAsStored, 4, 8);
    auto cpu = open_cpu(dir, WeightFormat::kAsStored, 4, 8);
    const std::vector<int32_t> bad_token{1, 512};
    const std::vector<int32_t> bad_table{9};
    std::vector<ForwardBatch> bad(4);
    bad[0].sequences.push_back({bad_token, 0, table, LogitsRows::kLast});
    bad[1].sequences.push_back({ids, 0, bad_table, LogitsRows::kLast});
    bad[2].sequences.push_back({ids, 2, table, LogitsRows::kLast});  // 5 positions, one block
    bad[3].sequences.push_back({ids, 0, table, LogitsRows::kLast});
    bad[3].sequences.push_back({ids, 0, table, LogitsRows::kLast});  // block 0 written twice
    for (const ForwardBatch& batch : bad) {
        const Status got = gpu->forward(batch).status();
        CHECK(got.code() == StatusCode::kInvalidArgument);
        CHECK(got == cpu->forward(batch).status());
    }
    // More tokens than the step buffers hold (max_batch_tokens 8).
    const std::vector<int32_t> many(9, 1);
    const std::vector<int32_t> tables{0, 1, 2};
    ForwardBatch too_many;
    too_many.sequences.push_back({many, 0, tables, LogitsRows::kLast});
    auto small = open_cuda_backend(dir, {WeightFormat::kAsStored, 0, 8});
    REQUIRE(small.ok());
    REQUIRE((*small)->configure_kv_cache({4, 8}).ok());
    CHECK((*small)->forward(too_many).status().code() == StatusCode::kInvalidArgument);
    CHECK(open_cuda_backend(dir, {WeightFormat::kInt8, 0, 8}).status().code() ==
          StatusCode::kInvalidArgument);
}

TEST_CASE("cuda dbrx: a kv cache larger than the device is refused before allocating") {
    auto backend = open_cuda(golden_dir("a_d64_gqa"), WeightFormat::kAsStored, 16, 8);
    const Status refused = backend->configure_kv_cache({16, 2000000000});
    CHECK(refused.code() == StatusCode::kResourceExhausted);
    CHECK(refused.message().find("kv cache") != std::string::npos);
    // The backend stays usable with a cache that fits.
    REQUIRE(backend->configure_kv_cache({16, 8}).ok());
    CHECK(testing::forward_all(*backend, {1, 2, 3}, {0}).size() == 3);
}

}  // namespace sluice::inference
