#include "inference/dbrx_layout.h"

#include <set>

#include "inference/fp8_weights.h"
#include "inference/int4_weights.h"

namespace sluice::inference {

std::string dbrx_block_tensor(int64_t layer, const std::string& suffix) {
    return "transformer.blocks." + std::to_string(layer) + "." + suffix;
}

namespace {

// The experts as packed int4 codes, each followed by its fp16 group scales
// (inference/int4_weights.h); every other tensor as in a plain checkpoint.
std::vector<ExpectedTensor> int4_layout(std::vector<ExpectedTensor> layout,
                                        const ModelConfig& config) {
    std::vector<ExpectedTensor> quantized;
    for (ExpectedTensor& tensor : layout) {
        if (!int4_quantizes(tensor.name)) {
            quantized.push_back(std::move(tensor));
            continue;
        }
        ExpectedTensor scale{int4_scale_tensor_name(tensor.name),
                             int4_scales_shape(tensor.name, config), DType::kF16};
        tensor.shape = int4_codes_shape(tensor.name, config);
        tensor.dtype = DType::kU8;
        quantized.push_back(std::move(tensor));
        quantized.push_back(std::move(scale));
    }
    return quantized;
}

}  // namespace

std::vector<ExpectedTensor> dbrx_tensor_layout(const ModelConfig& config) {
    const int64_t d = config.d_model;
    const int64_t experts_rows = config.n_expert * config.n_ff;
    std::vector<ExpectedTensor> layout;
    layout.push_back({"transformer.wte.weight", {config.n_vocab, d}, std::nullopt});
    for (int64_t layer = 0; layer < config.n_layer; ++layer) {
        layout.push_back(
            {dbrx_block_tensor(layer, "norm_attn_norm.norm_1.weight"), {d}, std::nullopt});
        layout.push_back({dbrx_block_tensor(layer, "norm_attn_norm.attn.Wqkv.weight"),
                          {config.n_qkv(), d},
                          std::nullopt});
        layout.push_back({dbrx_block_tensor(layer, "norm_attn_norm.attn.out_proj.weight"),
                          {d, d},
                          std::nullopt});
        layout.push_back(
            {dbrx_block_tensor(layer, "norm_attn_norm.norm_2.weight"), {d}, std::nullopt});
        layout.push_back({dbrx_block_tensor(layer, "ffn.router.layer.weight"),
                          {config.n_expert, d},
                          std::nullopt});
        for (const char* name : {"w1", "v1", "w2"}) {
            layout.push_back({dbrx_block_tensor(layer, std::string("ffn.experts.mlp.") + name),
                              {experts_rows, d},
                              std::nullopt});
        }
    }
    layout.push_back({"transformer.norm_f.weight", {d}, std::nullopt});
    layout.push_back({"lm_head.weight", {config.n_vocab, d}, std::nullopt});
    if (config.quantization == CheckpointQuantization::kNone) {
        return layout;
    }
    if (config.quantization == CheckpointQuantization::kInt4Grouped) {
        return int4_layout(std::move(layout), config);
    }
    std::vector<ExpectedTensor> quantized;
    for (ExpectedTensor& tensor : layout) {
        if (!fp8_quantizes(tensor.name)) {
            quantized.push_back(std::move(tensor));
            continue;
        }
        ExpectedTensor scale{fp8_scale_tensor_name(tensor.name),
                             fp8_scale_shape(tensor.name, tensor.shape[0], tensor.shape[1], config),
                             DType::kF32};
        tensor.dtype = DType::kF8E4M3;
        quantized.push_back(std::move(tensor));
        quantized.push_back(std::move(scale));
    }
    return quantized;
}

Status check_dbrx_checkpoint(const Checkpoint& checkpoint, const ModelConfig& config) {
    std::set<std::string> expected_names;
    for (const ExpectedTensor& expected : dbrx_tensor_layout(config)) {
        expected_names.insert(expected.name);
        const TensorView* tensor = checkpoint.find(expected.name);
        if (tensor == nullptr) {
            return invalid_argument("tensor '" + expected.name + "': missing from the checkpoint");
        }
        if (tensor->shape != expected.shape) {
            return invalid_argument("tensor '" + expected.name + "': shape " +
                                    format_shape(tensor->shape) + ", expected " +
                                    format_shape(expected.shape));
        }
        if (expected.dtype && tensor->dtype != *expected.dtype) {
            return invalid_argument("tensor '" + expected.name + "': dtype " +
                                    std::string(dtype_name(tensor->dtype)) + ", expected " +
                                    std::string(dtype_name(*expected.dtype)) +
                                    " (the config's quantization_config)");
        }
        if (!expected.dtype && (tensor->dtype == DType::kI8 || tensor->dtype == DType::kU8)) {
            return invalid_argument("tensor '" + expected.name + "': dtype " +
                                    std::string(dtype_name(tensor->dtype)) +
                                    ", expected F32, BF16, F16 or F8_E4M3");
        }
    }
    for (const auto& [name, tensor] : checkpoint.tensors()) {
        if (expected_names.count(name) == 0) {
            return invalid_argument("tensor '" + name + "' in '" + tensor.file +
                                    "': not part of a dbrx model with this config");
        }
    }
    return Status::ok_status();
}

}  // namespace sluice::inference
