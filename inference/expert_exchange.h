#pragma once
// The host arithmetic of the expert plan's token exchange (docs/parallel.md), as the CUDA
// backend runs it: a rank's routed (token, expert) pairs sorted by expert are grouped by the
// expert group that holds the expert; each rank counts the rows it sends to each group, the
// counts are all-gathered (as fp32, exact for any step's count), and every rank reads from the
// gathered matrix what it sends and what it receives in the dispatch all-to-all. The combine
// all-to-all sends the same rows back, so its counts are the dispatch's, swapped.
//
// Experts are split over the groups as split_evenly does (dbrx_shard.h): group g holds
// [n_expert * g / n_groups, n_expert * (g + 1) / n_groups).
//
// Thread safety: pure functions.

#include <cstdint>
#include <span>
#include <vector>

namespace sluice::inference {

// The group holding expert `expert` of `n_expert` split over `n_groups` groups.
int expert_group_of(int64_t expert, int64_t n_expert, int n_groups);

// Rows sent to each group from pairs sorted by expert, where offsets [n_expert + 1] holds each
// expert's first slot and the slot count last (as permute_by_expert writes them): the slots
// of group g's experts, as floats (the all-gathered counts' type). An empty `offsets` (a rank
// with no tokens this step) sends nothing. Returns [n_groups].
std::vector<float> rows_per_group(std::span<const int32_t> offsets, int64_t n_expert, int n_groups);

// One rank's side of a layer's dispatch and combine.
struct ExpertExchange {
    std::vector<int64_t> send_rows;  // [n_ranks]: rows this rank sends to rank r
    std::vector<int64_t> recv_rows;  // [n_ranks]: rows rank r sends to this rank
    int64_t n_send = 0;              // sums of the above
    int64_t n_recv = 0;

    // Element counts of the all-to-all moving rows of `width` values: the dispatch sends
    // send_rows and receives recv_rows; the combine, which returns the rows, the other way.
    std::vector<int64_t> dispatch_send(int64_t width) const;
    std::vector<int64_t> dispatch_recv(int64_t width) const;
    std::vector<int64_t> combine_send(int64_t width) const { return dispatch_recv(width); }
    std::vector<int64_t> combine_recv(int64_t width) const { return dispatch_send(width); }
};

// Rank `rank`'s exchange from `gathered` [n_ranks * n_ranks], the all-gather of every rank's
// rows_per_group: block s holds what rank s sends to each rank. SLUICE_CHECK: the size, and
// counts that are whole non-negative numbers (they were computed as such on the device).
ExpertExchange expert_exchange(std::span<const float> gathered, int rank, int n_ranks);

}  // namespace sluice::inference
