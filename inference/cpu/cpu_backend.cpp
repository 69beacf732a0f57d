// The CPU implementation of Backend: batch validation and KV-cache ownership around DbrxModel.
#include "inference/cpu_backend.h"

#include <set>
#include <thread>

#include "inference/cpu/attention.h"
#include "inference/cpu/dbrx.h"
#include "inference/cpu/kernels.h"
#include "inference/dbrx_layout.h"
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
        return cache_.configure(spec, config().n_layer, config().n_embd_kv());
    }
    KvCacheSpec kv_cache_spec() const override { return cache_.spec(); }

    Result<ForwardOutput> forward(const ForwardBatch& batch) override {
        SLUICE_RETURN_IF_ERROR(validate(batch));
        ForwardOutput out;
        model_->forward(batch, &cache_, &out);
        return out;
    }

    Status copy_kv_block(int32_t src, int32_t dst) override {
        const int32_t n = cache_.spec().n_blocks;
        if (!cache_.configured()) {
            return failed_precondition("kv cache is not configured");
        }
        if (src < 0 || src >= n || dst < 0 || dst >= n) {
            return invalid_argument("copy_kv_block: blocks " + std::to_string(src) + " -> " +
                                    std::to_string(dst) + " outside [0, " + std::to_string(n) +
                                    ")");
        }
        if (src != dst) {
            cache_.copy_block(src, dst);
        }
        return Status::ok_status();
    }

private:
    Status validate(const ForwardBatch& batch) const {
        if (!cache_.configured()) {
            return failed_precondition("kv cache is not configured");
        }
        if (batch.sequences.empty()) {
            return invalid_argument("forward: empty batch");
        }
        const KvCacheSpec spec = cache_.spec();
        std::set<int32_t> written;
        for (size_t s = 0; s < batch.sequences.size(); ++s) {
            const SequenceStep& seq = batch.sequences[s];
            const std::string where = "forward: sequence " + std::to_string(s);
            if (seq.tokens.empty() || seq.n_past < 0) {
                return invalid_argument(where + ": needs at least one new token and n_past >= 0");
            }
            const int64_t n_positions = seq.n_past + static_cast<int64_t>(seq.tokens.size());
            if (n_positions > config().max_seq_len) {
                return invalid_argument(where + ": " + std::to_string(n_positions) +
                                        " positions, max_seq_len " +
                                        std::to_string(config().max_seq_len));
            }
            const int64_t blocks_needed = (n_positions + spec.block_size - 1) / spec.block_size;
            if (static_cast<int64_t>(seq.block_table.size()) < blocks_needed) {
                return invalid_argument(where + ": block table of " +
                                        std::to_string(seq.block_table.size()) +
                                        " blocks, needs " + std::to_string(blocks_needed));
            }
            for (int64_t b = 0; b < blocks_needed; ++b) {
                const int32_t block = seq.block_table[static_cast<size_t>(b)];
                if (block < 0 || block >= spec.n_blocks) {
                    return invalid_argument(where + ": block id " + std::to_string(block) +
                                            " outside [0, " + std::to_string(spec.n_blocks) + ")");
                }
            }
            for (int64_t b = seq.n_past / spec.block_size; b < blocks_needed; ++b) {
                if (!written.insert(seq.block_table[static_cast<size_t>(b)]).second) {
                    return invalid_argument(where + ": block " +
                                            std::to_string(seq.block_table[static_cast<size_t>(b)]) +
                                            " is written by two sequences in one step");
                }
            }
            for (int32_t token : seq.tokens) {
                if (token < 0 || token >= config().n_vocab) {
                    return invalid_argument(where + ": token id " + std::to_string(token) +
                                            " outside [0, " + std::to_string(config().n_vocab) +
                                            ")");
                }
            }
        }
        return Status::ok_status();
    }

    std::unique_ptr<Checkpoint> checkpoint_;  // owns the mappings borrowed weights point into
    std::unique_ptr<cpu::DbrxModel> model_;
    cpu::KvCacheStorage cache_;
};

}  // namespace

Result<std::unique_ptr<Backend>> open_cpu_backend(const std::string& model_dir,
                                                  const CpuBackendOptions& options) {
    SLUICE_ASSIGN_OR_RETURN(ModelConfig config, load_model_config(model_dir));
    SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> checkpoint, Checkpoint::open(model_dir));
    SLUICE_RETURN_IF_ERROR(check_dbrx_checkpoint(*checkpoint, config));
    const int n_threads = options.n_threads > 0
                              ? options.n_threads
                              : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    cpu::DbrxWeights weights = cpu::load_dbrx_weights(config, *checkpoint, options.weights);
    auto model = std::make_unique<cpu::DbrxModel>(config, std::move(weights), n_threads);
    return std::unique_ptr<Backend>(
        std::make_unique<CpuBackend>(std::move(checkpoint), std::move(model)));
}

std::string cpu_kernel_variant() { return cpu::row_kernels().name; }

}  // namespace sluice::inference
