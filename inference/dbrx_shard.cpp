#include "inference/dbrx_shard.h"

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
