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
#include <string>
#include <vector>

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

    bool operator==(const Split&) const = default;
};
Split split_evenly(int64_t n, int rank, int n_ranks);

// The part of one stored DBRX matrix a rank holds, in the checkpoint's layout: runs of rows in
// ascending order and one run of columns, counted in values. A device upload copies exactly
// these, so no rank reads (or holds in memory) more of a tensor than its share.
struct TensorSlice {
    std::vector<Split> rows;
    Split cols;

    int64_t n_rows() const;
    bool operator==(const TensorSlice&) const = default;
};

// The slice of the [rows, cols] matrix `name` (a DBRX tensor, dbrx_layout.h) that `shard`
// holds: Wqkv the rows of the shard's query heads and of the KV heads they read, out_proj the
// columns of its heads, w1, v1 and w2 the rows of its ffn slice of each expert it holds
// ([n_expert * n_ff, d_model] each; the tensor plan holds every expert, the expert plan and the
// grid the experts of the rank's group), lm_head its vocabulary rows; the embedding, the norms
// and the router whole.
TensorSlice tensor_slice(const std::string& name, int64_t rows, int64_t cols,
                         const ModelConfig& config, const DbrxShard& shard);

// The slice of the fp8 per-channel scales (fp8_weights.h) of matrix `name` whose values are
// sliced by `values` for `shard`: a scale per row ([rows] as a [rows, 1] matrix) follows the
// rows, so a column slice (out_proj) keeps every row's scale; w2's scales per expert and column
// ([n_expert, d_model]) follow the columns, for each expert the shard holds.
TensorSlice fp8_scale_slice(const std::string& name, const TensorSlice& values,
                            const DbrxShard& shard);

// int4 quantises the experts in groups of config.int4_group_size values along the reduction
// dimension (int4_weights.h): d_model for w1 and v1, which the tensor plan does not split, and
// the ffn dimension for w2, which it does. kInvalidArgument naming 'parallel.tensor' when a
// rank's ffn slice does not begin and end on a group boundary, since the rank would quantise
// groups the model does not have (or, for an int4 checkpoint, hold half a group's scale).
Status check_int4_shard(const ModelConfig& config, const DbrxShard& shard, int tensor_ranks);

// The slice of int4 expert matrix `name` in the int4 layout (int4_matrix_shape: rows are output
// channels, columns the reduction; w2 transposed per expert to [n_expert * d_model, n_ff]), in
// values, for the experts the shard holds; its scales' slice is the same rows and the columns
// divided by the group size. Requires check_int4_shard.
TensorSlice int4_slice(const std::string& name, const ModelConfig& config, const DbrxShard& shard);
TensorSlice int4_scale_slice(const TensorSlice& values, int64_t group_size);

// Rank `rank`'s shard under the validated `parallel`. kInvalidArgument when the model cannot
// be split that way (check_parallel_fits_model) or the rank is outside the grid.
Result<DbrxShard> shard_for_rank(const ModelConfig& config, const ParallelConfig& parallel,
                                 int rank);

}  // namespace sluice::inference
