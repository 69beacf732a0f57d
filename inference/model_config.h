#pragma once
// The DBRX model configuration, read from a Hugging Face `config.json` (model_type "dbrx").
//
// Fields absent from the file take the defaults of Hugging Face's DbrxConfig,
// DbrxAttentionConfig and DbrxFFNConfig. A configuration this engine cannot run (tied
// embeddings, an unknown activation, heads that do not divide d_model, ...) is rejected with
// kInvalidArgument naming the field, e.g. `config field 'attn_config.kv_n_heads': 3 does not
// divide n_heads 8`.
//
// Thread safety: ModelConfig is an immutable value once parsed.

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace sluice::inference {

enum class Activation { kSilu, kGelu };

// How the checkpoint's weights are stored. kFp8PerChannel: a checkpoint written by
// `sluice model quantize --weights fp8` (inference/fp8_weights.h): the weight matrices in F8_E4M3
// with one fp32 scale per output channel beside each, config.json's
// `quantization_config: {"quant_method": "sluice_fp8", "weight_dtype": "float8_e4m3fn",
// "scales": "per_channel"}`. Hugging Face cannot load it (its quant_method is ours alone).
// kInt4Grouped: written by `sluice model quantize --weights int4` (inference/int4_weights.h):
// the experts' w1, v1 and w2 as packed int4 codes with fp16 scales per group of
// `int4_group_size` values, the other tensors as in the source; config.json's
// `quantization_config: {"quant_method": "sluice_int4", "bits": 4, "group_size": 128,
// "scales": "float16_per_group", "symmetric": true}`.
enum class CheckpointQuantization { kNone, kFp8PerChannel, kInt4Grouped };

struct ModelConfig {
    int64_t d_model = 2048;
    int64_t n_head = 16;
    int64_t n_layer = 24;
    int64_t max_seq_len = 2048;
    int64_t n_vocab = 32000;

    // attn_config
    int64_t n_head_kv = 1;
    std::optional<float> clip_qkv;  // clamp of the fused QKV projection to [-c, c]
    double rope_theta = 10000.0;

    // ffn_config
    Activation activation = Activation::kSilu;
    int64_t n_ff = 3584;  // ffn_hidden_size, per expert
    int64_t n_expert = 4;
    int64_t n_expert_used = 1;  // moe_top_k
    // p of the p-norm that renormalises the top-k router weights; absent: no renormalisation.
    std::optional<double> expert_weights_norm_p = 1.0;

    float norm_eps = 1e-5f;  // nn.LayerNorm's default; DBRX does not configure it

    CheckpointQuantization quantization = CheckpointQuantization::kNone;  // quantization_config
    int64_t int4_group_size = 128;  // quantization_config.group_size of kInt4Grouped

    int64_t head_dim() const { return d_model / n_head; }
    int64_t n_embd_kv() const { return n_head_kv * head_dim(); }
    int64_t n_qkv() const { return d_model + 2 * n_embd_kv(); }

    // Parameters stored in the checkpoint, and those touched per token (embedding row, one
    // lm_head, and only n_expert_used experts per layer). The embedding table counts in total
    // but only one row of it in active.
    int64_t n_params_total() const;
    int64_t n_params_active() const;
    // Bytes of K and V per token over all layers for an element size in bytes.
    int64_t kv_bytes_per_token(int64_t element_bytes) const;
};

// Parses the JSON object of a DBRX config.json.
Result<ModelConfig> parse_model_config(const nlohmann::json& json);

// Reads and parses `<dir>/config.json`. kNotFound when absent, kInvalidArgument when malformed.
Result<ModelConfig> load_model_config(const std::string& model_dir);

// The inverse of parse_model_config: a config.json object Hugging Face's DbrxConfig accepts.
nlohmann::json model_config_to_json(const ModelConfig& config);

}  // namespace sluice::inference
