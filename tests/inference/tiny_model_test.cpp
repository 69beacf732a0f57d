// The random tiny checkpoint: loads through the normal path, is reproducible from its seed, and
// gives non-degenerate outputs.
#include "inference/tiny_model.h"

#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "inference/cpu/dbrx.h"
#include "inference/cpu_backend.h"
#include "inference_test_support.h"

namespace sluice::inference {
namespace {

std::string read_all(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

}  // namespace

TEST_CASE("tiny model: writes a loadable DBRX checkpoint with the real vocabulary") {
    testing::TempDir dir;
    bool tokenizer_called = false;
    TinyModelOptions options{.preset = TinyPreset::kTiny, .seed = 5, .dtype = DType::kBF16};
    options.write_tokenizer = [&](const std::string& path) {
        tokenizer_called = path == dir.path();
        return Status::ok_status();
    };
    auto summary = write_tiny_model(dir.path(), options);
    REQUIRE_MESSAGE(summary.ok(), summary.status().to_string());
    CHECK(tokenizer_called);
    CHECK(summary->config.n_vocab == 100352);
    CHECK(summary->bytes_written == summary->config.n_params_total() * 2);

    auto backend = open_cpu_backend(dir.path(), {WeightFormat::kAsStored, 2});
    REQUIRE_MESSAGE(backend.ok(), backend.status().to_string());
    REQUIRE((*backend)->configure_kv_cache({16, 8}).ok());
    const std::vector<int32_t> ids = {100, 2000, 30000, 4000, 50000, 60000, 70000, 100351};
    const auto rows = testing::forward_all(**backend, ids, {0});
    std::set<int32_t> argmaxes;
    for (const auto& row : rows) {
        double sum = 0;
        double sum_sq = 0;
        int non_finite = 0;
        for (float v : row) {
            non_finite += std::isfinite(v) ? 0 : 1;
            sum += v;
            sum_sq += static_cast<double>(v) * v;
        }
        CHECK(non_finite == 0);
        const double mean = sum / static_cast<double>(row.size());
        const double std = std::sqrt(sum_sq / static_cast<double>(row.size()) - mean * mean);
        CHECK(std > 0.5);  // logits spread, not collapsed
        CHECK(std < 20.0);
        argmaxes.insert(testing::argmax(row));
    }
    CHECK(argmaxes.size() >= 4);  // different inputs lead to different predictions
}

TEST_CASE("tiny model: routing uses many experts and many distinct top-4 sets") {
    testing::TempDir dir;
    REQUIRE(write_tiny_model(dir.path(), {.preset = TinyPreset::kTiny, .seed = 9}).ok());
    auto config = load_model_config(dir.path());
    auto checkpoint = Checkpoint::open(dir.path());
    REQUIRE((config.ok() && checkpoint.ok()));
    auto weights = cpu::load_dbrx_weights(*config, **checkpoint, WeightFormat::kF32);
    // Route LayerNorm'd embeddings of 256 tokens through layer 0's router.
    const int64_t d = config->d_model;
    std::set<int32_t> experts;
    std::set<std::vector<int32_t>> sets;
    std::vector<float> x(static_cast<size_t>(d));
    std::vector<float> logits(16);
    for (int32_t token = 0; token < 100352; token += 392) {
        weights.embedding.row_to_f32(token, x.data());
        cpu::layer_norm(x.data(), weights.layers[0].norm_2.data(), 1, d, 1e-5f, x.data());
        for (int64_t e = 0; e < 16; ++e) {
            std::vector<float> row(static_cast<size_t>(d));
            weights.layers[0].router.row_to_f32(e, row.data());
            double dot = 0;
            for (int64_t j = 0; j < d; ++j) {
                dot += row[static_cast<size_t>(j)] * x[static_cast<size_t>(j)];
            }
            logits[static_cast<size_t>(e)] = static_cast<float>(dot);
        }
        std::vector<int32_t> chosen(4);
        std::vector<float> w(4);
        cpu::route_top_k(logits.data(), 16, 4, *config, chosen.data(), w.data());
        experts.insert(chosen.begin(), chosen.end());
        std::sort(chosen.begin(), chosen.end());
        sets.insert(chosen);
    }
    CHECK(experts.size() == 16);
    CHECK(sets.size() >= 100);
}

TEST_CASE("tiny model: the same seed writes the same bytes, another seed others") {
    testing::TempDir a;
    testing::TempDir b;
    testing::TempDir c;
    REQUIRE(write_tiny_model(a.path(), {.seed = 1, .dtype = DType::kBF16}).ok());
    REQUIRE(write_tiny_model(b.path(), {.seed = 1, .dtype = DType::kBF16}).ok());
    REQUIRE(write_tiny_model(c.path(), {.seed = 2, .dtype = DType::kBF16}).ok());
    const std::string weights_a = read_all(a.file("model.safetensors"));
    CHECK(weights_a == read_all(b.file("model.safetensors")));
    CHECK(weights_a != read_all(c.file("model.safetensors")));
    CHECK(write_tiny_model(a.path(), {.dtype = DType::kF16}).status().code() ==
          StatusCode::kInvalidArgument);
}

}  // namespace sluice::inference
