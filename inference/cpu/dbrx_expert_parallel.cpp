// The expert plan's MoE layer, and the grid's (dbrx.h, docs/parallel.md): each expert group
// routes a slice of the step's tokens, sends each (token, expert) pair to the group holding
// that expert, runs the pairs it receives through its experts, sends the outputs back,
// combines them into its tokens and all-gathers the slices so that every rank again holds the
// whole residual stream. All of that runs over the `expert` communicator, which has one rank
// per group. In the grid each group's N ranks do it side by side, every one for its ffn slice
// of the same pairs (they hold the same tokens, so they route and send the same), and sum
// their partial expert outputs with an all-reduce over the `tensor` communicator (the group).
#include <algorithm>

#include "inference/cpu/dbrx.h"

namespace sluice::inference::cpu {

namespace {

struct RoutedPair {
    int32_t expert = 0;
    int64_t token = 0;
    float weight = 0;
};

}  // namespace

Status DbrxModel::moe_expert_parallel(const DbrxLayerWeights& layer) {
    const int64_t d = config_.d_model;
    const int64_t n_expert = config_.n_expert;
    const int64_t k = config_.n_expert_used;
    Communicator* comm = comms_.expert;
    const int n_ranks = comm->size();
    const auto n_tokens = static_cast<int64_t>(positions_.size());
    const Split slice = split_evenly(n_tokens, comm->rank(), n_ranks);

    // Route this rank's tokens. Sorting the pairs by expert (stably, so tokens stay in order)
    // groups them by destination rank, and makes the combine below add each token's experts in
    // ascending order, as the single-rank pass does.
    std::vector<RoutedPair> pairs;
    if (slice.count > 0) {
        router_logits_.resize(static_cast<size_t>(slice.count * n_expert));
        matmul_.run({&layer.router, 0, n_expert, h_.data() + slice.begin * d, slice.count,
                     router_logits_.data()});
        std::vector<int32_t> chosen(static_cast<size_t>(k));
        std::vector<float> weight(static_cast<size_t>(k));
        for (int64_t t = 0; t < slice.count; ++t) {
            route_top_k(router_logits_.data() + t * n_expert, n_expert, k, config_, chosen.data(),
                        weight.data());
            for (int64_t j = 0; j < k; ++j) {
                pairs.push_back({chosen[static_cast<size_t>(j)], slice.begin + t,
                                 weight[static_cast<size_t>(j)]});
            }
        }
        std::stable_sort(pairs.begin(), pairs.end(),
                         [](const RoutedPair& a, const RoutedPair& b) { return a.expert < b.expert; });
    }

    // Dispatch. A row is the token's normalised state and then its expert id (exact in fp32).
    const int64_t row = d + 1;
    std::vector<int> owner(static_cast<size_t>(n_expert));
    for (int r = 0; r < n_ranks; ++r) {
        const Split experts = split_evenly(n_expert, r, n_ranks);
        std::fill_n(owner.begin() + experts.begin, experts.count, r);
    }
    std::vector<float> send(pairs.size() * static_cast<size_t>(row));
    std::vector<float> rows_to(static_cast<size_t>(n_ranks), 0.0f);  // counts, exact in fp32
    for (size_t p = 0; p < pairs.size(); ++p) {
        std::copy_n(h_.data() + pairs[p].token * d, d, send.data() + p * static_cast<size_t>(row));
        send[p * static_cast<size_t>(row) + static_cast<size_t>(d)] =
            static_cast<float>(pairs[p].expert);
        rows_to[static_cast<size_t>(owner[static_cast<size_t>(pairs[p].expert)])] += 1;
    }
    gathered_.resize(static_cast<size_t>(n_ranks * n_ranks));
    SLUICE_RETURN_IF_ERROR(
        comm->all_gather(rows_to.data(), gathered_.data(), n_ranks, DType::kF32));
    std::vector<int64_t> send_rows(static_cast<size_t>(n_ranks));
    std::vector<int64_t> recv_rows(static_cast<size_t>(n_ranks));
    std::vector<int64_t> send_counts(static_cast<size_t>(n_ranks));
    std::vector<int64_t> recv_counts(static_cast<size_t>(n_ranks));
    int64_t n_received = 0;
    for (int r = 0; r < n_ranks; ++r) {
        const auto i = static_cast<size_t>(r);
        send_rows[i] = static_cast<int64_t>(rows_to[i]);
        recv_rows[i] =
            static_cast<int64_t>(gathered_[static_cast<size_t>(r * n_ranks + comm->rank())]);
        send_counts[i] = send_rows[i] * row;
        recv_counts[i] = recv_rows[i] * row;
        n_received += recv_rows[i];
    }
    std::vector<float> received(static_cast<size_t>(n_received * row));
    SLUICE_RETURN_IF_ERROR(
        comm->all_to_all(send.data(), send_counts, received.data(), recv_counts, DType::kF32));

    // Group the received rows by this rank's experts (stably) and run them.
    std::vector<std::vector<int64_t>> by_expert(static_cast<size_t>(shard_.n_expert));
    for (int64_t i = 0; i < n_received; ++i) {
        const auto expert = static_cast<int64_t>(received[static_cast<size_t>(i * row + d)]);
        by_expert[static_cast<size_t>(expert - shard_.expert_begin)].push_back(i);
    }
    expert_in_.resize(static_cast<size_t>(n_received * d));
    std::vector<int64_t> group_start(static_cast<size_t>(shard_.n_expert) + 1, 0);
    for (int64_t e = 0; e < shard_.n_expert; ++e) {
        const auto& group = by_expert[static_cast<size_t>(e)];
        const int64_t start = group_start[static_cast<size_t>(e)];
        for (size_t i = 0; i < group.size(); ++i) {
            std::copy_n(received.data() + group[i] * row, d,
                        expert_in_.data() + (start + static_cast<int64_t>(i)) * d);
        }
        group_start[static_cast<size_t>(e) + 1] = start + static_cast<int64_t>(group.size());
    }
    run_experts(layer, group_start);
    // Grid: each rank of the group holds its ffn slice, so its outputs are partial sums.
    SLUICE_RETURN_IF_ERROR(all_reduce(comms_.tensor, &expert_out_, n_received * d));

    // Combine: the outputs go back in the order they came, so each sender finds its pairs'
    // outputs in its own send order.
    std::vector<float> reply(static_cast<size_t>(n_received * d));
    for (int64_t e = 0; e < shard_.n_expert; ++e) {
        const auto& group = by_expert[static_cast<size_t>(e)];
        const int64_t start = group_start[static_cast<size_t>(e)];
        for (size_t i = 0; i < group.size(); ++i) {
            std::copy_n(expert_out_.data() + (start + static_cast<int64_t>(i)) * d, d,
                        reply.data() + group[i] * d);
        }
    }
    for (int r = 0; r < n_ranks; ++r) {
        send_counts[static_cast<size_t>(r)] = recv_rows[static_cast<size_t>(r)] * d;
        recv_counts[static_cast<size_t>(r)] = send_rows[static_cast<size_t>(r)] * d;
    }
    std::vector<float> back(pairs.size() * static_cast<size_t>(d));
    SLUICE_RETURN_IF_ERROR(
        comm->all_to_all(reply.data(), send_counts, back.data(), recv_counts, DType::kF32));
    for (size_t p = 0; p < pairs.size(); ++p) {
        const float* src = back.data() + p * static_cast<size_t>(d);
        float* dst = x_.data() + pairs[p].token * d;
        const float weight = pairs[p].weight;
        for (int64_t j = 0; j < d; ++j) {
            dst[j] += weight * src[j];
        }
    }

    // Every rank takes back the whole residual stream: slices padded to the largest.
    const int64_t padded = (n_tokens + n_ranks - 1) / n_ranks;
    std::vector<float> mine(static_cast<size_t>(padded * d), 0.0f);
    std::copy_n(x_.data() + slice.begin * d, slice.count * d, mine.data());
    gathered_.resize(static_cast<size_t>(n_ranks * padded * d));
    SLUICE_RETURN_IF_ERROR(
        comm->all_gather(mine.data(), gathered_.data(), padded * d, DType::kF32));
    for (int r = 0; r < n_ranks; ++r) {
        const Split theirs = split_evenly(n_tokens, r, n_ranks);
        std::copy_n(gathered_.data() + r * padded * d, theirs.count * d,
                    x_.data() + theirs.begin * d);
    }
    return Status::ok_status();
}

}  // namespace sluice::inference::cpu
