// The CPU backend beyond the plain golden run: sharded checkpoints, bf16 and int8 weights,
// batches of sequences of different lengths, and checkpoints that do not fit their config.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <functional>

#include "inference/cpu_backend.h"
#include "inference/safetensors.h"
#include "inference/safetensors_writer.h"
#include "inference_test_support.h"

namespace sluice::inference {
namespace {

using testing::relative_max_diff;
using testing::scrambled_blocks;
using testing::TempDir;

struct OwnedTensor {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
};

// Every tensor of a checkpoint widened to fp32, then passed through `transform` (which may
// rename, reshape, round or drop by clearing the name).
std::vector<OwnedTensor> read_tensors(const std::string& dir) {
    auto checkpoint = Checkpoint::open(dir);
    REQUIRE(checkpoint.ok());
    std::vector<OwnedTensor> out;
    for (const auto& [name, view] : (*checkpoint)->tensors()) {
        std::vector<float> values(static_cast<size_t>(view.n_elements()));
        convert_to_f32(view.dtype, view.data, view.n_elements(), values.data());
        OwnedTensor t{name, DType::kF32, view.shape, std::vector<uint8_t>(values.size() * 4)};
        std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
        out.push_back(std::move(t));
    }
    return out;
}

void to_bf16(OwnedTensor* t) {
    std::vector<float> values(t->bytes.size() / 4);
    std::memcpy(values.data(), t->bytes.data(), t->bytes.size());
    std::vector<uint16_t> bits(values.size());
    convert_f32_to_bf16(values, bits.data());
    t->dtype = DType::kBF16;
    t->bytes.assign(reinterpret_cast<uint8_t*>(bits.data()),
                    reinterpret_cast<uint8_t*>(bits.data()) + bits.size() * 2);
}

void write_checkpoint(const std::string& dir, const std::string& config_from,
                      const std::vector<OwnedTensor>& tensors, int64_t shard_bytes = 0) {
    std::filesystem::copy_file(config_from + "/config.json", dir + "/config.json",
                               std::filesystem::copy_options::overwrite_existing);
    std::vector<TensorToWrite> views;
    for (const OwnedTensor& t : tensors) {
        if (!t.name.empty()) {
            views.push_back({t.name, t.dtype, t.shape, t.bytes});
        }
    }
    Status status = shard_bytes > 0 ? write_safetensors_sharded(dir, views, shard_bytes)
                                    : write_safetensors(dir + "/model.safetensors", views);
    REQUIRE_MESSAGE(status.ok(), status.to_string());
}

std::unique_ptr<Backend> open(const std::string& dir, WeightFormat format) {
    auto backend = open_cpu_backend(dir, {format, 2});
    REQUIRE_MESSAGE(backend.ok(), backend.status().to_string());
    REQUIRE((*backend)->configure_kv_cache({8, 64}).ok());
    return std::move(*backend);
}

std::vector<int32_t> case_ids(const std::string& golden, size_t index) {
    return testing::to_ids(testing::load_json(golden + "/golden.json")["cases"][index]["ids"]);
}

}  // namespace

TEST_CASE("dbrx cpu: a sharded copy of a golden checkpoint gives identical logits") {
    const std::string golden = testing::golden_dir("b_d128_clip8");
    TempDir dir;
    write_checkpoint(dir.path(), golden, read_tensors(golden), 2'000'000);
    CHECK(std::filesystem::exists(dir.file("model.safetensors.index.json")));
    auto sharded = open(dir.path(), WeightFormat::kAsStored);
    auto single = open(golden, WeightFormat::kAsStored);
    const auto ids = case_ids(golden, 2);
    CHECK(testing::forward_all(*sharded, ids, scrambled_blocks(8)) ==
          testing::forward_all(*single, ids, scrambled_blocks(8)));
}

TEST_CASE("dbrx cpu: a bf16 checkpoint equals fp32 math on its upcast weights") {
    const std::string golden = testing::golden_dir("a_d64_gqa");
    TempDir bf16_dir;
    TempDir upcast_dir;
    auto tensors = read_tensors(golden);
    for (OwnedTensor& t : tensors) {
        to_bf16(&t);
    }
    write_checkpoint(bf16_dir.path(), golden, tensors);
    write_checkpoint(upcast_dir.path(), golden, read_tensors(bf16_dir.path()));
    auto bf16 = open(bf16_dir.path(), WeightFormat::kAsStored);
    auto upcast = open(upcast_dir.path(), WeightFormat::kAsStored);
    CHECK(bf16->memory().weight_bytes * 2 < upcast->memory().weight_bytes + 4096);
    for (size_t c = 0; c < 4; ++c) {
        const auto ids = case_ids(golden, c);
        const auto got = testing::forward_all(*bf16, ids, scrambled_blocks(8));
        const auto want = testing::forward_all(*upcast, ids, scrambled_blocks(8));
        for (size_t p = 0; p < got.size(); ++p) {
            CHECK(relative_max_diff(got[p], want[p]) <= 1e-5);
        }
    }
}

TEST_CASE("dbrx cpu: int8 weights stay within 5% of the fp32 logits") {
    // Weight-only int8 with per-row scales rounds each weight by up to 1/254 of its row's
    // largest magnitude; over a few layers that moves logits by about 1% of the largest one, and
    // a router near-tie flipped by the rounding can add a few percent at one position.
    const std::string golden = testing::golden_dir("b_d128_clip8");
    const auto reference = testing::load_json(golden + "/golden.json");
    auto int8 = open(golden, WeightFormat::kInt8);
    double worst = 0;
    double sum = 0;
    int n = 0;
    for (const auto& golden_case : reference["cases"]) {
        const auto rows = testing::forward_all(*int8, testing::to_ids(golden_case["ids"]),
                                               scrambled_blocks(8));
        for (size_t p = 0; p < rows.size(); ++p) {
            const double diff =
                relative_max_diff(rows[p], golden_case["logits"][p].get<std::vector<float>>());
            worst = std::max(worst, diff);
            sum += diff;
            ++n;
        }
    }
    MESSAGE("int8: worst " << worst << ", mean " << sum / n);
    CHECK(worst <= 0.05);
    CHECK(sum / n <= 0.02);
    CHECK(worst > 0);  // int8 really is in use
}

TEST_CASE("dbrx cpu: a batch of sequences of different lengths equals each alone") {
    const std::string golden = testing::golden_dir("a_d64_gqa");
    auto backend = open(golden, WeightFormat::kAsStored);
    const std::vector<std::vector<int32_t>> ids = {case_ids(golden, 0), case_ids(golden, 1),
                                                   case_ids(golden, 2)};
    std::vector<std::vector<int32_t>> tables = {scrambled_blocks(4, 0), scrambled_blocks(8, 4),
                                                scrambled_blocks(8, 12)};
    std::vector<std::vector<std::vector<float>>> alone;
    for (size_t s = 0; s < ids.size(); ++s) {
        alone.push_back(testing::forward_all(*backend, ids[s], tables[s]));
    }
    ForwardBatch batch;
    for (size_t s = 0; s < ids.size(); ++s) {
        batch.sequences.push_back({ids[s], 0, tables[s], LogitsRows::kAll});
    }
    auto out = backend->forward(batch);
    REQUIRE(out.ok());
    for (size_t s = 0; s < ids.size(); ++s) {
        REQUIRE(out->n_rows[s] == static_cast<int64_t>(ids[s].size()));
        for (int64_t p = 0; p < out->n_rows[s]; ++p) {
            auto row = out->row(s, p);
            CHECK(relative_max_diff({row.begin(), row.end()}, alone[s][static_cast<size_t>(p)]) <=
                  1e-5);
        }
    }

    // Continuous batching: one sequence decodes a token while another prefills.
    ForwardBatch mixed;
    const int32_t next = testing::argmax(alone[2].back());
    std::vector<int32_t> extended = ids[2];
    extended.push_back(next);
    mixed.sequences.push_back({std::span<const int32_t>(&next, 1),
                               static_cast<int32_t>(ids[2].size()), tables[2], LogitsRows::kLast});
    mixed.sequences.push_back({ids[1], 0, tables[1], LogitsRows::kLast});
    auto step = backend->forward(mixed);
    REQUIRE(step.ok());
    const auto full = testing::forward_all(*backend, extended, scrambled_blocks(8, 20));
    auto decoded = step->row(0);
    CHECK(relative_max_diff({decoded.begin(), decoded.end()}, full.back()) <= 1e-5);
    auto prefilled = step->row(1);
    CHECK(relative_max_diff({prefilled.begin(), prefilled.end()}, alone[1].back()) <= 1e-5);
}

TEST_CASE("dbrx cpu: the cpu backend does not sample on the device and refuses to be asked") {
    auto backend = open(testing::golden_dir("a_d64_gqa"), WeightFormat::kAsStored);
    CHECK_FALSE(backend->samples_on_device());
    const std::vector<int32_t> ids = {1, 2, 3};
    const std::vector<int32_t> one_block = {0};
    ForwardBatch batch;
    batch.sequences.push_back({ids, 0, one_block, LogitsRows::kLast});
    batch.device_sample.push_back(DeviceSampling{0.8f, 0, 0.9f, 0.0f, 0.5});
    const Status refused = backend->forward(batch).status();
    CHECK(refused.code() == StatusCode::kInvalidArgument);
    CHECK(refused.message().find("sampling on the device") != std::string::npos);
    batch.device_sample.clear();
    const auto plain = backend->forward(batch);
    REQUIRE(plain.ok());
    CHECK(plain->sampled.empty());
    CHECK(plain->n_rows[0] == 1);
}

TEST_CASE("dbrx cpu: malformed batches are rejected before any compute") {
    const std::string golden = testing::golden_dir("a_d64_gqa");
    auto backend = open(golden, WeightFormat::kAsStored);
    const std::vector<int32_t> ids = {1, 2, 3};
    const std::vector<int32_t> bad_token = {1, 512};
    const std::vector<int32_t> one_block = {0};
    const std::vector<int32_t> out_of_range = {64};
    auto error = [&](ForwardBatch batch) { return backend->forward(batch).status().message(); };
    CHECK(error({{{bad_token, 0, one_block, LogitsRows::kLast}}}).find("token id 512") !=
          std::string::npos);
    CHECK(error({{{ids, 6, one_block, LogitsRows::kLast}}}).find("block table") !=
          std::string::npos);
    CHECK(error({{{ids, 0, out_of_range, LogitsRows::kLast}}}).find("block id 64") !=
          std::string::npos);
    CHECK(error({{{ids, 0, one_block, LogitsRows::kLast}, {ids, 0, one_block, LogitsRows::kLast}}})
              .find("two sequences") != std::string::npos);
    CHECK(error({}).find("empty batch") != std::string::npos);
}

TEST_CASE("dbrx cpu: a checkpoint that does not match its config is rejected naming the tensor") {
    const std::string golden = testing::golden_dir("a_d64_gqa");
    const std::string w1 = "transformer.blocks.0.ffn.experts.mlp.w1";
    auto expect_error = [&](const std::function<void(std::vector<OwnedTensor>*)>& edit,
                            const std::string& fragment) {
        TempDir dir;
        auto tensors = read_tensors(golden);
        edit(&tensors);
        write_checkpoint(dir.path(), golden, tensors);
        auto backend = open_cpu_backend(dir.path());
        REQUIRE_FALSE(backend.ok());
        CHECK(backend.status().code() == StatusCode::kInvalidArgument);
        CHECK_MESSAGE(backend.status().message().find(fragment) != std::string::npos,
                      backend.status().message());
    };
    auto find = [](std::vector<OwnedTensor>* tensors, const std::string& name) -> OwnedTensor& {
        for (OwnedTensor& t : *tensors) {
            if (t.name == name) {
                return t;
            }
        }
        FAIL("no tensor " << name);
        return tensors->front();
    };
    expect_error([&](auto* t) { find(t, w1).name.clear(); }, "tensor '" + w1 + "': missing");
    expect_error([&](auto* t) { find(t, w1).shape = {96, 1024}; },
                 "tensor '" + w1 + "': shape [96, 1024], expected [1536, 64]");
    expect_error(
        [&](auto* t) {
            OwnedTensor extra = find(t, "transformer.norm_f.weight");
            extra.name = "transformer.blocks.9.norm_attn_norm.norm_1.weight";
            t->push_back(std::move(extra));
        },
        "tensor 'transformer.blocks.9.norm_attn_norm.norm_1.weight' in 'model.safetensors': not "
        "part");
}

}  // namespace sluice::inference
