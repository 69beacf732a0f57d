// int4 checkpoints written by `sluice model quantize --weights int4`
// (inference/quantized_checkpoint.h, inference/int4_weights.h): the format, what the CPU backend
// makes of them, their accuracy on the goldens, and the errors for bad ones.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "inference/cpu_backend.h"
#include "inference/dbrx_layout.h"
#include "inference/dtype.h"
#include "inference/int4_weights.h"
#include "inference/quantized_checkpoint.h"
#include "inference/safetensors_writer.h"
#include "inference/tiny_model.h"
#include "inference_test_support.h"
#include "widened_checkpoint.h"

namespace sluice::inference {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

std::vector<float> to_f32(const TensorView& t) {
    std::vector<float> out(static_cast<size_t>(t.n_elements()));
    convert_to_f32(t.dtype, t.data, t.n_elements(), out.data());
    return out;
}

Result<QuantizeCheckpointSummary> write_int4(const std::string& source, const std::string& out,
                                             int64_t group_size) {
    QuantizeCheckpointOptions options;
    options.format = CheckpointQuantization::kInt4Grouped;
    options.int4_group_size = group_size;
    return write_quantized_checkpoint(source, out, options);
}

std::unique_ptr<Backend> open_cpu(const std::string& dir, WeightFormat weights) {
    auto backend = open_cpu_backend(dir, {weights, 2});
    REQUIRE_MESSAGE(backend.ok(), backend.status().to_string());
    REQUIRE((*backend)->configure_kv_cache({16, 64}).ok());
    return std::move(*backend);
}

std::vector<std::vector<float>> logits(const std::string& dir, WeightFormat weights,
                                       const std::vector<int32_t>& ids) {
    auto backend = open_cpu(dir, weights);
    return testing::forward_all(*backend, ids, testing::scrambled_blocks(64));
}

const std::vector<int32_t> kIds = {1, 17, 300, 5, 42, 99, 7, 250, 3};

// Rewrites `dir`'s single model.safetensors with `edit` applied to its tensor list.
void rewrite_checkpoint(const std::string& dir,
                        const std::function<void(std::vector<TensorToWrite>&)>& edit) {
    auto checkpoint = Checkpoint::open(dir);
    REQUIRE(checkpoint.ok());
    std::vector<std::vector<uint8_t>> copies;
    copies.reserve((*checkpoint)->tensors().size());
    std::vector<TensorToWrite> tensors;
    for (const auto& [name, view] : (*checkpoint)->tensors()) {
        copies.emplace_back(view.data, view.data + view.n_bytes);
        tensors.push_back({name, view.dtype, view.shape, copies.back()});
    }
    edit(tensors);
    const std::string tmp = dir + "/rewritten.safetensors";
    REQUIRE(write_safetensors(tmp, tensors).ok());
    checkpoint->reset();
    fs::rename(tmp, dir + "/model.safetensors");
}

void write_config_with(const std::string& source_dir, const std::string& out,
                       const nlohmann::json& quantization) {
    auto json = testing::load_json(source_dir + "/config.json");
    json["quantization_config"] = quantization;
    std::ofstream(out + "/config.json", std::ios::trunc) << json.dump();
}

}  // namespace

TEST_CASE("int4 checkpoint: experts as packed codes and fp16 group scales, the rest copied") {
    TempDir tmp;
    const std::string source_dir = tmp.file("tiny");
    REQUIRE(write_tiny_model(source_dir, {.preset = TinyPreset::kTiny, .seed = 5}).ok());
    const std::string out = tmp.file("int4");
    auto summary = write_int4(source_dir, out, kInt4DefaultGroupSize);
    REQUIRE_MESSAGE(summary.ok(), summary.status().to_string());
    CHECK_FALSE(fs::exists(out + ".partial"));

    auto config = load_model_config(out);
    REQUIRE_MESSAGE(config.ok(), config.status().to_string());
    CHECK(config->quantization == CheckpointQuantization::kInt4Grouped);
    CHECK(config->int4_group_size == 128);
    const auto json = testing::load_json(out + "/config.json");
    CHECK(json["quantization_config"]["quant_method"] == "sluice_int4");
    CHECK(json["quantization_config"]["group_size"] == 128);
    CHECK(summary->tensors_quantized == 3 * config->n_layer);
    auto source = Checkpoint::open(source_dir);
    auto quantized = Checkpoint::open(out);
    REQUIRE(quantized.ok());
    REQUIRE_MESSAGE(check_dbrx_checkpoint(**quantized, *config).ok(),
                    check_dbrx_checkpoint(**quantized, *config).to_string());
    // Experts take a quarter of bf16's bytes plus 2 bytes per 128 values.
    const int64_t expert_values =
        3 * config->n_layer * config->n_expert * config->n_ff * config->d_model;
    CHECK(summary->bytes_in - summary->bytes_out ==
          expert_values * 2 - expert_values / 2 - expert_values / 128 * 2);

    for (const auto& [name, view] : (*source)->tensors()) {
        const TensorView* q = (*quantized)->find(name);
        REQUIRE(q != nullptr);
        if (!int4_quantizes(name)) {
            CHECK(q->dtype == view.dtype);  // copied byte for byte
            CHECK(q->shape == view.shape);
            CHECK(std::memcmp(q->data, view.data, static_cast<size_t>(view.n_bytes)) == 0);
            continue;
        }
        CHECK(q->dtype == DType::kU8);
        const TensorView* scales = (*quantized)->find(int4_scale_tensor_name(name));
        REQUIRE(scales != nullptr);
        CHECK(scales->dtype == DType::kF16);
        // The same codes and scales as quantising the source matrix (w2 transposed) directly.
        auto values = to_f32(view);
        const Int4MatrixShape shape = int4_matrix_shape(name, *config);
        if (int4_transposed(name)) {
            std::vector<float> rows(values.size());
            transpose_blocks(values.data(), config->n_expert, config->n_ff, config->d_model,
                             rows.data());
            values.swap(rows);
        }
        std::vector<uint8_t> codes(values.size() / 2);
        std::vector<uint16_t> want_scales(values.size() / 128);
        REQUIRE(quantize_int4_rows(values.data(), shape.rows, shape.cols, 128, codes.data(),
                                   want_scales.data())
                    .ok());
        CHECK(q->shape == std::vector<int64_t>{shape.rows, shape.cols / 2});
        CHECK(std::memcmp(q->data, codes.data(), codes.size()) == 0);
        CHECK(std::memcmp(scales->data, want_scales.data(), want_scales.size() * 2) == 0);
    }
}

TEST_CASE("int4 checkpoint: the cpu backend gives exactly the logits of its dequantised weights") {
    TempDir tmp;
    const std::string source_dir = tmp.file("tiny");
    REQUIRE(write_tiny_model(source_dir, {.preset = TinyPreset::kTiny, .seed = 9}).ok());
    const std::string out = tmp.file("int4");
    REQUIRE(write_int4(source_dir, out, kInt4DefaultGroupSize).ok());
    const std::string plain = tmp.file("plain");
    testing::write_widened_checkpoint(source_dir, out, plain);
    const auto from_int4 = logits(out, WeightFormat::kAsStored, kIds);
    CHECK(from_int4 == logits(plain, WeightFormat::kAsStored, kIds));

    // Against the unquantised model: close, not equal. A wrong scale, nibble order or w2 layout
    // gives errors of order 1.
    const auto reference = logits(source_dir, WeightFormat::kAsStored, kIds);
    double worst = 0;
    for (size_t p = 0; p < reference.size(); ++p) {
        worst = std::max(worst, testing::relative_max_diff(from_int4[p], reference[p]));
    }
    MESSAGE("int4 (group 128) tiny model on the cpu vs bf16: max relative logit difference "
            << worst);
    CHECK(worst > 0);
    CHECK(worst < 0.35);
}

TEST_CASE("int4 checkpoint: accuracy against bf16 on the goldens (group 32, the cpu)") {
    // The goldens' experts reduce over 64 or 96 (a_d64_gqa) and 128 or 160 (b_d128_clip8)
    // values: group 32 is the one size both fit. Their random weights amplify every error (fp8
    // moves these logits by up to a fifth of their range), so the bounds only catch a wrong
    // scale or layout, which gives errors of order 1 and top-1 agreement near chance.
    for (const char* name : {"a_d64_gqa", "b_d128_clip8"}) {
        TempDir tmp;
        const std::string out = tmp.file("int4");
        const std::string source = testing::golden_dir(name);
        REQUIRE(write_int4(source, out, 32).ok());
        auto int4 = open_cpu(out, WeightFormat::kAsStored);
        auto bf16 = open_cpu(source, WeightFormat::kBF16);
        double worst = 0;
        int top1_equal = 0;
        int positions = 0;
        const auto golden = testing::load_json(source + "/golden.json");
        for (const auto& golden_case : golden["cases"]) {
            const auto ids = testing::to_ids(golden_case["ids"]);
            const auto a = testing::forward_all(*int4, ids, testing::scrambled_blocks(64));
            const auto b = testing::forward_all(*bf16, ids, testing::scrambled_blocks(64));
            for (size_t p = 0; p < a.size(); ++p) {
                worst = std::max(worst, testing::relative_max_diff(a[p], b[p]));
                top1_equal += testing::argmax(a[p]) == testing::argmax(b[p]) ? 1 : 0;
                ++positions;
            }
        }
        MESSAGE(
            std::string(name) << " int4 (group 32) vs bf16 on the cpu: max relative logit error "
                              << worst << ", top-1 agreement " << top1_equal << "/" << positions);
        CHECK(worst < 0.6);
        CHECK(top1_equal >= positions / 2);
    }
}

TEST_CASE("int4 checkpoint: sharded output keeps each scale with its codes and reloads") {
    TempDir tmp;
    const std::string source = testing::golden_dir("b_d128_clip8");
    QuantizeCheckpointOptions options;
    options.format = CheckpointQuantization::kInt4Grouped;
    options.int4_group_size = 32;
    options.max_shard_bytes = 32 << 10;
    auto summary = write_quantized_checkpoint(source, tmp.file("sharded"), options);
    REQUIRE_MESSAGE(summary.ok(), summary.status().to_string());
    CHECK(summary->shards > 2);
    const auto index = testing::load_json(tmp.file("sharded") + "/model.safetensors.index.json");
    int scales = 0;
    for (const auto& [name, shard] : index["weight_map"].items()) {
        if (name.ends_with("_scale")) {
            CHECK(index["weight_map"][name.substr(0, name.size() - 6)] == shard);
            ++scales;
        }
    }
    auto config = load_model_config(source);
    REQUIRE(config.ok());
    CHECK(scales == 3 * config->n_layer);
    CHECK(index["metadata"]["total_size"] == summary->bytes_out);
    REQUIRE(write_int4(source, tmp.file("single"), 32).ok());
    CHECK(logits(tmp.file("sharded"), WeightFormat::kAsStored, kIds) ==
          logits(tmp.file("single"), WeightFormat::kAsStored, kIds));
}

TEST_CASE("int4 checkpoint: bad requests and bad checkpoints are refused by name") {
    TempDir tmp;
    const std::string source_dir = testing::golden_dir("b_d128_clip8");
    const std::string out = tmp.file("int4");

    SUBCASE("a group size that does not divide the experts' dimensions") {
        auto result = write_int4(source_dir, out, 128);  // ffn_hidden_size 160
        REQUIRE_FALSE(result.ok());
        CHECK(result.status().message().find("'quantization_config.group_size'") !=
              std::string::npos);
        CHECK(result.status().message().find("ffn_hidden_size 160") != std::string::npos);
        CHECK_FALSE(fs::exists(out));
        CHECK_FALSE(fs::exists(out + ".partial"));
        CHECK_FALSE(write_int4(source_dir, out, 48).ok());
    }
    SUBCASE("an int4 checkpoint is not quantised twice") {
        REQUIRE(write_int4(source_dir, out, 32).ok());
        auto again = write_int4(out, tmp.file("again"), 32);
        REQUIRE_FALSE(again.ok());
        CHECK(again.status().message().find("already quantised") != std::string::npos);
    }
    SUBCASE("config fields of another format") {
        REQUIRE(write_int4(source_dir, out, 32).ok());
        const nlohmann::json good = {{"quant_method", "sluice_int4"},
                                     {"bits", 4},
                                     {"group_size", 32},
                                     {"scales", "float16_per_group"},
                                     {"symmetric", true}};
        for (const auto& [field, value] :
             std::vector<std::pair<std::string, nlohmann::json>>{{"bits", 8},
                                                                 {"group_size", "32"},
                                                                 {"group_size", 64},
                                                                 {"scales", "float32"},
                                                                 {"symmetric", false}}) {
            nlohmann::json bad = good;
            bad[field] = value;
            write_config_with(source_dir, out, bad);
            auto config = load_model_config(out);
            REQUIRE_FALSE(config.ok());
            CHECK_MESSAGE(
                config.status().message().find("quantization_config." + field) != std::string::npos,
                config.status().message());
        }
        write_config_with(source_dir, out, good);
        CHECK(load_model_config(out).ok());
    }
    SUBCASE("a missing scale, a scale of the wrong dtype, unquantised experts") {
        REQUIRE(write_int4(source_dir, out, 32).ok());
        const std::string victim = "transformer.blocks.1.ffn.experts.mlp.w2";
        rewrite_checkpoint(out, [&](std::vector<TensorToWrite>& tensors) {
            std::erase_if(tensors, [&](const TensorToWrite& t) {
                return t.name == int4_scale_tensor_name(victim);
            });
        });
        auto opened = open_cpu_backend(out, {WeightFormat::kAsStored, 1});
        REQUIRE_FALSE(opened.ok());
        CHECK(opened.status().message().find(int4_scale_tensor_name(victim)) != std::string::npos);
        CHECK(opened.status().message().find("missing") != std::string::npos);

        const std::string other = tmp.file("other");
        REQUIRE(write_int4(source_dir, other, 32).ok());
        std::vector<float> f32_scales;
        rewrite_checkpoint(other, [&](std::vector<TensorToWrite>& tensors) {
            for (TensorToWrite& t : tensors) {
                if (t.name == int4_scale_tensor_name(victim)) {
                    f32_scales.assign(t.bytes.size() / 2, 1.0f);
                    t.dtype = DType::kF32;
                    t.bytes = {reinterpret_cast<const uint8_t*>(f32_scales.data()),
                               f32_scales.size() * 4};
                }
            }
        });
        auto wrong_dtype = open_cpu_backend(other, {WeightFormat::kAsStored, 1});
        REQUIRE_FALSE(wrong_dtype.ok());
        CHECK(wrong_dtype.status().message().find("dtype F32, expected F16") != std::string::npos);

        // The unquantised checkpoint under an int4 config: its experts are not packed codes.
        const std::string plain = tmp.file("plain");
        fs::create_directories(plain);
        fs::copy_file(source_dir + "/model.safetensors", plain + "/model.safetensors");
        write_config_with(source_dir, plain,
                          testing::load_json(out + "/config.json")["quantization_config"]);
        auto unpacked = open_cpu_backend(plain, {WeightFormat::kAsStored, 1});
        REQUIRE_FALSE(unpacked.ok());
        CHECK(unpacked.status().message().find("ffn.experts.mlp.w1") != std::string::npos);
    }
}

}  // namespace sluice::inference
