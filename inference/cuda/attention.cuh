#pragma once
// Grouped-query attention over the paged KV cache, causal, for prefill and decode alike: the
// query of a new token at position p attends to positions 0 .. p of its sequence, whose K and V
// qkv_clamp_rope_kv_write has already stored (the new tokens' own included). A decode step is
// the case of one new token per sequence; a prefill chunk is several, each with its own causal
// horizon. CPU reference: attend_head (cpu/attention.h).
//
// Each (token, query head) is one block of four warps; the warps split the keys and each keeps
// an online softmax (running max, sum and weighted V) in fp32, merged at the end. Query head h
// reads KV head h / (n_head / n_head_kv), or for a rank's heads the model's mapping (n_rep below).

#include <cstdint>

#include "inference/cuda/cuda_check.h"

namespace sluice::inference::cuda {

struct AttentionArgs {
    const float* qkv = nullptr;      // [n_tokens, n_qkv], queries in the first d columns
    const float* k_cache = nullptr;  // this layer's K: [n_blocks, block_size, n_embd_kv]
    const float* v_cache = nullptr;
    const int32_t* positions = nullptr;     // [n_tokens]
    const int32_t* token_seq = nullptr;     // [n_tokens]
    const int32_t* table_offset = nullptr;  // [n_seq]
    const int32_t* block_tables = nullptr;  // concatenated block tables
    float* out = nullptr;                   // [n_tokens, n_head * head_dim]
    int64_t n_tokens = 0;
    int64_t n_head = 0;
    int64_t n_head_kv = 0;
    int64_t head_dim = 0;  // at most kMaxAttentionHeadDim
    int32_t block_size = 0;
    // A rank of the tensor plan (dbrx_shard.h) holds the model's query heads [head_begin,
    // head_begin + n_head) and KV heads [kv_head_begin, kv_head_begin + n_head_kv); the model's
    // query head h reads its KV head h / n_rep. n_rep 0: the whole model's heads (h reads
    // h / (n_head / n_head_kv)). Only paged_attention takes a non-zero n_rep.
    int64_t head_begin = 0;
    int64_t kv_head_begin = 0;
    int64_t n_rep = 0;
};

inline constexpr int64_t kMaxAttentionHeadDim = 256;

Status paged_attention(const AttentionArgs& args, cudaStream_t stream);

}  // namespace sluice::inference::cuda
