// fp8 checkpoints written by `sluice model quantize` (inference/quantized_checkpoint.h): the
// format, that they reload without quantising again, what the CPU backend makes of them, and the
// errors for bad ones.
#include "inference/quantized_checkpoint.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "inference/cpu_backend.h"
#include "inference/dbrx_layout.h"
#include "inference/fp8_weights.h"
#include "inference/safetensors_writer.h"
#include "inference_test_support.h"
#include "widened_checkpoint.h"

namespace sluice::inference {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

const char* const kGolden = "a_d64_gqa";

std::vector<float> to_f32(const TensorView& t) {
    std::vector<float> out(static_cast<size_t>(t.n_elements()));
    convert_to_f32(t.dtype, t.data, t.n_elements(), out.data());
    return out;
}

std::unique_ptr<Backend> open_cpu(const std::string& dir, WeightFormat weights) {
    auto backend = open_cpu_backend(dir, {weights, 2});
    REQUIRE_MESSAGE(backend.ok(), backend.status().to_string());
    REQUIRE((*backend)->configure_kv_cache({16, 64}).ok());
    return std::move(*backend);
}

std::vector<std::vector<float>> logits(const std::string& dir, WeightFormat weights) {
    auto backend = open_cpu(dir, weights);
    const std::vector<int32_t> ids = {1, 17, 300, 5, 42, 99, 7, 250, 3};
    return testing::forward_all(*backend, ids, testing::scrambled_blocks(64));
}

// Rewrites `dir`'s single model.safetensors with `edit` applied to its tensor list.
void rewrite_checkpoint(const std::string& dir,
                        const std::function<void(std::vector<TensorToWrite>&)>& edit) {
    auto checkpoint = Checkpoint::open(dir);
    REQUIRE(checkpoint.ok());
    std::vector<std::vector<uint8_t>> copies;
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

}  // namespace

TEST_CASE(
    "quantized checkpoint: fp8 codes and per-channel scales, the rest copied, config marked") {
    TempDir tmp;
    const std::string source_dir = testing::golden_dir(kGolden);
    const std::string out = tmp.file("fp8");
    auto summary = write_fp8_checkpoint(source_dir, out);
    REQUIRE_MESSAGE(summary.ok(), summary.status().to_string());
    CHECK(summary->shards == 1);
    CHECK_FALSE(fs::exists(out + ".partial"));

    auto source_config = load_model_config(source_dir);
    auto config = load_model_config(out);
    REQUIRE(config.ok());
    CHECK(config->quantization == CheckpointQuantization::kFp8PerChannel);
    CHECK(config->d_model == source_config->d_model);
    CHECK(summary->tensors_quantized == 1 + 5 * config->n_layer);  // lm_head + 5 per layer
    auto source = Checkpoint::open(source_dir);
    auto quantized = Checkpoint::open(out);
    REQUIRE(quantized.ok());
    REQUIRE_MESSAGE(check_dbrx_checkpoint(**quantized, *config).ok(),
                    check_dbrx_checkpoint(**quantized, *config).to_string());

    for (const auto& [name, view] : (*source)->tensors()) {
        const TensorView* q = (*quantized)->find(name);
        REQUIRE(q != nullptr);
        CHECK(q->shape == view.shape);
        if (!fp8_quantizes(name)) {
            CHECK(q->dtype == view.dtype);  // copied byte for byte
            CHECK(std::memcmp(q->data, view.data, static_cast<size_t>(view.n_bytes)) == 0);
            continue;
        }
        CHECK(q->dtype == DType::kF8E4M3);
        const TensorView* scale = (*quantized)->find(fp8_scale_tensor_name(name));
        REQUIRE(scale != nullptr);
        CHECK(scale->dtype == DType::kF32);
        // The same codes and scales as quantising the source matrix directly.
        const auto values = to_f32(view);
        const int64_t rows = view.shape[0];
        const int64_t cols = view.shape[1];
        std::vector<uint8_t> codes(values.size());
        std::vector<float> scales(static_cast<size_t>(scale->n_elements()));
        if (fp8_column_scales(name)) {
            CHECK(scale->shape == std::vector<int64_t>{config->n_expert, cols});
            for (int64_t e = 0; e < config->n_expert; ++e) {
                quantize_fp8_columns(values.data() + e * config->n_ff * cols, config->n_ff, cols,
                                     codes.data() + e * config->n_ff * cols,
                                     scales.data() + e * cols);
            }
        } else {
            CHECK(scale->shape == std::vector<int64_t>{rows});
            quantize_fp8_rows(values.data(), rows, cols, codes.data(), scales.data());
        }
        CHECK(std::memcmp(q->data, codes.data(), codes.size()) == 0);
        CHECK(to_f32(*scale) == scales);
    }
}

TEST_CASE("quantized checkpoint: the cpu backend runs it as its dequantised weights") {
    TempDir tmp;
    const std::string source_dir = testing::golden_dir(kGolden);
    const std::string out = tmp.file("fp8");
    REQUIRE(write_fp8_checkpoint(source_dir, out).ok());

    // A plain bf16 checkpoint holding code · scale for each quantised matrix: the quantised
    // checkpoint must give exactly its logits.
    const std::string plain = tmp.file("plain");
    testing::write_widened_checkpoint(source_dir, out, plain);
    const auto from_fp8 = logits(out, WeightFormat::kAsStored);
    CHECK(from_fp8 == logits(plain, WeightFormat::kAsStored));

    // Against the unquantised model: close, but not equal (fp8 keeps 3 mantissa bits). A wrong
    // scale or layout gives errors of order 1.
    const auto reference = logits(source_dir, WeightFormat::kF32);
    double worst = 0;
    for (size_t p = 0; p < reference.size(); ++p) {
        worst = std::max(worst, testing::relative_max_diff(from_fp8[p], reference[p]));
    }
    MESSAGE("fp8 checkpoint on the cpu vs f32 weights: max relative logit difference " << worst);
    CHECK(worst > 0);
    CHECK(worst < 0.35);
    // f32 and int8 formats are asked of the dequantised weights too.
    CHECK(logits(out, WeightFormat::kF32).size() == reference.size());
}

TEST_CASE("quantized checkpoint: sharded output keeps each scale with its matrix and reloads") {
    TempDir tmp;
    const std::string out = tmp.file("fp8");
    QuantizeCheckpointOptions options;
    options.max_shard_bytes = 64 << 10;
    auto summary = write_fp8_checkpoint(testing::golden_dir(kGolden), out, options);
    REQUIRE_MESSAGE(summary.ok(), summary.status().to_string());
    CHECK(summary->shards > 2);
    const auto index = testing::load_json(out + "/model.safetensors.index.json");
    for (const auto& [name, shard] : index["weight_map"].items()) {
        if (name.size() > 6 && name.compare(name.size() - 6, 6, "_scale") == 0) {
            CHECK(index["weight_map"][name.substr(0, name.size() - 6)] == shard);
        }
    }
    CHECK(index["metadata"]["total_size"] == summary->bytes_out);
    TempDir single_dir;
    REQUIRE(write_fp8_checkpoint(testing::golden_dir(kGolden), single_dir.file("fp8")).ok());
    CHECK(logits(out, WeightFormat::kAsStored) ==
          logits(single_dir.file("fp8"), WeightFormat::kAsStored));
}

TEST_CASE("quantized checkpoint: bad requests and bad checkpoints are refused by name") {
    TempDir tmp;
    const std::string source_dir = testing::golden_dir(kGolden);
    const std::string out = tmp.file("fp8");

    SUBCASE("the output folder exists") {
        fs::create_directories(out);
        auto result = write_fp8_checkpoint(source_dir, out);
        REQUIRE_FALSE(result.ok());
        CHECK(result.status().code() == StatusCode::kInvalidArgument);
        CHECK(result.status().message().find("exists") != std::string::npos);
    }
    SUBCASE("an unfinished earlier attempt is replaced") {
        fs::create_directories(out + ".partial");
        std::ofstream(out + ".partial/model.safetensors") << "half";
        REQUIRE(write_fp8_checkpoint(source_dir, out).ok());
        CHECK(Checkpoint::open(out).ok());
        CHECK_FALSE(fs::exists(out + ".partial"));
    }
    SUBCASE("a quantised checkpoint is not quantised twice") {
        REQUIRE(write_fp8_checkpoint(source_dir, out).ok());
        auto again = write_fp8_checkpoint(out, tmp.file("fp8-again"));
        REQUIRE_FALSE(again.ok());
        CHECK(again.status().message().find("already quantised") != std::string::npos);
    }
    SUBCASE("a missing scale, a scale of the wrong dtype, codes not in fp8") {
        REQUIRE(write_fp8_checkpoint(source_dir, out).ok());
        const std::string victim = "transformer.blocks.0.ffn.experts.mlp.w2";
        std::vector<float> f32_codes;
        rewrite_checkpoint(out, [&](std::vector<TensorToWrite>& tensors) {
            std::erase_if(tensors, [&](const TensorToWrite& t) {
                return t.name == fp8_scale_tensor_name(victim);
            });
        });
        auto opened = open_cpu_backend(out, {WeightFormat::kAsStored, 1});
        REQUIRE_FALSE(opened.ok());
        CHECK(opened.status().message().find(fp8_scale_tensor_name(victim)) != std::string::npos);
        CHECK(opened.status().message().find("missing") != std::string::npos);

        TempDir other;
        REQUIRE(write_fp8_checkpoint(source_dir, other.file("fp8")).ok());
        std::vector<uint16_t> bf16_scales;
        rewrite_checkpoint(other.file("fp8"), [&](std::vector<TensorToWrite>& tensors) {
            for (TensorToWrite& t : tensors) {
                if (t.name == fp8_scale_tensor_name(victim)) {
                    bf16_scales.assign(t.bytes.size() / 4, 0x3f80);  // 1.0 in bf16
                    t.dtype = DType::kBF16;
                    t.bytes = {reinterpret_cast<const uint8_t*>(bf16_scales.data()),
                               bf16_scales.size() * 2};
                }
            }
        });
        auto wrong_dtype = open_cpu_backend(other.file("fp8"), {WeightFormat::kAsStored, 1});
        REQUIRE_FALSE(wrong_dtype.ok());
        CHECK(wrong_dtype.status().message().find("dtype BF16, expected F32") != std::string::npos);
    }
    SUBCASE("a quantization_config this engine does not read") {
        fs::create_directories(out);
        fs::copy_file(source_dir + "/model.safetensors", out + "/model.safetensors");
        auto json = testing::load_json(source_dir + "/config.json");
        json["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 4}};
        std::ofstream(out + "/config.json") << json.dump();
        auto config = load_model_config(out);
        REQUIRE_FALSE(config.ok());
        CHECK(config.status().message().find("quantization_config.quant_method") !=
              std::string::npos);
        // The unquantised checkpoint under a fp8 config: its matrices are not F8_E4M3.
        json["quantization_config"] = {{"quant_method", "sluice_fp8"},
                                       {"weight_dtype", "float8_e4m3fn"},
                                       {"scales", "per_channel"}};
        std::ofstream(out + "/config.json", std::ios::trunc) << json.dump();
        auto opened = open_cpu_backend(out, {WeightFormat::kAsStored, 1});
        REQUIRE_FALSE(opened.ok());
        CHECK(opened.status().message().find("expected F8_E4M3") != std::string::npos);
    }
}

}  // namespace sluice::inference
