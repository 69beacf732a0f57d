#include "inference/cuda/device_weights.h"

#include "common/check.h"
#include "inference/dbrx_layout.h"
#include "inference/dtype.h"

namespace sluice::inference::cuda {

namespace {

bool is_norm(const std::string& name) { return name.find("norm") != std::string::npos; }

const TensorView& tensor(const Checkpoint& checkpoint, const std::string& name) {
    const TensorView* view = checkpoint.find(name);
    SLUICE_CHECK(view != nullptr, "checkpoint was checked, yet lacks '" + name + "'");
    return *view;
}

Status upload_bytes(const void* src, int64_t bytes, DeviceBuffer* dst) {
    SLUICE_RETURN_IF_ERROR(dst->allocate(bytes));
    SLUICE_CUDA_CHECK(
        cudaMemcpy(dst->get(), src, static_cast<size_t>(bytes), cudaMemcpyHostToDevice));
    return Status::ok_status();
}

Status upload_f32(const TensorView& t, DeviceBuffer* dst) {
    if (t.dtype == DType::kF32) {
        return upload_bytes(t.data, t.n_bytes, dst);
    }
    std::vector<float> values(static_cast<size_t>(t.n_elements()));
    convert_to_f32(t.dtype, t.data, t.n_elements(), values.data());
    return upload_bytes(values.data(), t.n_elements() * 4, dst);
}

Status upload_matrix(const TensorView& t, WeightFormat format, DeviceMatrix* m) {
    SLUICE_CHECK(t.shape.size() == 2, "a weight matrix is 2-d");
    m->type = device_dtype_for(format, t.dtype);
    m->rows = t.shape[0];
    m->cols = t.shape[1];
    if (m->type == DeviceDType::kF32) {
        return upload_f32(t, &m->buffer);
    }
    if (t.dtype == DType::kBF16) {
        return upload_bytes(t.data, t.n_bytes, &m->buffer);
    }
    std::vector<float> values(static_cast<size_t>(t.n_elements()));
    convert_to_f32(t.dtype, t.data, t.n_elements(), values.data());
    std::vector<uint16_t> bf16(values.size());
    convert_f32_to_bf16(values, bf16.data());
    return upload_bytes(bf16.data(), t.n_elements() * 2, &m->buffer);
}

}  // namespace

DeviceDType device_dtype_for(WeightFormat requested, DType stored) {
    switch (requested) {
        case WeightFormat::kF32:
            return DeviceDType::kF32;
        case WeightFormat::kBF16:
            return DeviceDType::kBF16;
        case WeightFormat::kAsStored:
        case WeightFormat::kInt8:  // refused by open_cuda_backend before this is asked
            break;
    }
    return stored == DType::kBF16 || stored == DType::kF8E4M3 ? DeviceDType::kBF16
                                                              : DeviceDType::kF32;
}

int64_t device_weight_bytes(const Checkpoint& checkpoint, const ModelConfig& config,
                            WeightFormat format) {
    int64_t bytes = 0;
    for (const ExpectedTensor& expected : dbrx_tensor_layout(config)) {
        const TensorView& t = tensor(checkpoint, expected.name);
        const int64_t element =
            is_norm(t.name) ? 4 : device_dtype_size(device_dtype_for(format, t.dtype));
        bytes += t.n_elements() * element;
    }
    return bytes;
}

Result<DeviceWeights> upload_weights(const Checkpoint& checkpoint, const ModelConfig& config,
                                     WeightFormat format) {
    DeviceWeights w;
    SLUICE_RETURN_IF_ERROR(
        upload_matrix(tensor(checkpoint, "transformer.wte.weight"), format, &w.embedding));
    for (int64_t i = 0; i < config.n_layer; ++i) {
        DeviceLayer layer;
        auto get = [&](const char* suffix) -> const TensorView& {
            return tensor(checkpoint, dbrx_block_tensor(i, suffix));
        };
        SLUICE_RETURN_IF_ERROR(upload_f32(get("norm_attn_norm.norm_1.weight"), &layer.norm_1));
        SLUICE_RETURN_IF_ERROR(upload_f32(get("norm_attn_norm.norm_2.weight"), &layer.norm_2));
        SLUICE_RETURN_IF_ERROR(
            upload_matrix(get("norm_attn_norm.attn.Wqkv.weight"), format, &layer.wqkv));
        SLUICE_RETURN_IF_ERROR(
            upload_matrix(get("norm_attn_norm.attn.out_proj.weight"), format, &layer.out_proj));
        SLUICE_RETURN_IF_ERROR(
            upload_matrix(get("ffn.router.layer.weight"), format, &layer.router));
        SLUICE_RETURN_IF_ERROR(upload_matrix(get("ffn.experts.mlp.w1"), format, &layer.w1));
        SLUICE_RETURN_IF_ERROR(upload_matrix(get("ffn.experts.mlp.v1"), format, &layer.v1));
        SLUICE_RETURN_IF_ERROR(upload_matrix(get("ffn.experts.mlp.w2"), format, &layer.w2));
        w.layers.push_back(std::move(layer));
    }
    SLUICE_RETURN_IF_ERROR(upload_f32(tensor(checkpoint, "transformer.norm_f.weight"), &w.norm_f));
    SLUICE_RETURN_IF_ERROR(upload_matrix(tensor(checkpoint, "lm_head.weight"), format, &w.lm_head));
    return w;
}

int64_t DeviceWeights::bytes() const {
    int64_t bytes = embedding.bytes() + norm_f.bytes() + lm_head.bytes();
    for (const DeviceLayer& l : layers) {
        bytes += l.norm_1.bytes() + l.norm_2.bytes() + l.wqkv.bytes() + l.out_proj.bytes() +
                 l.router.bytes() + l.w1.bytes() + l.v1.bytes() + l.w2.bytes();
    }
    return bytes;
}

int64_t DeviceWeights::active_bytes(const ModelConfig& config) const {
    int64_t bytes = embedding.bytes() / config.n_vocab + lm_head.bytes();
    for (const DeviceLayer& l : layers) {
        const int64_t experts = l.w1.bytes() + l.v1.bytes() + l.w2.bytes();
        bytes += l.wqkv.bytes() + l.out_proj.bytes() + l.router.bytes() +
                 experts / config.n_expert * config.n_expert_used;
    }
    return bytes;
}

}  // namespace sluice::inference::cuda
