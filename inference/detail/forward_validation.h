#pragma once
// The checks every backend makes on a forward step and a block copy before touching its KV
// cache, so that all backends reject the same malformed input with the same message (see the
// error list in backend.h).
//
// Thread safety: pure functions.

#include <cstdint>

#include "common/status.h"
#include "inference/backend.h"
#include "inference/model_config.h"

namespace sluice::inference::detail {

// kFailedPrecondition when the cache is not configured (spec.n_blocks == 0); kInvalidArgument
// for an empty batch, an entry without tokens or with n_past < 0, positions past max_seq_len, a
// block table too short or naming a block outside the cache, a block written by two entries, or
// a token id outside the vocabulary; also for an entry asking for device sampling when
// `samples_on_device` is false, or with logits other than kLast or parameters out of range.
Status validate_forward_batch(const ForwardBatch& batch, const ModelConfig& config,
                              const KvCacheSpec& spec, bool samples_on_device = false);

// kFailedPrecondition when the cache is not configured; kInvalidArgument for a block id outside
// the cache.
Status validate_kv_block_copy(int32_t src, int32_t dst, const KvCacheSpec& spec);

// New tokens of a batch, summed over its entries.
int64_t batch_token_count(const ForwardBatch& batch);

}  // namespace sluice::inference::detail
