#include "inference/expert_exchange.h"

#include <cmath>

#include "common/check.h"
#include "inference/dbrx_shard.h"

namespace sluice::inference {

int expert_group_of(int64_t expert, int64_t n_expert, int n_groups) {
    for (int g = 0; g < n_groups; ++g) {
        const Split experts = split_evenly(n_expert, g, n_groups);
        if (expert < experts.begin + experts.count) {
            return g;
        }
    }
    SLUICE_CHECK(false, "expert " + std::to_string(expert) + " outside [0, " +
                            std::to_string(n_expert) + ")");
    return -1;
}

std::vector<float> rows_per_group(std::span<const int32_t> offsets, int64_t n_expert,
                                  int n_groups) {
    std::vector<float> rows(static_cast<size_t>(n_groups), 0.0f);
    if (offsets.empty()) {
        return rows;
    }
    SLUICE_CHECK(static_cast<int64_t>(offsets.size()) == n_expert + 1,
                 "rows_per_group: offsets of " + std::to_string(n_expert) + " experts");
    for (int g = 0; g < n_groups; ++g) {
        const Split experts = split_evenly(n_expert, g, n_groups);
        const auto begin = static_cast<size_t>(experts.begin);
        const auto end = static_cast<size_t>(experts.begin + experts.count);
        rows[static_cast<size_t>(g)] = static_cast<float>(offsets[end] - offsets[begin]);
    }
    return rows;
}

std::vector<int64_t> ExpertExchange::dispatch_send(int64_t width) const {
    std::vector<int64_t> counts;
    for (const int64_t rows : send_rows) {
        counts.push_back(rows * width);
    }
    return counts;
}

std::vector<int64_t> ExpertExchange::dispatch_recv(int64_t width) const {
    std::vector<int64_t> counts;
    for (const int64_t rows : recv_rows) {
        counts.push_back(rows * width);
    }
    return counts;
}

ExpertExchange expert_exchange(std::span<const float> gathered, int rank, int n_ranks) {
    SLUICE_CHECK(n_ranks > 0 && rank >= 0 && rank < n_ranks &&
                     static_cast<int64_t>(gathered.size()) == int64_t{n_ranks} * n_ranks,
                 "expert_exchange: " + std::to_string(gathered.size()) + " counts for rank " +
                     std::to_string(rank) + " of " + std::to_string(n_ranks));
    auto rows = [&](int from, int to) {
        const float value = gathered[static_cast<size_t>(from * n_ranks + to)];
        SLUICE_CHECK(value >= 0 && std::floor(value) == value,
                     "expert_exchange: a row count of " + std::to_string(value));
        return static_cast<int64_t>(value);
    };
    ExpertExchange exchange;
    for (int r = 0; r < n_ranks; ++r) {
        exchange.send_rows.push_back(rows(rank, r));
        exchange.recv_rows.push_back(rows(r, rank));
        exchange.n_send += exchange.send_rows.back();
        exchange.n_recv += exchange.recv_rows.back();
    }
    return exchange;
}

}  // namespace sluice::inference
