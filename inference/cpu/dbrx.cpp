#include "inference/cpu/dbrx.h"

#include <algorithm>
#include <thread>

#include "inference/dbrx_layout.h"

namespace sluice::inference::cpu {

namespace {

const TensorView& tensor(const Checkpoint& checkpoint, const std::string& name) {
    const TensorView* view = checkpoint.find(name);
    SLUICE_CHECK(view != nullptr, "checkpoint was checked, yet lacks '" + name + "'");
    return *view;
}

// Embedding and router stay in a float format even for int8: the embedding is a lookup, not a
// product, and the router's choice of experts is the most sensitive decision in the model.
MatrixFormat float_format_for(WeightFormat requested, DType stored) {
    return requested == WeightFormat::kInt8 ? matrix_format_for(WeightFormat::kAsStored, stored)
                                            : matrix_format_for(requested, stored);
}

// `matrix` (read from `source`) packed into panels where it fits (panel_layout.h). A packed
// matrix owns its elements, so the mapping's pages of `source` leave the resident set: the
// process then holds one copy of those weights, not the packed one and the file's. A matrix
// that borrows bytes the checkpoint holds in memory (a dequantised fp8 checkpoint's) stays
// row-major: those bytes cannot be given back, and packing would keep two copies.
WeightMatrix packed(WeightMatrix matrix, const Checkpoint& checkpoint, const TensorView& source) {
    const auto* first = static_cast<const uint8_t*>(matrix.data());
    const bool borrows_source = first >= source.data && first < source.data + source.n_bytes;
    if (borrows_source && !checkpoint.is_mapped(source)) {
        return matrix;
    }
    matrix = pack_panels(std::move(matrix));
    if (matrix.layout() == MatrixLayout::kPanels) {
        checkpoint.release_pages(source);
    }
    return matrix;
}

}  // namespace

DbrxWeights load_dbrx_weights(const ModelConfig& config, const Checkpoint& checkpoint,
                              WeightFormat format) {
    return load_dbrx_weights(config, checkpoint, format, DbrxShard::whole(config));
}

DbrxWeights load_dbrx_weights(const ModelConfig& config, const Checkpoint& checkpoint,
                              WeightFormat format, const DbrxShard& shard) {
    const int64_t d = config.d_model;
    const int64_t hd = config.head_dim();
    const int64_t n_ff = config.n_ff;
    DbrxWeights weights;
    const TensorView& wte = tensor(checkpoint, "transformer.wte.weight");
    weights.embedding = load_matrix(wte, float_format_for(format, wte.dtype));
    // Wqkv rows: [q: n_head * hd | k: n_head_kv * hd | v: n_head_kv * hd]; the shard's heads.
    const std::vector<RowRange> qkv_rows = {
        {shard.head_begin * hd, shard.n_head * hd},
        {d + shard.kv_head_begin * hd, shard.n_head_kv * hd},
        {d + config.n_embd_kv() + shard.kv_head_begin * hd, shard.n_head_kv * hd}};
    // w1 and v1 rows: each held expert's ffn slice.
    std::vector<RowRange> ff_rows;
    for (int64_t e = shard.expert_begin; e < shard.expert_begin + shard.n_expert; ++e) {
        ff_rows.push_back({e * n_ff + shard.ff_begin, shard.n_ff});
    }
    if (shard.n_ff == n_ff) {  // whole experts: one contiguous run, borrowable
        ff_rows = {{shard.expert_begin * n_ff, shard.n_expert * n_ff}};
    }
    const std::vector<RowRange> all_rows_of_out = {{0, d}};
    const std::vector<RowRange> vocab_rows = {{shard.vocab_begin, shard.n_vocab}};
    for (int64_t i = 0; i < config.n_layer; ++i) {
        DbrxLayerWeights layer;
        auto get = [&](const char* suffix) -> const TensorView& {
            return tensor(checkpoint, dbrx_block_tensor(i, suffix));
        };
        layer.norm_1 = tensor_to_f32(get("norm_attn_norm.norm_1.weight"));
        layer.norm_2 = tensor_to_f32(get("norm_attn_norm.norm_2.weight"));
        // The matrices a decode step streams are packed into panels (panel_layout.h) where
        // they are bf16; the embedding (a lookup) and the router (16 rows) are not.
        const TensorView& wqkv = get("norm_attn_norm.attn.Wqkv.weight");
        layer.wqkv =
            packed(load_matrix_slice(wqkv, qkv_rows, 0, d, matrix_format_for(format, wqkv.dtype)),
                   checkpoint, wqkv);
        const TensorView& out = get("norm_attn_norm.attn.out_proj.weight");
        layer.out_proj =
            packed(load_matrix_slice(out, all_rows_of_out, shard.head_begin * hd, shard.n_head * hd,
                                     matrix_format_for(format, out.dtype)),
                   checkpoint, out);
        const TensorView& router = get("ffn.router.layer.weight");
        layer.router = load_matrix(router, float_format_for(format, router.dtype));
        const TensorView& w1 = get("ffn.experts.mlp.w1");
        layer.w1 = packed(load_matrix_slice(w1, ff_rows, 0, d, matrix_format_for(format, w1.dtype)),
                          checkpoint, w1);
        const TensorView& v1 = get("ffn.experts.mlp.v1");
        layer.v1 = packed(load_matrix_slice(v1, ff_rows, 0, d, matrix_format_for(format, v1.dtype)),
                          checkpoint, v1);
        const TensorView& w2 = get("ffn.experts.mlp.w2");
        layer.w2t = packed(load_matrix_transposed_blocks(
                               w2, config.n_expert, shard.expert_begin, shard.n_expert,
                               {shard.ff_begin, shard.n_ff}, matrix_format_for(format, w2.dtype)),
                           checkpoint, w2);
        weights.layers.push_back(std::move(layer));
    }
    weights.norm_f = tensor_to_f32(tensor(checkpoint, "transformer.norm_f.weight"));
    const TensorView& lm_head = tensor(checkpoint, "lm_head.weight");
    weights.lm_head = packed(
        load_matrix_slice(lm_head, vocab_rows, 0, d, matrix_format_for(format, lm_head.dtype)),
        checkpoint, lm_head);
    return weights;
}

DbrxModel::DbrxModel(ModelConfig config, DbrxWeights weights, int n_threads)
    : DbrxModel(config, std::move(weights), n_threads, DbrxShard::whole(config), RankComms{}) {}

DbrxModel::DbrxModel(ModelConfig config, DbrxWeights weights, int n_threads, DbrxShard shard,
                     RankComms comms)
    : config_(std::move(config)),
      weights_(std::move(weights)),
      shard_(shard),
      comms_(comms),
      pool_(n_threads),
      matmul_(&pool_) {}

Status DbrxModel::all_reduce(Communicator* comm, std::vector<float>* data, int64_t count) {
    if (comm == nullptr) {
        return Status::ok_status();
    }
    return comm->all_reduce(data->data(), count, DType::kF32, ReduceOp::kSum);
}

Status DbrxModel::forward(const ForwardBatch& batch, KvCacheStorage* cache, ForwardOutput* out) {
    const int64_t d = config_.d_model;
    const int64_t hd = config_.head_dim();
    positions_.clear();
    std::vector<int32_t> tokens;
    for (const SequenceStep& seq : batch.sequences) {
        for (size_t i = 0; i < seq.tokens.size(); ++i) {
            positions_.push_back(seq.n_past + static_cast<int32_t>(i));
            tokens.push_back(seq.tokens[i]);
        }
    }
    const auto n_tokens = static_cast<int64_t>(tokens.size());
    const int64_t n_qkv = (shard_.n_head + 2 * shard_.n_head_kv) * hd;
    x_.resize(static_cast<size_t>(n_tokens * d));
    h_.resize(x_.size());
    attn_.resize(static_cast<size_t>(n_tokens * shard_.n_head * hd));
    qkv_.resize(static_cast<size_t>(n_tokens * n_qkv));
    for (int64_t t = 0; t < n_tokens; ++t) {
        weights_.embedding.row_to_f32(tokens[static_cast<size_t>(t)], x_.data() + t * d);
    }
    rope_table(positions_, hd, config_.rope_theta, &rope_);

    for (int64_t l = 0; l < config_.n_layer; ++l) {
        const DbrxLayerWeights& layer = weights_.layers[static_cast<size_t>(l)];
        layer_norm(x_.data(), layer.norm_1.data(), n_tokens, d, config_.norm_eps, h_.data());
        matmul_.run({&layer.wqkv, 0, n_qkv, h_.data(), n_tokens, qkv_.data()});
        attention(l, batch, cache);
        matmul_.run({&layer.out_proj, 0, d, attn_.data(), n_tokens, h_.data()});
        // Row-parallel out-projection: each rank holds its heads' share of the sum.
        SLUICE_RETURN_IF_ERROR(all_reduce(comms_.all, &h_, n_tokens * d));
        for (size_t i = 0; i < x_.size(); ++i) {
            x_[i] += h_[i];
        }
        layer_norm(x_.data(), layer.norm_2.data(), n_tokens, d, config_.norm_eps, h_.data());
        // Both add the experts' output to x_.
        SLUICE_RETURN_IF_ERROR(shard_.expert_parallel ? moe_expert_parallel(layer) : moe(layer));
    }

    // The rows each sequence asks logits for, normalised and projected.
    out->n_vocab = config_.n_vocab;
    out->first_row.clear();
    out->n_rows.clear();
    std::vector<int64_t> rows;
    int64_t token = 0;
    for (const SequenceStep& seq : batch.sequences) {
        const auto n_new = static_cast<int64_t>(seq.tokens.size());
        out->first_row.push_back(static_cast<int64_t>(rows.size()));
        const int64_t first = seq.logits == LogitsRows::kAll ? 0 : n_new - 1;
        const int64_t count = seq.logits == LogitsRows::kNone ? 0 : n_new - first;
        for (int64_t i = 0; i < count; ++i) {
            rows.push_back(token + first + i);
        }
        out->n_rows.push_back(count);
        token += n_new;
    }
    // Hidden states: every new token of the entries that ask, after the final norm.
    out->n_embd = d;
    out->hidden.clear();
    out->hidden_first_row.clear();
    out->hidden_n_rows.clear();
    token = 0;
    int64_t n_hidden = 0;
    for (const SequenceStep& seq : batch.sequences) {
        const auto n_new = static_cast<int64_t>(seq.tokens.size());
        out->hidden_first_row.push_back(n_hidden);
        out->hidden_n_rows.push_back(seq.hidden ? n_new : 0);
        if (seq.hidden) {
            out->hidden.resize(static_cast<size_t>((n_hidden + n_new) * d));
            layer_norm(x_.data() + token * d, weights_.norm_f.data(), n_new, d, config_.norm_eps,
                       out->hidden.data() + n_hidden * d);
            n_hidden += n_new;
        }
        token += n_new;
    }

    const auto n_rows = static_cast<int64_t>(rows.size());
    for (int64_t r = 0; r < n_rows; ++r) {
        layer_norm(x_.data() + rows[static_cast<size_t>(r)] * d, weights_.norm_f.data(), 1, d,
                   config_.norm_eps, h_.data() + r * d);
    }
    return lm_head(n_rows, out);
}

Status DbrxModel::lm_head(int64_t n_rows, ForwardOutput* out) {
    const int64_t n_vocab = config_.n_vocab;
    out->logits.resize(static_cast<size_t>(n_rows * n_vocab));
    if (comms_.all == nullptr) {
        matmul_.run({&weights_.lm_head, 0, n_vocab, h_.data(), n_rows, out->logits.data()});
        return Status::ok_status();
    }
    // Vocabulary-parallel: each rank projects onto its rows, padded to the largest share so
    // that the all-gather moves equal blocks; the blocks are then laid side by side per row.
    const int n_ranks = comms_.all->size();
    const int64_t padded = (n_vocab + n_ranks - 1) / n_ranks;
    std::vector<float> local(static_cast<size_t>(n_rows * padded), 0.0f);
    std::vector<float> mine(static_cast<size_t>(n_rows * shard_.n_vocab));
    matmul_.run({&weights_.lm_head, 0, shard_.n_vocab, h_.data(), n_rows, mine.data()});
    for (int64_t r = 0; r < n_rows; ++r) {
        std::copy_n(mine.data() + r * shard_.n_vocab, shard_.n_vocab, local.data() + r * padded);
    }
    gathered_.resize(static_cast<size_t>(n_ranks * n_rows * padded));
    SLUICE_RETURN_IF_ERROR(
        comms_.all->all_gather(local.data(), gathered_.data(), n_rows * padded, DType::kF32));
    for (int rank = 0; rank < n_ranks; ++rank) {
        const Split vocab = split_evenly(n_vocab, rank, n_ranks);
        for (int64_t r = 0; r < n_rows; ++r) {
            std::copy_n(gathered_.data() + (rank * n_rows + r) * padded, vocab.count,
                        out->logits.data() + r * n_vocab + vocab.begin);
        }
    }
    return Status::ok_status();
}

void DbrxModel::attention(int64_t layer, const ForwardBatch& batch, KvCacheStorage* cache) {
    const int64_t hd = config_.head_dim();
    const int64_t n_head = shard_.n_head;
    const int64_t n_q = n_head * hd;
    const int64_t n_kv = shard_.n_head_kv * hd;
    const int64_t n_qkv = n_q + 2 * n_kv;
    const auto n_tokens = static_cast<int64_t>(positions_.size());
    const int32_t block_size = cache->spec().block_size;

    // Clamp, rotate and store K and V of every new token (this rank's heads).
    int64_t t = 0;
    for (const SequenceStep& seq : batch.sequences) {
        for (size_t i = 0; i < seq.tokens.size(); ++i, ++t) {
            float* row = qkv_.data() + t * n_qkv;  // [q: n_q | k: n_kv | v: n_kv]
            if (config_.clip_qkv) {
                const float c = *config_.clip_qkv;
                for (int64_t j = 0; j < n_qkv; ++j) {
                    row[j] = std::clamp(row[j], -c, c);
                }
            }
            for (int64_t h = 0; h < n_head; ++h) {
                rope_apply(row + h * hd, rope_, t);
            }
            for (int64_t h = 0; h < shard_.n_head_kv; ++h) {
                rope_apply(row + n_q + h * hd, rope_, t);
            }
            const int32_t pos = positions_[static_cast<size_t>(t)];
            const int32_t block = seq.block_table[static_cast<size_t>(pos / block_size)];
            std::copy(row + n_q, row + n_q + n_kv, cache->k(layer, block, pos % block_size));
            std::copy(row + n_q + n_kv, row + n_qkv, cache->v(layer, block, pos % block_size));
        }
    }

    // One task per (sequence, head); each writes its own slice of attn_.
    int32_t max_keys = 0;
    std::vector<int64_t> first_token;
    int64_t offset = 0;
    for (const SequenceStep& seq : batch.sequences) {
        first_token.push_back(offset);
        offset += static_cast<int64_t>(seq.tokens.size());
        max_keys = std::max(max_keys, seq.n_past + static_cast<int32_t>(seq.tokens.size()));
    }
    SLUICE_CHECK(offset == n_tokens, "token count mismatch");
    const int64_t n_tasks = static_cast<int64_t>(batch.sequences.size()) * n_head;
    scores_.resize(static_cast<size_t>(n_tasks * max_keys));
    const int64_t n_rep = config_.n_head / config_.n_head_kv;
    pool_.parallel_for(n_tasks, [&](int64_t task) {
        const size_t s = static_cast<size_t>(task / n_head);
        const int64_t head = task % n_head;
        // The model's KV head of this query head, as an index into this rank's KV heads.
        const int64_t kv_head = (shard_.head_begin + head) / n_rep - shard_.kv_head_begin;
        const SequenceStep& seq = batch.sequences[s];
        AttentionHead args{layer, head, kv_head, hd, seq.n_past,
                           static_cast<int64_t>(seq.tokens.size()), seq.block_table};
        attend_head(*cache, args, qkv_.data() + first_token[s] * n_qkv, n_qkv,
                    attn_.data() + first_token[s] * n_q, n_q, scores_.data() + task * max_keys);
    });
}

void DbrxModel::run_experts(const DbrxLayerWeights& layer,
                            const std::vector<int64_t>& group_start) {
    const int64_t d = config_.d_model;
    const int64_t n_ff = shard_.n_ff;
    const int64_t n_expert = static_cast<int64_t>(group_start.size()) - 1;
    const int64_t n_pairs = group_start.back();
    gate_.resize(static_cast<size_t>(n_pairs * n_ff));
    up_.resize(gate_.size());
    expert_out_.resize(static_cast<size_t>(n_pairs * d));
    std::vector<MatmulJob> jobs;
    for (int64_t e = 0; e < n_expert; ++e) {
        const int64_t start = group_start[static_cast<size_t>(e)];
        const int64_t m = group_start[static_cast<size_t>(e) + 1] - start;
        if (m == 0) {
            continue;
        }
        const float* in = expert_in_.data() + start * d;
        jobs.push_back({&layer.w1, e * n_ff, n_ff, in, m, gate_.data() + start * n_ff});
        jobs.push_back({&layer.v1, e * n_ff, n_ff, in, m, up_.data() + start * n_ff});
    }
    matmul_.run_grouped(jobs);
    glu(gate_.data(), up_.data(), n_pairs * n_ff, config_.activation);
    jobs.clear();
    for (int64_t e = 0; e < n_expert; ++e) {
        const int64_t start = group_start[static_cast<size_t>(e)];
        const int64_t m = group_start[static_cast<size_t>(e) + 1] - start;
        if (m > 0) {
            jobs.push_back({&layer.w2t, e * d, d, gate_.data() + start * n_ff, m,
                            expert_out_.data() + start * d});
        }
    }
    matmul_.run_grouped(jobs);
}

Status DbrxModel::moe(const DbrxLayerWeights& layer) {
    const int64_t d = config_.d_model;
    const int64_t n_expert = config_.n_expert;
    const int64_t k = config_.n_expert_used;
    const auto n_tokens = static_cast<int64_t>(positions_.size());

    router_logits_.resize(static_cast<size_t>(n_tokens * n_expert));
    matmul_.run({&layer.router, 0, n_expert, h_.data(), n_tokens, router_logits_.data()});
    std::vector<int32_t> chosen(static_cast<size_t>(n_tokens * k));
    std::vector<float> chosen_weight(chosen.size());
    for (int64_t t = 0; t < n_tokens; ++t) {
        route_top_k(router_logits_.data() + t * n_expert, n_expert, k, config_,
                    chosen.data() + t * k, chosen_weight.data() + t * k);
    }

    // Group the (token, weight) pairs by expert, in expert order.
    std::vector<std::vector<std::pair<int64_t, float>>> groups(static_cast<size_t>(n_expert));
    for (int64_t t = 0; t < n_tokens; ++t) {
        for (int64_t j = 0; j < k; ++j) {
            groups[static_cast<size_t>(chosen[static_cast<size_t>(t * k + j)])].emplace_back(
                t, chosen_weight[static_cast<size_t>(t * k + j)]);
        }
    }
    const int64_t n_pairs = n_tokens * k;
    expert_in_.resize(static_cast<size_t>(n_pairs * d));
    std::vector<int64_t> group_start(static_cast<size_t>(n_expert) + 1, 0);
    for (int64_t e = 0; e < n_expert; ++e) {
        const auto& group = groups[static_cast<size_t>(e)];
        const int64_t start = group_start[static_cast<size_t>(e)];
        for (size_t i = 0; i < group.size(); ++i) {
            std::copy_n(h_.data() + group[i].first * d, d,
                        expert_in_.data() + (start + static_cast<int64_t>(i)) * d);
        }
        group_start[static_cast<size_t>(e) + 1] = start + static_cast<int64_t>(group.size());
    }
    run_experts(layer, group_start);
    // Tensor plan: each rank's w2 holds its ffn slice, so its outputs are partial sums.
    SLUICE_RETURN_IF_ERROR(all_reduce(comms_.tensor, &expert_out_, n_pairs * d));

    for (int64_t e = 0; e < n_expert; ++e) {
        const auto& group = groups[static_cast<size_t>(e)];
        const int64_t start = group_start[static_cast<size_t>(e)];
        for (size_t i = 0; i < group.size(); ++i) {
            const float* src = expert_out_.data() + (start + static_cast<int64_t>(i)) * d;
            float* dst = x_.data() + group[i].first * d;
            const float weight = group[i].second;
            for (int64_t j = 0; j < d; ++j) {
                dst[j] += weight * src[j];
            }
        }
    }
    return Status::ok_status();
}

}  // namespace sluice::inference::cpu
