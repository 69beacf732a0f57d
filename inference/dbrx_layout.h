#pragma once
// The tensors a Hugging Face DBRX checkpoint holds, by name and shape, derived from its config,
// and the check that a checkpoint holds exactly those before any compute.
//
// Experts are stored fused per layer as [n_expert * n_ff, d_model] for w1 (gate), v1 (up) and
// w2 (down); the reference applies w1 and v1 as `x @ w.T` but w2 as `h @ w2` (no transpose), so
// expert e's w2 block [n_ff, d_model] maps the hidden state back to d_model directly.
//
// Thread safety: pure functions.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "inference/model_config.h"
#include "inference/safetensors.h"

namespace sluice::inference {

struct ExpectedTensor {
    std::string name;
    std::vector<int64_t> shape;
    // Set where the format fixes the dtype (a quantised checkpoint's F8_E4M3 matrices and F32
    // scales, or U8 int4 codes and F16 group scales); otherwise any floating-point dtype.
    std::optional<DType> dtype;
};

// Every tensor of a DBRX checkpoint for `config`, in a stable order (embedding, blocks in order,
// final norm, lm_head). A quantised config (inference/fp8_weights.h, inference/int4_weights.h)
// adds each quantised matrix's scale tensor right after it; int4 gives the experts their packed
// shapes (w2 transposed).
std::vector<ExpectedTensor> dbrx_tensor_layout(const ModelConfig& config);

// Name helpers, e.g. dbrx_block_tensor(3, "ffn.experts.mlp.w1").
std::string dbrx_block_tensor(int64_t layer, const std::string& suffix);

// kInvalidArgument for the first missing, extra or mis-shaped tensor, or one of a dtype that is
// not a floating-point type or not the one a quantised checkpoint requires:
//   tensor 'transformer.blocks.0.ffn.experts.mlp.w1': shape [96, 64], expected [1536, 64]
Status check_dbrx_checkpoint(const Checkpoint& checkpoint, const ModelConfig& config);

}  // namespace sluice::inference
