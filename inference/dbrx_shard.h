#pragma once
// Which part of DBRX one rank of a parallel plan holds (parallel_config.h, docs/parallel.md),
// for the CPU and the CUDA backends alike.
//
// Splits are contiguous and as even as integer division allows: rank r of N gets
// [n * r / N, n * (r + 1) / N) of each split dimension, so no size needs to divide evenly.
//   - query heads split across all ranks; a rank holds the KV heads its query heads read, so
//     with more ranks than KV heads several ranks hold (replicate) the same KV head;
//   - experts split across the expert groups (expert plan: one rank each; tensor plan: one
//     group holding all), and each held expert's ffn columns split across the ranks of its
//     group (expert plan: held whole);
//   - lm_head rows (vocabulary) split across all ranks.
// Embedding, norms and router are held whole by every rank.
//
// Thread safety: values and pure functions.

#include <cstdint>

#include "common/result.h"
#include "inference/model_config.h"
#include "inference/parallel_config.h"

namespace sluice::inference {

struct DbrxShard {
    int64_t head_begin = 0;
    int64_t n_head = 0;
    int64_t kv_head_begin = 0;
    int64_t n_head_kv = 0;
    int64_t ff_begin = 0;  // within each held expert
    int64_t n_ff = 0;
    int64_t expert_begin = 0;
    int64_t n_expert = 0;
    int64_t vocab_begin = 0;
    int64_t n_vocab = 0;
    bool expert_parallel = false;  // experts live in different groups: tokens are dispatched

    // The whole model, as one rank without a plan holds it.
    static DbrxShard whole(const ModelConfig& config);
};

// [n * r / ranks, n * (r + 1) / ranks): rank r's share of n.
struct Split {
    int64_t begin = 0;
    int64_t count = 0;
};
Split split_evenly(int64_t n, int rank, int n_ranks);

// Rank `rank`'s shard under the validated `parallel`. kInvalidArgument when the model cannot
// be split that way (check_parallel_fits_model) or the rank is outside the grid.
Result<DbrxShard> shard_for_rank(const ModelConfig& config, const ParallelConfig& parallel,
                                 int rank);

}  // namespace sluice::inference
