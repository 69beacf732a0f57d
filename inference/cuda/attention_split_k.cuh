#pragma once
// Split-K ("flash-decoding") paged attention: the same result as paged_attention (attention.cuh;
// CPU reference attend_head, cpu/attention.h) for steps of few tokens over long contexts.
//
// paged_attention runs one block per (token, query head) over the whole context, so a decode step
// of one sequence on DBRX (48 heads) occupies 48 blocks of a 132-SM GPU, each walking every
// position. Here each token's context is cut into partitions of kAttentionPartition positions:
//
//   partition kernel  one block per (token, KV head, partition, chunk of query heads): the block
//                     reads each K and V row of its partition once and serves every query head of
//                     the KV head's group from it (at most 8 heads per block; a larger group is
//                     cut into chunks). Its 4 warps stride the positions, each keeping an online
//                     softmax per head in fp32; they are merged in shared memory, and the block
//                     writes per query head the partition's max score, its sum of exp(score - max)
//                     and its unnormalised weighted sum of V to the workspace.
//   merge kernel      one block per (token, query head): rescales the partitions by
//                     exp(max_p - max) (log-sum-exp) and divides by the total sum, partitions in
//                     ascending order, so the result does not depend on timing.
//
// Partition p of a token at position pos holds positions [p·P, min((p+1)·P, pos + 1)); blocks of
// partitions past pos return at once and the merge reads only the pos / P + 1 partitions that
// exist. A launch may therefore name more partitions than the step needs (a fixed count for
// replaying a captured CUDA graph whatever the contexts), with bit-identical results.
//
// Thread safety: launches on the caller's stream.

#include <cstdint>

#include "inference/cuda/attention.cuh"
#include "inference/cuda/cuda_check.h"

namespace sluice::inference::cuda {

// Positions per partition: a multiple of every usual block size (16, 32, ...), long enough that
// a block's fixed costs (loading the queries, the merge in shared memory) stay small against
// reading 512 K and V rows.
inline constexpr int32_t kAttentionPartition = 512;

// Steps of more tokens always take the one-pass kernel; the workspace is sized for this many.
inline constexpr int64_t kSplitKMaxTokens = 32;

// Partitions a context of `positions` positions needs.
inline int32_t attention_partitions(int64_t positions) {
    return static_cast<int32_t>((positions + kAttentionPartition - 1) / kAttentionPartition);
}

// Floats of workspace a launch of `n_partitions` partitions for `n_tokens` tokens needs: per
// (token, query head, partition) head_dim accumulator values, a max and a sum.
inline int64_t split_k_workspace_floats(int64_t n_tokens, int64_t n_head, int64_t head_dim,
                                        int64_t n_partitions) {
    return n_tokens * n_head * n_partitions * (head_dim + 2);
}

enum class AttentionKernel { kOnePass, kSplitK };

// The kernel for a step of `n_tokens` new tokens whose longest context (n_past + n_new) is
// `longest_context`, on a GPU of `n_sm` multiprocessors; see the definition for why.
AttentionKernel choose_attention_kernel(int64_t n_tokens, int64_t n_head, int64_t longest_context,
                                        int n_sm);

struct SplitKWorkspace {
    float* data = nullptr;  // split_k_workspace_floats(...) floats at least
    int64_t floats = 0;
};

// paged_attention's result through partitions. Preconditions: every token's position is below
// n_partitions · kAttentionPartition (kInvalidArgument can only be checked for the shapes:
// n_tokens above kSplitKMaxTokens, n_partitions < 1, a workspace too small).
Status paged_attention_split_k(const AttentionArgs& args, int32_t n_partitions,
                               const SplitKWorkspace& workspace, cudaStream_t stream);

}  // namespace sluice::inference::cuda
