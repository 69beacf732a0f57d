#include "inference/dbrx_shard.h"

#include "common/check.h"
#include "inference/fp8_weights.h"
#include "inference/int4_weights.h"

namespace sluice::inference {

DbrxShard DbrxShard::whole(const ModelConfig& config) {
    DbrxShard shard;
    shard.n_head = config.n_head;
    shard.n_head_kv = config.n_head_kv;
    shard.n_ff = config.n_ff;
    shard.n_expert = config.n_expert;
    shard.n_vocab = config.n_vocab;
    return shard;
}

Split split_evenly(int64_t n, int rank, int n_ranks) {
    const int64_t begin = n * rank / n_ranks;
    return {begin, n * (rank + 1) / n_ranks - begin};
}

int64_t TensorSlice::n_rows() const {
    int64_t n = 0;
    for (const Split& run : rows) {
        n += run.count;
    }
    return n;
}

namespace {

bool ends_with(const std::string& name, const std::string& suffix) {
    return name.size() >= suffix.size() &&
           name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Rows [e * n_ff + ff_begin, + n_ff) of every expert e the shard holds: its ffn slice of each.
std::vector<Split> expert_rows(const DbrxShard& shard, int64_t rows_per_expert) {
    std::vector<Split> runs;
    for (int64_t e = shard.expert_begin; e < shard.expert_begin + shard.n_expert; ++e) {
        runs.push_back({e * rows_per_expert + shard.ff_begin, shard.n_ff});
    }
    return runs;
}

}  // namespace

TensorSlice tensor_slice(const std::string& name, int64_t rows, int64_t cols,
                         const ModelConfig& config, const DbrxShard& shard) {
    const int64_t hd = config.head_dim();
    TensorSlice slice{{{0, rows}}, {0, cols}};
    if (ends_with(name, "attn.Wqkv.weight")) {
        // [q: n_head · hd | k: n_head_kv · hd | v: n_head_kv · hd] rows.
        const int64_t d = config.d_model;
        const int64_t n_kv = config.n_embd_kv();
        slice.rows = {{shard.head_begin * hd, shard.n_head * hd},
                      {d + shard.kv_head_begin * hd, shard.n_head_kv * hd},
                      {d + n_kv + shard.kv_head_begin * hd, shard.n_head_kv * hd}};
    } else if (ends_with(name, "attn.out_proj.weight")) {
        slice.cols = {shard.head_begin * hd, shard.n_head * hd};
    } else if (ends_with(name, "mlp.w1") || ends_with(name, "mlp.v1") ||
               ends_with(name, "mlp.w2")) {
        slice.rows = expert_rows(shard, config.n_ff);
    } else if (name == "lm_head.weight") {
        slice.rows = {{shard.vocab_begin, shard.n_vocab}};
    }
    return slice;
}

TensorSlice fp8_scale_slice(const std::string& name, const TensorSlice& values,
                            const DbrxShard& shard) {
    if (fp8_column_scales(name)) {
        return {{{shard.expert_begin, shard.n_expert}}, values.cols};
    }
    return {values.rows, {0, 1}};
}

Status check_int4_shard(const ModelConfig& config, const DbrxShard& shard, int tensor_ranks) {
    const int64_t group = config.int4_group_size;
    if (group <= 0 || (shard.ff_begin % group == 0 && shard.n_ff % group == 0)) {
        return Status::ok_status();
    }
    return invalid_argument(
        "config field 'parallel.tensor': " + std::to_string(tensor_ranks) +
        " ranks give a rank ffn columns [" + std::to_string(shard.ff_begin) + ", " +
        std::to_string(shard.ff_begin + shard.n_ff) + ") of " + std::to_string(config.n_ff) +
        ", which cut the int4 groups of " + std::to_string(group) +
        " along w2's reduction dimension; choose a rank count whose ffn slices are whole groups");
}

TensorSlice int4_slice(const std::string& name, const ModelConfig& config, const DbrxShard& shard) {
    const Int4MatrixShape shape = int4_matrix_shape(name, config);
    if (int4_transposed(name)) {
        // w2 as [n_expert · d_model, n_ff]: the rows of the shard's experts, its ffn columns.
        const int64_t d = config.d_model;
        return {{{shard.expert_begin * d, shard.n_expert * d}}, {shard.ff_begin, shard.n_ff}};
    }
    return {expert_rows(shard, config.n_ff), {0, shape.cols}};
}

TensorSlice int4_scale_slice(const TensorSlice& values, int64_t group_size) {
    SLUICE_CHECK(group_size > 0 && values.cols.begin % group_size == 0 &&
                     values.cols.count % group_size == 0,
                 "int4_scale_slice: columns on group boundaries (check_int4_shard)");
    return {values.rows, {values.cols.begin / group_size, values.cols.count / group_size}};
}

Result<DbrxShard> shard_for_rank(const ModelConfig& config, const ParallelConfig& parallel,
                                 int rank) {
    const int n_ranks = parallel.n_ranks();
    if (rank < 0 || rank >= n_ranks) {
        return invalid_argument("parallel: rank " + std::to_string(rank) + " of " +
                                std::to_string(n_ranks));
    }
    SLUICE_RETURN_IF_ERROR(check_parallel_fits_model(parallel, config));
    DbrxShard shard = DbrxShard::whole(config);
    const Split heads = split_evenly(config.n_head, rank, n_ranks);
    shard.head_begin = heads.begin;
    shard.n_head = heads.count;
    // Query head h reads KV head h / n_rep; hold every KV head the rank's query heads read.
    const int64_t n_rep = config.n_head / config.n_head_kv;
    shard.kv_head_begin = heads.begin / n_rep;
    shard.n_head_kv = (heads.begin + heads.count - 1) / n_rep + 1 - shard.kv_head_begin;
    const Split experts =
        split_evenly(config.n_expert, parallel.expert_group(rank), parallel.expert);
    shard.expert_begin = experts.begin;
    shard.n_expert = experts.count;
    shard.expert_parallel = parallel.expert > 1;
    const Split ff = split_evenly(config.n_ff, parallel.tensor_index(rank), parallel.tensor);
    shard.ff_begin = ff.begin;
    shard.n_ff = ff.count;
    const Split vocab = split_evenly(config.n_vocab, rank, n_ranks);
    shard.vocab_begin = vocab.begin;
    shard.n_vocab = vocab.count;
    return shard;
}

}  // namespace sluice::inference
