// The host side of the expert plan's token exchange on the CUDA backend: which group holds an
// expert, the rows each rank sends each group from its expert-sorted pairs, what each rank
// reads from the all-gathered counts, and the CPU references of the dispatch kernels — checked
// together by running a whole dispatch of several ranks on the host.
#include "inference/expert_exchange.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "inference/cpu/expert_dispatch.h"
#include "inference/dbrx_shard.h"

namespace sluice::inference {
namespace {

TEST_CASE("expert exchange: groups hold the experts split_evenly gives them") {
    // 16 experts over 3 groups: [0, 5), [5, 10), [10, 16).
    CHECK(expert_group_of(0, 16, 3) == 0);
    CHECK(expert_group_of(4, 16, 3) == 0);
    CHECK(expert_group_of(5, 16, 3) == 1);
    CHECK(expert_group_of(9, 16, 3) == 1);
    CHECK(expert_group_of(10, 16, 3) == 2);
    CHECK(expert_group_of(15, 16, 3) == 2);
    for (int e = 0; e < 16; ++e) {
        CHECK(expert_group_of(e, 16, 1) == 0);
        CHECK(expert_group_of(e, 16, 16) == e);
    }
}

TEST_CASE("expert exchange: rows per group from the sorted pairs' offsets") {
    // 4 experts over 2 groups; expert 1 and 2 have no pairs.
    const std::vector<int32_t> offsets = {0, 3, 3, 3, 7};
    CHECK(rows_per_group(offsets, 4, 2) == std::vector<float>{3, 4});
    CHECK(rows_per_group(offsets, 4, 4) == std::vector<float>{3, 0, 0, 4});
    CHECK(rows_per_group(offsets, 4, 3) == std::vector<float>{3, 0, 4});  // [0,1) [1,2) [2,4)
    // A rank without tokens this step sends nothing.
    CHECK(rows_per_group({}, 4, 2) == std::vector<float>{0, 0});
}

TEST_CASE(
    "expert exchange: a rank reads its row of the gathered counts to send, its column to "
    "receive") {
    // gathered[s][r]: rows rank s sends to rank r.
    const std::vector<float> gathered = {1, 2, 0,  //
                                         4, 0, 6,  //
                                         0, 8, 9};
    const ExpertExchange one = expert_exchange(gathered, 1, 3);
    CHECK(one.send_rows == std::vector<int64_t>{4, 0, 6});
    CHECK(one.recv_rows == std::vector<int64_t>{2, 0, 8});
    CHECK(one.n_send == 10);
    CHECK(one.n_recv == 10);
    CHECK(one.dispatch_send(5) == std::vector<int64_t>{20, 0, 30});
    CHECK(one.dispatch_recv(5) == std::vector<int64_t>{10, 0, 40});
    // The combine returns the rows the other way, d wide.
    CHECK(one.combine_send(4) == std::vector<int64_t>{8, 0, 32});
    CHECK(one.combine_recv(4) == std::vector<int64_t>{16, 0, 24});
    const ExpertExchange zero = expert_exchange(gathered, 0, 3);
    CHECK(zero.n_recv == 5);
    CHECK(zero.recv_rows == std::vector<int64_t>{1, 4, 0});
}

TEST_CASE("expert dispatch references: a row carries its expert, unpacked by the receiver") {
    // 3 slots sorted by expert over 4 experts: slot 0 expert 0, slots 1-2 expert 3.
    const std::vector<int32_t> offsets = {0, 1, 1, 1, 3};
    const std::vector<float> x = {1, 2, 3, 4, 5, 6};  // [3, 2]
    std::vector<float> send(9);
    cpu::pack_dispatch_rows(x.data(), offsets.data(), 4, 3, 2, send.data());
    CHECK(send == std::vector<float>{1, 2, 0, 3, 4, 3, 5, 6, 3});
    std::vector<float> back(6);
    std::vector<int32_t> local(3);
    cpu::unpack_dispatch_rows(send.data(), 3, 2, 2, back.data(), local.data());
    CHECK(back == x);
    CHECK(local == std::vector<int32_t>{-2, 1, 1});
    std::vector<float> gathered(4);
    const std::vector<int32_t> index = {2, 0};
    cpu::gather_rows(x.data(), index.data(), 2, 2, gathered.data());
    CHECK(gathered == std::vector<float>{5, 6, 1, 2});
}

// A rank's routed slice, sorted by expert as permute_by_expert sorts it: each pair's row
// (its token's values) in expert order, token order within an expert.
struct Sorted {
    std::vector<int32_t> offsets;  // [n_expert + 1]
    std::vector<float> rows;       // [n_pairs, d]
    std::vector<int64_t> token;    // [n_pairs]
};

Sorted sort_pairs(const std::vector<std::vector<int32_t>>& chosen, int64_t first_token,
                  int64_t n_expert, int64_t d) {
    Sorted sorted;
    sorted.offsets.assign(static_cast<size_t>(n_expert + 1), 0);
    for (int64_t e = 0; e < n_expert; ++e) {
        for (size_t t = 0; t < chosen.size(); ++t) {
            if (std::ranges::find(chosen[t], e) != chosen[t].end()) {
                const int64_t token = first_token + static_cast<int64_t>(t);
                sorted.token.push_back(token);
                for (int64_t j = 0; j < d; ++j) {
                    sorted.rows.push_back(static_cast<float>(token * 100 + j));
                }
            }
        }
        sorted.offsets[static_cast<size_t>(e + 1)] = static_cast<int32_t>(sorted.token.size());
    }
    return sorted;
}

// Every rank routes its slice, counts, the counts are "all-gathered", every rank packs, the
// all-to-all is played by concatenation, and every rank unpacks what it received: each
// received row is one of its own experts' and carries the row its sender packed, in sender
// order and, within a sender, in expert order.
void check_dispatch(int64_t n_tokens, int n_ranks, uint32_t seed) {
    const int64_t n_expert = 16;
    const int64_t k = 4;
    const int64_t d = 3;
    std::mt19937 rng(seed);
    std::vector<Sorted> sorted;
    std::vector<float> gathered;
    for (int r = 0; r < n_ranks; ++r) {
        const Split slice = split_evenly(n_tokens, r, n_ranks);
        std::vector<std::vector<int32_t>> chosen(static_cast<size_t>(slice.count));
        for (auto& experts : chosen) {
            std::vector<int32_t> all(static_cast<size_t>(n_expert));
            std::iota(all.begin(), all.end(), 0);
            std::shuffle(all.begin(), all.end(), rng);
            experts.assign(all.begin(), all.begin() + k);
        }
        sorted.push_back(sort_pairs(chosen, slice.begin, n_expert, d));
        const std::vector<int32_t> offsets =
            slice.count > 0 ? sorted.back().offsets : std::vector<int32_t>{};
        const std::vector<float> rows = rows_per_group(offsets, n_expert, n_ranks);
        gathered.insert(gathered.end(), rows.begin(), rows.end());
    }
    int64_t total_received = 0;
    for (int r = 0; r < n_ranks; ++r) {
        const ExpertExchange exchange = expert_exchange(gathered, r, n_ranks);
        const Split experts = split_evenly(n_expert, r, n_ranks);
        std::vector<float> received;
        for (int s = 0; s < n_ranks; ++s) {
            const Sorted& from = sorted[static_cast<size_t>(s)];
            const auto n_slots = static_cast<int64_t>(from.token.size());
            std::vector<float> send(static_cast<size_t>(n_slots * (d + 1)));
            cpu::pack_dispatch_rows(from.rows.data(), from.offsets.data(), n_expert, n_slots, d,
                                    send.data());
            // Sender s's rows for rank r start after its rows for ranks before r.
            const ExpertExchange theirs = expert_exchange(gathered, s, n_ranks);
            int64_t first = 0;
            for (int q = 0; q < r; ++q) {
                first += theirs.send_rows[static_cast<size_t>(q)];
            }
            const int64_t count = theirs.send_rows[static_cast<size_t>(r)];
            CHECK(count == exchange.recv_rows[static_cast<size_t>(s)]);
            received.insert(received.end(), send.begin() + first * (d + 1),
                            send.begin() + (first + count) * (d + 1));
        }
        const int64_t n_recv = exchange.n_recv;
        REQUIRE(static_cast<int64_t>(received.size()) == n_recv * (d + 1));
        std::vector<float> x(static_cast<size_t>(n_recv * d));
        std::vector<int32_t> local(static_cast<size_t>(n_recv));
        cpu::unpack_dispatch_rows(received.data(), n_recv, d, experts.begin, x.data(),
                                  local.data());
        for (int64_t i = 0; i < n_recv; ++i) {
            INFO("rank " << r << " row " << i);
            CHECK(local[static_cast<size_t>(i)] >= 0);
            CHECK(local[static_cast<size_t>(i)] < experts.count);
            // The row is its token's: token * 100 + j.
            const float token = x[static_cast<size_t>(i * d)] / 100;
            CHECK(x[static_cast<size_t>(i * d + 2)] == token * 100 + 2);
        }
        total_received += n_recv;
    }
    CHECK(total_received == n_tokens * k);
}

TEST_CASE("expert exchange: a whole dispatch over 2, 3 and 4 ranks, and ranks without tokens") {
    check_dispatch(11, 2, 1);
    check_dispatch(11, 3, 2);
    check_dispatch(32, 4, 3);
    check_dispatch(1, 4, 4);  // one token: three ranks route nothing
    check_dispatch(2, 3, 5);
}

}  // namespace
}  // namespace sluice::inference
