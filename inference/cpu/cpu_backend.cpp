// The CPU implementation of Backend: batch validation and KV-cache ownership around DbrxModel.
#include "inference/cpu_backend.h"

#include <thread>

#include "inference/cpu/attention.h"
#include "inference/cpu/dbrx.h"
#include "inference/cpu/kernels.h"
#include "inference/cpu/parallel_cpu_backend.h"
#include "inference/dbrx_layout.h"
#include "inference/detail/forward_validation.h"
#include "inference/quantized_checkpoint.h"
#include "inference/safetensors.h"

namespace sluice::inference {

namespace {

class CpuBackend final : public Backend {
public:
    CpuBackend(std::unique_ptr<Checkpoint> checkpoint, std::unique_ptr<cpu::DbrxModel> model)
        : checkpoint_(std::move(checkpoint)), model_(std::move(model)) {}

    std::string name() const override { return "cpu"; }
    const ModelConfig& config() const override { return model_->config(); }

    BackendMemory memory() const override {
        const cpu::DbrxWeights& w = model_->weights();
        int64_t bytes = w.embedding.bytes() + w.lm_head.bytes();
        for (const cpu::DbrxLayerWeights& layer : w.layers) {
            bytes += layer.wqkv.bytes() + layer.out_proj.bytes() + layer.router.bytes() +
                     layer.w1.bytes() + layer.v1.bytes() + layer.w2t.bytes();
        }
        return {bytes, cache_.bytes()};
    }

    int64_t active_weight_bytes() const override {
        const cpu::DbrxWeights& w = model_->weights();
        const ModelConfig& c = config();
        int64_t bytes = w.embedding.bytes() / c.n_vocab + w.lm_head.bytes();
        for (const cpu::DbrxLayerWeights& layer : w.layers) {
            const int64_t experts = layer.w1.bytes() + layer.v1.bytes() + layer.w2t.bytes();
            bytes += layer.wqkv.bytes() + layer.out_proj.bytes() + layer.router.bytes() +
                     experts / c.n_expert * c.n_expert_used;
        }
        return bytes;
    }

    Status configure_kv_cache(const KvCacheSpec& spec) override {
        return cache_.configure(spec, config().n_layer, model_->n_embd_kv());
    }
    KvCacheSpec kv_cache_spec() const override { return cache_.spec(); }

    Result<ForwardOutput> forward(const ForwardBatch& batch) override {
        SLUICE_RETURN_IF_ERROR(validate(batch));
        ForwardOutput out;
        SLUICE_RETURN_IF_ERROR(model_->forward(batch, &cache_, &out));
        return out;
    }

    Status copy_kv_block(int32_t src, int32_t dst) override {
        SLUICE_RETURN_IF_ERROR(detail::validate_kv_block_copy(src, dst, cache_.spec()));
        if (src != dst) {
            cache_.copy_block(src, dst);
        }
        return Status::ok_status();
    }

private:
    Status validate(const ForwardBatch& batch) const {
        return detail::validate_forward_batch(batch, config(), cache_.spec());
    }

    std::unique_ptr<Checkpoint> checkpoint_;  // owns the mappings borrowed weights point into
    std::unique_ptr<cpu::DbrxModel> model_;
    cpu::KvCacheStorage cache_;
};

}  // namespace

namespace {

// The checked checkpoint `options` asks for (fp8 and int4 codes widened: the CPU kernels read
// bf16, f32 or int8).
struct OpenedCheckpoint {
    ModelConfig config;
    std::unique_ptr<Checkpoint> checkpoint;
};

Result<OpenedCheckpoint> open_checked(const std::string& model_dir,
                                      const CpuBackendOptions& options) {
    SLUICE_RETURN_IF_ERROR(validate_parallel_config(options.parallel));
    if (options.weights == WeightFormat::kF8E4M3 || options.weights == WeightFormat::kInt4) {
        return invalid_argument(
            "cpu backend: fp8 and int4 weights are the cuda backend's; on the cpu use stored, "
            "f32, bf16 or int8 (a quantised checkpoint loads as stored, widened to bf16)");
    }
    SLUICE_ASSIGN_OR_RETURN(ModelConfig config, load_model_config(model_dir));
    SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> checkpoint, Checkpoint::open(model_dir));
    SLUICE_RETURN_IF_ERROR(check_dbrx_checkpoint(*checkpoint, config));
    if (config.quantization != CheckpointQuantization::kNone) {
        // The CPU kernels read bf16, f32 or int8 weights: an fp8 or int4 checkpoint's codes are
        // widened once here (code · scale in bf16) and the model runs as a plain one.
        checkpoint = dequantize_checkpoint(std::move(checkpoint), config);
        config.quantization = CheckpointQuantization::kNone;
        SLUICE_RETURN_IF_ERROR(check_dbrx_checkpoint(*checkpoint, config));
    }
    return OpenedCheckpoint{std::move(config), std::move(checkpoint)};
}

}  // namespace

Result<std::unique_ptr<Backend>> open_cpu_backend(const std::string& model_dir,
                                                  const CpuBackendOptions& options) {
    SLUICE_ASSIGN_OR_RETURN(OpenedCheckpoint opened, open_checked(model_dir, options));
    ModelConfig& config = opened.config;
    std::unique_ptr<Checkpoint>& checkpoint = opened.checkpoint;
    if (options.parallel.parallel()) {
        return cpu::open_parallel_cpu_backend(config, std::move(checkpoint), options);
    }
    const int n_threads = options.n_threads > 0
                              ? options.n_threads
                              : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    cpu::DbrxWeights weights = cpu::load_dbrx_weights(config, *checkpoint, options.weights);
    auto model = std::make_unique<cpu::DbrxModel>(config, std::move(weights), n_threads);
    return std::unique_ptr<Backend>(
        std::make_unique<CpuBackend>(std::move(checkpoint), std::move(model)));
}

Result<std::unique_ptr<StepFollower>> open_cpu_follower(const std::string& model_dir,
                                                        const CpuBackendOptions& options) {
    SLUICE_ASSIGN_OR_RETURN(OpenedCheckpoint opened, open_checked(model_dir, options));
    return cpu::open_parallel_cpu_follower(opened.config, std::move(opened.checkpoint), options);
}

std::string cpu_kernel_variant() { return cpu::row_kernels().name; }

}  // namespace sluice::inference
