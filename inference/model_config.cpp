#include "inference/model_config.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "inference/int4_weights.h"

namespace sluice::inference {

namespace {

using nlohmann::json;

Status field_error(const std::string& field, const std::string& what) {
    return invalid_argument("config field '" + field + "': " + what);
}

// Reads an integer field; absent or null keeps `*out` (the Hugging Face default).
Status read_int(const json& object, const std::string& prefix, const char* key, int64_t* out) {
    auto it = object.find(key);
    if (it == object.end() || it->is_null()) {
        return Status::ok_status();
    }
    if (it->is_number_integer()) {
        *out = it->get<int64_t>();
        return Status::ok_status();
    }
    // Some exporters write integral values as floats (8.0); accept those that are whole.
    if (it->is_number_float()) {
        double value = it->get<double>();
        if (std::floor(value) == value && std::abs(value) < 9e15) {
            *out = static_cast<int64_t>(value);
            return Status::ok_status();
        }
    }
    return field_error(prefix + key, "expected an integer, found " + it->dump());
}

// Reads a number field into an optional; JSON null clears it, absence keeps the default.
Status read_optional_number(const json& object, const std::string& prefix, const char* key,
                            std::optional<double>* out) {
    auto it = object.find(key);
    if (it == object.end()) {
        return Status::ok_status();
    }
    if (it->is_null()) {
        out->reset();
        return Status::ok_status();
    }
    if (!it->is_number()) {
        return field_error(prefix + key, "expected a number or null, found " + it->dump());
    }
    *out = it->get<double>();
    return Status::ok_status();
}

Status require_positive(const std::string& field, int64_t value) {
    if (value <= 0) {
        return field_error(field, "must be positive, found " + std::to_string(value));
    }
    return Status::ok_status();
}

Status parse_attn(const json& attn, ModelConfig* config) {
    if (!attn.is_object()) {
        return field_error("attn_config", "expected an object, found " + attn.dump());
    }
    const std::string prefix = "attn_config.";
    SLUICE_RETURN_IF_ERROR(read_int(attn, prefix, "kv_n_heads", &config->n_head_kv));
    std::optional<double> clip;
    SLUICE_RETURN_IF_ERROR(read_optional_number(attn, prefix, "clip_qkv", &clip));
    if (clip) {
        if (!(*clip > 0)) {
            return field_error(prefix + "clip_qkv", "must be positive or null, found " +
                                                        std::to_string(*clip));
        }
        config->clip_qkv = static_cast<float>(*clip);
    }
    std::optional<double> theta = config->rope_theta;
    SLUICE_RETURN_IF_ERROR(read_optional_number(attn, prefix, "rope_theta", &theta));
    if (!theta || !(*theta > 1.0)) {
        return field_error(prefix + "rope_theta", "must be a number above 1");
    }
    config->rope_theta = *theta;
    return Status::ok_status();
}

Status parse_ffn(const json& ffn, ModelConfig* config) {
    if (!ffn.is_object()) {
        return field_error("ffn_config", "expected an object, found " + ffn.dump());
    }
    const std::string prefix = "ffn_config.";
    SLUICE_RETURN_IF_ERROR(read_int(ffn, prefix, "ffn_hidden_size", &config->n_ff));
    SLUICE_RETURN_IF_ERROR(read_int(ffn, prefix, "moe_num_experts", &config->n_expert));
    SLUICE_RETURN_IF_ERROR(read_int(ffn, prefix, "moe_top_k", &config->n_expert_used));
    SLUICE_RETURN_IF_ERROR(read_optional_number(ffn, prefix, "moe_normalize_expert_weights",
                                                &config->expert_weights_norm_p));
    if (config->expert_weights_norm_p && !(*config->expert_weights_norm_p > 0)) {
        return field_error(prefix + "moe_normalize_expert_weights",
                           "must be a positive p or null");
    }
    auto act = ffn.find("ffn_act_fn");
    if (act != ffn.end() && !act->is_null()) {
        if (!act->is_object()) {
            return field_error(prefix + "ffn_act_fn", "expected an object, found " + act->dump());
        }
        auto name = act->find("name");
        if (name != act->end()) {
            if (!name->is_string()) {
                return field_error(prefix + "ffn_act_fn.name", "expected a string");
            }
            const std::string value = name->get<std::string>();
            if (value == "silu") {
                config->activation = Activation::kSilu;
            } else if (value == "gelu") {
                config->activation = Activation::kGelu;
            } else {
                return field_error(prefix + "ffn_act_fn.name",
                                   "unknown activation '" + value + "', expected silu or gelu");
            }
        }
        if (act->size() > (name == act->end() ? 0u : 1u)) {
            return field_error(prefix + "ffn_act_fn",
                               "activation parameters are not supported: " + act->dump());
        }
    }
    return Status::ok_status();
}

Status validate(const ModelConfig& config) {
    SLUICE_RETURN_IF_ERROR(require_positive("d_model", config.d_model));
    SLUICE_RETURN_IF_ERROR(require_positive("n_heads", config.n_head));
    SLUICE_RETURN_IF_ERROR(require_positive("n_layers", config.n_layer));
    SLUICE_RETURN_IF_ERROR(require_positive("vocab_size", config.n_vocab));
    SLUICE_RETURN_IF_ERROR(require_positive("max_seq_len", config.max_seq_len));
    SLUICE_RETURN_IF_ERROR(require_positive("attn_config.kv_n_heads", config.n_head_kv));
    SLUICE_RETURN_IF_ERROR(require_positive("ffn_config.ffn_hidden_size", config.n_ff));
    SLUICE_RETURN_IF_ERROR(require_positive("ffn_config.moe_num_experts", config.n_expert));
    SLUICE_RETURN_IF_ERROR(require_positive("ffn_config.moe_top_k", config.n_expert_used));
    if (config.d_model % config.n_head != 0) {
        return field_error("n_heads", std::to_string(config.n_head) + " does not divide d_model " +
                                          std::to_string(config.d_model));
    }
    if (config.head_dim() % 2 != 0) {
        return field_error("n_heads", "head dimension " + std::to_string(config.head_dim()) +
                                          " is odd; rotary embeddings need it even");
    }
    if (config.n_head % config.n_head_kv != 0) {
        return field_error("attn_config.kv_n_heads", std::to_string(config.n_head_kv) +
                                                         " does not divide n_heads " +
                                                         std::to_string(config.n_head));
    }
    if (config.n_expert_used > config.n_expert) {
        return field_error("ffn_config.moe_top_k",
                           std::to_string(config.n_expert_used) + " exceeds moe_num_experts " +
                               std::to_string(config.n_expert));
    }
    // Sizes whose products must stay far inside int64 and inside what one process can map.
    constexpr int64_t kMaxDim = int64_t{1} << 24;
    for (auto [name, value] : {std::pair{"d_model", config.d_model},
                               std::pair{"vocab_size", config.n_vocab},
                               std::pair{"ffn_config.ffn_hidden_size", config.n_ff},
                               std::pair{"n_layers", config.n_layer},
                               std::pair{"ffn_config.moe_num_experts", config.n_expert}}) {
        if (value > kMaxDim) {
            return field_error(name, std::to_string(value) + " is larger than supported");
        }
    }
    if (config.quantization == CheckpointQuantization::kInt4Grouped) {
        return check_int4_group_size(config.int4_group_size, config,
                                     "quantization_config.group_size");
    }
    return Status::ok_status();
}

// The value of `quant.key` must equal `expected`; the message names the field.
Status require_quant_field(const json& quant, const std::string& key, const json& expected) {
    const auto it = quant.find(key);
    if (it == quant.end() || *it != expected) {
        return field_error("quantization_config." + key,
                           "expected " + expected.dump() + ", found " +
                               (it == quant.end() ? std::string("nothing") : it->dump()));
    }
    return Status::ok_status();
}

Status parse_fp8_quantization(const json& quant, ModelConfig* config) {
    SLUICE_RETURN_IF_ERROR(require_quant_field(quant, "weight_dtype", "float8_e4m3fn"));
    SLUICE_RETURN_IF_ERROR(require_quant_field(quant, "scales", "per_channel"));
    config->quantization = CheckpointQuantization::kFp8PerChannel;
    return Status::ok_status();
}

// The group size is checked against the model's dimensions in validate().
Status parse_int4_quantization(const json& quant, ModelConfig* config) {
    SLUICE_RETURN_IF_ERROR(require_quant_field(quant, "bits", 4));
    SLUICE_RETURN_IF_ERROR(require_quant_field(quant, "scales", "float16_per_group"));
    SLUICE_RETURN_IF_ERROR(require_quant_field(quant, "symmetric", true));
    const auto group = quant.find("group_size");
    if (group == quant.end() || !group->is_number_integer()) {
        return field_error("quantization_config.group_size",
                           "expected an integer, found " +
                               (group == quant.end() ? std::string("nothing") : group->dump()));
    }
    config->int4_group_size = group->get<int64_t>();
    config->quantization = CheckpointQuantization::kInt4Grouped;
    return Status::ok_status();
}

// Only the formats `sluice model quantize` writes; any other method is refused by name rather
// than loaded as if its tensors were plain weights.
Status parse_quantization(const json& quant, ModelConfig* config) {
    if (!quant.is_object()) {
        return field_error("quantization_config", "expected an object, found " + quant.dump());
    }
    const auto method = quant.find("quant_method");
    if (method == quant.end() || !method->is_string()) {
        return field_error("quantization_config.quant_method", "expected a string");
    }
    if (*method == "sluice_fp8") {
        return parse_fp8_quantization(quant, config);
    }
    if (*method == "sluice_int4") {
        return parse_int4_quantization(quant, config);
    }
    return field_error("quantization_config.quant_method",
                       method->dump() +
                           " is not supported; this engine reads \"sluice_fp8\" and "
                           "\"sluice_int4\" checkpoints (sluice model quantize) and "
                           "unquantised ones");
}

}  // namespace

int64_t ModelConfig::n_params_total() const {
    int64_t attn = d_model * n_qkv() + d_model * d_model;
    int64_t ffn = d_model * n_expert + 3 * n_expert * n_ff * d_model;
    int64_t per_layer = attn + ffn + 2 * d_model;
    return 2 * n_vocab * d_model + n_layer * per_layer + d_model;
}

int64_t ModelConfig::n_params_active() const {
    int64_t attn = d_model * n_qkv() + d_model * d_model;
    int64_t ffn = d_model * n_expert + 3 * n_expert_used * n_ff * d_model;
    int64_t per_layer = attn + ffn + 2 * d_model;
    return d_model + n_vocab * d_model + n_layer * per_layer + d_model;
}

int64_t ModelConfig::kv_bytes_per_token(int64_t element_bytes) const {
    return 2 * n_layer * n_embd_kv() * element_bytes;
}

Result<ModelConfig> parse_model_config(const json& root) {
    if (!root.is_object()) {
        return invalid_argument("config: expected a JSON object");
    }
    auto model_type = root.find("model_type");
    if (model_type != root.end() &&
        (!model_type->is_string() || model_type->get<std::string>() != "dbrx")) {
        return field_error("model_type", "expected \"dbrx\", found " + model_type->dump());
    }
    ModelConfig config;
    SLUICE_RETURN_IF_ERROR(read_int(root, "", "d_model", &config.d_model));
    SLUICE_RETURN_IF_ERROR(read_int(root, "", "n_heads", &config.n_head));
    SLUICE_RETURN_IF_ERROR(read_int(root, "", "n_layers", &config.n_layer));
    SLUICE_RETURN_IF_ERROR(read_int(root, "", "max_seq_len", &config.max_seq_len));
    SLUICE_RETURN_IF_ERROR(read_int(root, "", "vocab_size", &config.n_vocab));
    auto tied = root.find("tie_word_embeddings");
    if (tied != root.end() && !tied->is_null()) {
        if (!tied->is_boolean()) {
            return field_error("tie_word_embeddings", "expected a boolean");
        }
        if (tied->get<bool>()) {
            return field_error("tie_word_embeddings",
                               "tied embeddings are not supported for dbrx");
        }
    }
    if (auto attn = root.find("attn_config"); attn != root.end() && !attn->is_null()) {
        SLUICE_RETURN_IF_ERROR(parse_attn(*attn, &config));
    }
    if (auto ffn = root.find("ffn_config"); ffn != root.end() && !ffn->is_null()) {
        SLUICE_RETURN_IF_ERROR(parse_ffn(*ffn, &config));
    }
    if (auto quant = root.find("quantization_config"); quant != root.end() && !quant->is_null()) {
        SLUICE_RETURN_IF_ERROR(parse_quantization(*quant, &config));
    }
    SLUICE_RETURN_IF_ERROR(validate(config));
    return config;
}

Result<ModelConfig> load_model_config(const std::string& model_dir) {
    const std::filesystem::path path = std::filesystem::path(model_dir) / "config.json";
    std::ifstream in(path);
    if (!in) {
        return not_found("model config '" + path.string() + "' cannot be opened");
    }
    std::stringstream buffer;
    buffer << in.rdbuf();
    json root = json::parse(buffer.str(), nullptr, /*allow_exceptions=*/false);
    if (root.is_discarded()) {
        return invalid_argument("model config '" + path.string() + "': not valid JSON");
    }
    auto config = parse_model_config(root);
    if (!config.ok()) {
        return config.status().with_context(path.string());
    }
    return config;
}

json model_config_to_json(const ModelConfig& config) {
    json ffn_act = {{"name", config.activation == Activation::kSilu ? "silu" : "gelu"}};
    json norm = config.expert_weights_norm_p ? json(*config.expert_weights_norm_p) : json(nullptr);
    json clip = config.clip_qkv ? json(*config.clip_qkv) : json(nullptr);
    json out{
        {"architectures", {"DbrxForCausalLM"}},
        {"model_type", "dbrx"},
        {"d_model", config.d_model},
        {"n_heads", config.n_head},
        {"n_layers", config.n_layer},
        {"max_seq_len", config.max_seq_len},
        {"vocab_size", config.n_vocab},
        {"tie_word_embeddings", false},
        {"attn_config",
         {{"attn_pdrop", 0.0},
          {"clip_qkv", clip},
          {"kv_n_heads", config.n_head_kv},
          {"rope_theta", config.rope_theta}}},
        {"ffn_config",
         {{"ffn_act_fn", ffn_act},
          {"ffn_hidden_size", config.n_ff},
          {"moe_num_experts", config.n_expert},
          {"moe_top_k", config.n_expert_used},
          {"moe_jitter_eps", 0},
          {"moe_loss_weight", 0.05},
          {"moe_normalize_expert_weights", norm}}},
    };
    if (config.quantization == CheckpointQuantization::kFp8PerChannel) {
        out["quantization_config"] = {{"quant_method", "sluice_fp8"},
                                      {"weight_dtype", "float8_e4m3fn"},
                                      {"scales", "per_channel"}};
    }
    if (config.quantization == CheckpointQuantization::kInt4Grouped) {
        out["quantization_config"] = {{"quant_method", "sluice_int4"},
                                      {"bits", 4},
                                      {"group_size", config.int4_group_size},
                                      {"scales", "float16_per_group"},
                                      {"symmetric", true}};
    }
    return out;
}

}  // namespace sluice::inference
