// The staging communicator (cuda/staged_communicator.h) on device buffers, as the expert plan and
// the grid use it with every rank on one GPU: a variable all-to-all with empty blocks, and the
// grid's split into rows and columns with collectives inside the sub-groups, against the values
// the ranks sent.
#include "inference/cuda/staged_communicator.h"

#include <doctest/doctest.h>

#include <thread>

#include "gpu_test_support.h"

namespace sluice::inference {
namespace {

using testing::DeviceVec;

// Runs f(rank) on one thread per rank and waits for all.
template <typename F>
void on_ranks(int n, F&& f) {
    std::vector<std::jthread> threads;
    for (int r = 0; r < n; ++r) {
        threads.emplace_back([&f, r] { f(r); });
    }
}

// The value rank `from` sends to rank `to` as its i-th element.
float sent(int from, int to, int64_t i) { return static_cast<float>(from * 1000 + to * 100 + i); }

// Rank `from` sends (from + to) % 3 elements to rank `to`: some blocks are empty.
int64_t count(int from, int to) { return (from + to) % 3; }

}  // namespace

TEST_CASE("staged communicator: all_to_all of device buffers with empty blocks") {
    const int n = 3;
    auto comms = cuda::create_staged_communicators(n, 0);
    REQUIRE(comms.ok());
    std::vector<std::vector<float>> received(n);
    std::vector<Status> results(n);
    on_ranks(n, [&](int r) {
        REQUIRE(cudaSetDevice(0) == cudaSuccess);
        Communicator& comm = *(*comms)[static_cast<size_t>(r)];
        std::vector<float> send;
        std::vector<int64_t> send_counts;
        std::vector<int64_t> recv_counts;
        int64_t n_recv = 0;
        for (int to = 0; to < n; ++to) {
            for (int64_t i = 0; i < count(r, to); ++i) {
                send.push_back(sent(r, to, i));
            }
            send_counts.push_back(count(r, to));
            recv_counts.push_back(count(to, r));
            n_recv += count(to, r);
        }
        DeviceVec<float> dsend(send);
        DeviceVec<float> drecv(static_cast<size_t>(n_recv));
        results[static_cast<size_t>(r)] =
            comm.all_to_all(dsend.get(), send_counts, drecv.get(), recv_counts, DType::kF32);
        REQUIRE(cudaStreamSynchronize(cuda::communicator_stream(comm)) == cudaSuccess);
        received[static_cast<size_t>(r)] = drecv.host();
    });
    for (int r = 0; r < n; ++r) {
        CHECK(results[static_cast<size_t>(r)].ok());
        std::vector<float> expected;
        for (int from = 0; from < n; ++from) {
            for (int64_t i = 0; i < count(from, r); ++i) {
                expected.push_back(sent(from, r, i));
            }
        }
        INFO("rank " << r);
        CHECK(received[static_cast<size_t>(r)] == expected);
    }
}

TEST_CASE("staged communicator: a 2 x 2 grid's rows and columns on device buffers") {
    const int tensor = 2;
    const int n = 4;
    auto comms = cuda::create_staged_communicators(n, 0);
    REQUIRE(comms.ok());
    std::vector<std::vector<float>> row_sums(n);
    std::vector<std::vector<float>> column_gathers(n);
    std::vector<int> row_ranks(n);
    std::vector<int> column_ranks(n);
    on_ranks(n, [&](int r) {
        REQUIRE(cudaSetDevice(0) == cudaSuccess);
        Communicator& all = *(*comms)[static_cast<size_t>(r)];
        const int group = r / tensor;
        const int index = r % tensor;
        auto row = all.split(group, index);
        REQUIRE(row.ok());
        auto column = all.split(index, group);
        REQUIRE(column.ok());
        CHECK(cuda::communicator_stream(**row) == cuda::communicator_stream(all));
        row_ranks[static_cast<size_t>(r)] = (*row)->rank();
        column_ranks[static_cast<size_t>(r)] = (*column)->rank();
        DeviceVec<float> value(std::vector<float>{static_cast<float>(r + 1), 10.0f});
        REQUIRE((*row)->all_reduce(value.get(), 2, DType::kF32, ReduceOp::kSum).ok());
        DeviceVec<float> mine(std::vector<float>{static_cast<float>(r)});
        DeviceVec<float> gathered(2);
        REQUIRE((*column)->all_gather(mine.get(), gathered.get(), 1, DType::kF32).ok());
        REQUIRE(cudaStreamSynchronize(cuda::communicator_stream(all)) == cudaSuccess);
        row_sums[static_cast<size_t>(r)] = value.host();
        column_gathers[static_cast<size_t>(r)] = gathered.host();
    });
    for (int r = 0; r < n; ++r) {
        INFO("rank " << r);
        const int group = r / tensor;
        const int index = r % tensor;
        CHECK(row_ranks[static_cast<size_t>(r)] == index);
        CHECK(column_ranks[static_cast<size_t>(r)] == group);
        // The row holds ranks 2g and 2g + 1: (2g + 1) + (2g + 2).
        CHECK(row_sums[static_cast<size_t>(r)] ==
              std::vector<float>{static_cast<float>(4 * group + 3), 20.0f});
        // The column holds ranks i and i + 2, in group order.
        CHECK(column_gathers[static_cast<size_t>(r)] ==
              std::vector<float>{static_cast<float>(index), static_cast<float>(index + 2)});
    }
}

}  // namespace sluice::inference
