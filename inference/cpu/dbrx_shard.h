#pragma once
// Which part of DBRX one rank of a parallel plan holds (parallel_config.h, docs/parallel.md).
//
// Splits are contiguous and as even as integer division allows: rank r of N gets
// [n * r / N, n * (r + 1) / N) of each split dimension, so no size needs to divide evenly.
//   - query heads split across ranks; a rank holds the KV heads its query heads read, so with
//     more ranks than KV heads several ranks hold (replicate) the same KV head;
//   - tensor plan: every expert's ffn columns split (all experts on every rank);
//     expert plan: experts split, each held whole;
//   - lm_head rows (vocabulary) split.
// Embedding, norms and router are held whole by every rank.
//
// Thread safety: values and pure functions.

#include <cstdint>

#include "common/result.h"
#include "inference/model_config.h"
#include "inference/parallel_config.h"

namespace sluice::inference::cpu {

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
    bool expert_parallel = false;  // experts live on different ranks: tokens are dispatched

    // The whole model, as one rank without a plan holds it.
    static DbrxShard whole(const ModelConfig& config);
};

// [n * r / ranks, n * (r + 1) / ranks): rank r's share of n.
struct Split {
    int64_t begin = 0;
    int64_t count = 0;
};
Split split_evenly(int64_t n, int rank, int n_ranks);

// Rank `rank`'s shard under `plan` with `n_ranks` ranks. kInvalidArgument when a split
// dimension has fewer entries than ranks (heads; experts for the expert plan; ffn columns).
Result<DbrxShard> shard_for_rank(const ModelConfig& config, ParallelPlan plan, int n_ranks,
                                 int rank);

}  // namespace sluice::inference::cpu
