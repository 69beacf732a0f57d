#include "inference/detail/forward_validation.h"

#include <set>
#include <string>

namespace sluice::inference::detail {

namespace {

Status validate_sequence(const SequenceStep& seq, size_t index, const ModelConfig& config,
                         const KvCacheSpec& spec, std::set<int32_t>* written) {
    const std::string where = "forward: sequence " + std::to_string(index);
    if (seq.tokens.empty() || seq.n_past < 0) {
        return invalid_argument(where + ": needs at least one new token and n_past >= 0");
    }
    const int64_t n_positions = seq.n_past + static_cast<int64_t>(seq.tokens.size());
    if (n_positions > config.max_seq_len) {
        return invalid_argument(where + ": " + std::to_string(n_positions) +
                                " positions, max_seq_len " + std::to_string(config.max_seq_len));
    }
    const int64_t blocks_needed = (n_positions + spec.block_size - 1) / spec.block_size;
    if (static_cast<int64_t>(seq.block_table.size()) < blocks_needed) {
        return invalid_argument(where + ": block table of " +
                                std::to_string(seq.block_table.size()) + " blocks, needs " +
                                std::to_string(blocks_needed));
    }
    for (int64_t b = 0; b < blocks_needed; ++b) {
        const int32_t block = seq.block_table[static_cast<size_t>(b)];
        if (block < 0 || block >= spec.n_blocks) {
            return invalid_argument(where + ": block id " + std::to_string(block) +
                                    " outside [0, " + std::to_string(spec.n_blocks) + ")");
        }
    }
    for (int64_t b = seq.n_past / spec.block_size; b < blocks_needed; ++b) {
        const int32_t block = seq.block_table[static_cast<size_t>(b)];
        if (!written->insert(block).second) {
            return invalid_argument(where + ": block " + std::to_string(block) +
                                    " is written by two sequences in one step");
        }
    }
    for (int32_t token : seq.tokens) {
        if (token < 0 || token >= config.n_vocab) {
            return invalid_argument(where + ": token id " + std::to_string(token) +
                                    " outside [0, " + std::to_string(config.n_vocab) + ")");
        }
    }
    return Status::ok_status();
}

}  // namespace

Status validate_forward_batch(const ForwardBatch& batch, const ModelConfig& config,
                              const KvCacheSpec& spec, bool samples_on_device) {
    if (spec.n_blocks <= 0) {
        return failed_precondition("kv cache is not configured");
    }
    if (batch.sequences.empty()) {
        return invalid_argument("forward: empty batch");
    }
    if (!batch.device_sample.empty() && batch.device_sample.size() != batch.sequences.size()) {
        return invalid_argument("forward: device_sample must be empty or one per entry");
    }
    std::set<int32_t> written;
    for (size_t s = 0; s < batch.sequences.size(); ++s) {
        SLUICE_RETURN_IF_ERROR(validate_sequence(batch.sequences[s], s, config, spec, &written));
        if (const DeviceSampling* sampling = batch.device_sample_of(s)) {
            if (!samples_on_device) {
                return invalid_argument("forward: entry " + std::to_string(s) +
                                        " asks for sampling on the device, which this backend "
                                        "does not do");
            }
            const DeviceSampling& ds = *sampling;
            const bool valid = batch.sequences[s].logits == LogitsRows::kLast && ds.temperature >= 0 &&
                               ds.top_k >= 0 && ds.top_p > 0 && ds.top_p <= 1 &&
                               ds.min_p >= 0 && ds.min_p <= 1 && ds.u >= 0 && ds.u < 1;
            if (!valid) {
                return invalid_argument("forward: entry " + std::to_string(s) +
                                        " asks for sampling on the device with logits other "
                                        "than the last row or parameters out of range");
            }
        }
    }
    return Status::ok_status();
}

Status validate_kv_block_copy(int32_t src, int32_t dst, const KvCacheSpec& spec) {
    const int32_t n = spec.n_blocks;
    if (n <= 0) {
        return failed_precondition("kv cache is not configured");
    }
    if (src < 0 || src >= n || dst < 0 || dst >= n) {
        return invalid_argument("copy_kv_block: blocks " + std::to_string(src) + " -> " +
                                std::to_string(dst) + " outside [0, " + std::to_string(n) + ")");
    }
    return Status::ok_status();
}

int64_t batch_token_count(const ForwardBatch& batch) {
    int64_t n = 0;
    for (const SequenceStep& seq : batch.sequences) {
        n += static_cast<int64_t>(seq.tokens.size());
    }
    return n;
}

}  // namespace sluice::inference::detail
