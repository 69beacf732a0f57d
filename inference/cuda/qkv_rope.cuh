#pragma once
// The fused step between the QKV projection and attention: clamp the whole QKV row to ±clip_qkv,
// rotate the query and key heads with NeoX RoPE, and write the token's K and V into its slot of
// the paged KV cache. CPU reference: the first loop of DbrxModel::attention (cpu/dbrx.cpp), i.e.
// std::clamp, rope_table and rope_apply of cpu/ops.h.
//
// Cache layout per layer, as on the CPU: [n_blocks][block_size][n_embd_kv] fp32.

#include <cstdint>

#include "inference/cuda/cuda_check.h"

namespace sluice::inference::cuda {

struct QkvRopeArgs {
    float* qkv = nullptr;                   // [n_tokens, n_qkv], q rotated in place
    const int32_t* positions = nullptr;     // [n_tokens]
    const int32_t* token_seq = nullptr;     // [n_tokens] entry of the batch each token belongs to
    const int32_t* table_offset = nullptr;  // [n_seq] first entry of its table in block_tables
    const int32_t* block_tables = nullptr;  // all entries' block tables, concatenated
    const float* inv_freq = nullptr;        // [head_dim / 2], as cpu::rope_table computes it
    float* k_cache = nullptr;               // this layer's K: [n_blocks, block_size, n_embd_kv]
    float* v_cache = nullptr;
    int64_t n_tokens = 0;
    int64_t n_head = 0;
    int64_t n_head_kv = 0;
    int64_t head_dim = 0;
    int32_t block_size = 0;
    bool clip = false;
    float clip_value = 0;
};

Status qkv_clamp_rope_kv_write(const QkvRopeArgs& args, cudaStream_t stream);

}  // namespace sluice::inference::cuda
