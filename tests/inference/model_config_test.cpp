// Parsing DBRX config.json: Hugging Face defaults, the real model's shape, and rejections that
// name the field.
#include "inference/model_config.h"

#include <doctest/doctest.h>

#include <cmath>

#include "inference_test_support.h"

namespace sluice::inference {
namespace {

using nlohmann::json;

json dbrx_132b() {
    return json::parse(R"({
      "architectures": ["DbrxForCausalLM"], "model_type": "dbrx",
      "d_model": 6144, "n_heads": 48, "n_layers": 40, "max_seq_len": 32768, "vocab_size": 100352,
      "attn_config": {"clip_qkv": 8, "kv_n_heads": 8, "rope_theta": 500000},
      "ffn_config": {"ffn_act_fn": {"name": "silu"}, "ffn_hidden_size": 10752,
                     "moe_jitter_eps": 0.01, "moe_loss_weight": 0.05,
                     "moe_normalize_expert_weights": 1, "moe_num_experts": 16, "moe_top_k": 4},
      "tie_word_embeddings": false})");
}

std::string error_of(const json& config) {
    auto parsed = parse_model_config(config);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.status().code() == StatusCode::kInvalidArgument);
    return parsed.status().message();
}

}  // namespace

TEST_CASE("model config: the 132B DBRX config parses with its documented sizes") {
    auto config = parse_model_config(dbrx_132b());
    REQUIRE_MESSAGE(config.ok(), config.status().to_string());
    CHECK(config->head_dim() == 128);
    CHECK(config->n_embd_kv() == 1024);
    CHECK(config->n_qkv() == 8192);
    REQUIRE(config->clip_qkv.has_value());
    CHECK(*config->clip_qkv == 8.0f);
    CHECK(config->rope_theta == 500000.0);
    // DBRX is published as 132B total and 36B active parameters.
    CHECK(std::llround(static_cast<double>(config->n_params_total()) / 1e9) == 132);
    CHECK(std::llround(static_cast<double>(config->n_params_active()) / 1e9) == 36);
    CHECK(config->kv_bytes_per_token(2) == 2 * 40 * 1024 * 2);
}

TEST_CASE("model config: absent fields take Hugging Face's DbrxConfig defaults") {
    auto config = parse_model_config(json{{"model_type", "dbrx"}});
    REQUIRE(config.ok());
    CHECK(config->d_model == 2048);
    CHECK(config->n_head == 16);
    CHECK(config->n_layer == 24);
    CHECK(config->n_vocab == 32000);
    CHECK(config->n_head_kv == 1);
    CHECK_FALSE(config->clip_qkv.has_value());
    CHECK(config->rope_theta == 10000.0);
    CHECK(config->n_ff == 3584);
    CHECK(config->n_expert == 4);
    CHECK(config->n_expert_used == 1);
    CHECK(config->activation == Activation::kSilu);
    REQUIRE(config->expert_weights_norm_p.has_value());
    CHECK(*config->expert_weights_norm_p == 1.0);
}

TEST_CASE("model config: null clip_qkv and null normalisation are accepted as 'none'") {
    json config = dbrx_132b();
    config["attn_config"]["clip_qkv"] = nullptr;
    config["ffn_config"]["moe_normalize_expert_weights"] = nullptr;
    config["ffn_config"]["ffn_act_fn"] = {{"name", "gelu"}};
    auto parsed = parse_model_config(config);
    REQUIRE(parsed.ok());
    CHECK_FALSE(parsed->clip_qkv.has_value());
    CHECK_FALSE(parsed->expert_weights_norm_p.has_value());
    CHECK(parsed->activation == Activation::kGelu);
}

TEST_CASE("model config: what cannot run is rejected naming the field") {
    json config = dbrx_132b();
    config["tie_word_embeddings"] = true;
    CHECK(error_of(config).find("'tie_word_embeddings'") != std::string::npos);

    config = dbrx_132b();
    config["ffn_config"]["ffn_act_fn"]["name"] = "relu6";
    CHECK(error_of(config).find("'ffn_config.ffn_act_fn.name'") != std::string::npos);

    config = dbrx_132b();
    config["n_heads"] = 40;  // 6144 / 40 is not whole
    CHECK(error_of(config).find("'n_heads'") != std::string::npos);

    config = dbrx_132b();
    config["attn_config"]["kv_n_heads"] = 5;
    CHECK(error_of(config).find("'attn_config.kv_n_heads'") != std::string::npos);

    config = dbrx_132b();
    config["ffn_config"]["moe_top_k"] = 17;
    CHECK(error_of(config).find("'ffn_config.moe_top_k'") != std::string::npos);

    config = dbrx_132b();
    config["d_model"] = "big";
    CHECK(error_of(config).find("'d_model'") != std::string::npos);

    config = dbrx_132b();
    config["model_type"] = "llama";
    CHECK(error_of(config).find("'model_type'") != std::string::npos);

    config = dbrx_132b();
    config["attn_config"]["clip_qkv"] = -1;
    CHECK(error_of(config).find("'attn_config.clip_qkv'") != std::string::npos);

    config = dbrx_132b();
    config["vocab_size"] = 0;
    CHECK(error_of(config).find("'vocab_size'") != std::string::npos);
}

TEST_CASE("model config: writing and reading back gives the same config") {
    auto config = parse_model_config(dbrx_132b());
    REQUIRE(config.ok());
    auto again = parse_model_config(model_config_to_json(*config));
    REQUIRE(again.ok());
    CHECK(again->d_model == config->d_model);
    CHECK(again->n_head_kv == config->n_head_kv);
    CHECK(again->clip_qkv == config->clip_qkv);
    CHECK(again->n_expert_used == config->n_expert_used);
    CHECK(again->expert_weights_norm_p == config->expert_weights_norm_p);
}

TEST_CASE("model config: the golden checkpoints' configs load from disk") {
    auto config = load_model_config(testing::golden_dir("b_d128_clip8"));
    REQUIRE_MESSAGE(config.ok(), config.status().to_string());
    CHECK(config->n_layer == 3);
    CHECK(config->n_head_kv == 4);
    CHECK(load_model_config("/nonexistent/dir").status().code() == StatusCode::kNotFound);
}

}  // namespace sluice::inference
