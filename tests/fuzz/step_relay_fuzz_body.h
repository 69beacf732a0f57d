#pragma once
// The fuzz body of the step relay's decoder, shared by the libFuzzer target (step_relay_fuzz.cpp,
// clang with SLUICE_FUZZ=ON) and the bounded doctest driver (tests/inference/step_relay_codec_test
// .cpp) that every build runs. A follower decodes whatever arrives, so any bytes must either be
// refused with a named error or decode to a call whose encoding is those very bytes (the wire
// format has one spelling per call). Returns an empty string when that holds, else what broke.

#include <string>
#include <string_view>

#include "inference/step_relay.h"

namespace sluice::inference::fuzz {

inline std::string check_relayed_call_input(std::string_view bytes) {
    Result<RelayedCall> decoded = decode_relayed_call(bytes);
    if (!decoded.ok()) {
        if (decoded.status().code() != StatusCode::kInvalidArgument) {
            return "refused with " + decoded.status().to_string() + ", not invalid_argument";
        }
        if (!decoded.status().message().starts_with("relayed call: byte ")) {
            return "refusal does not name the byte: " + decoded.status().message();
        }
        return {};
    }
    // Moved once, as a Result hands it over: the batch's spans must follow the vectors.
    const RelayedCall call = std::move(*decoded);
    std::string again;
    switch (call.kind) {
        case RelayedCall::Kind::kConfigureKvCache:
            again = encode_configure_kv_cache(call.spec);
            break;
        case RelayedCall::Kind::kCopyKvBlock:
            again = encode_copy_kv_block(call.src, call.dst);
            break;
        case RelayedCall::Kind::kForward: {
            const ForwardBatch& batch = call.batch;
            if (batch.sequences.empty() || call.tokens.size() != batch.sequences.size() ||
                call.blocks.size() != batch.sequences.size()) {
                return "a forward decoded with inconsistent sequence counts";
            }
            for (size_t s = 0; s < batch.sequences.size(); ++s) {
                const SequenceStep& seq = batch.sequences[s];
                if (seq.tokens.data() != call.tokens[s].data() ||
                    seq.tokens.size() != call.tokens[s].size() ||
                    seq.block_table.data() != call.blocks[s].data() ||
                    seq.block_table.size() != call.blocks[s].size()) {
                    return "sequence " + std::to_string(s) + "'s spans do not point into the call";
                }
            }
            if (!batch.device_sample.empty()) {
                bool any = false;
                for (const auto& ds : batch.device_sample) {
                    any = any || ds.has_value();
                }
                if (batch.device_sample.size() != batch.sequences.size() || !any) {
                    return "device_sample is neither empty nor one per sequence with a choice";
                }
            }
            again = encode_forward(batch);
            break;
        }
    }
    if (again != bytes) {
        return "decoded call encodes to other bytes";
    }
    return {};
}

}  // namespace sluice::inference::fuzz
