// The NCCL communicator on the GPUs this machine has: every operation with one rank per GPU (one
// rank on a single-GPU machine), results checked against the host arithmetic, an abort that
// frees every rank, and split into sub-groups as a tensor x expert grid makes its rows and
// columns. Multi-node runs need several machines and are not run here.
#include "inference/nccl_communicator.h"

#include <future>

#include "gpu_test_support.h"

namespace sluice::inference {

namespace {

using testing::DeviceVec;

// Runs `body(rank's communicator)` on one thread per rank and waits for all.
template <typename Body>
void on_every_rank(std::vector<std::unique_ptr<NcclCommunicator>>& comms, Body body) {
    std::vector<std::future<void>> done;
    for (auto& comm : comms) {
        NcclCommunicator* c = comm.get();
        done.push_back(std::async(std::launch::async, [c, &body] {
            REQUIRE(cudaSetDevice(c->device()) == cudaSuccess);
            body(*c);
        }));
    }
    for (auto& d : done) {
        d.get();
    }
}

}  // namespace

TEST_CASE("nccl: every collective on one rank per visible GPU") {
#if !SLUICE_HAVE_NCCL
    CHECK(open_nccl_communicators({}).status().code() == StatusCode::kNotSupported);
    return;
#endif
    auto opened = open_nccl_communicators({});
    REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
    std::vector<std::unique_ptr<NcclCommunicator>> comms = std::move(*opened);
    const int n = static_cast<int>(comms.size());
    MESSAGE("nccl ranks: " << n);
    constexpr int64_t kCount = 1000;

    on_every_rank(comms, [&](NcclCommunicator& c) {
        const int r = c.rank();
        CHECK(c.size() == n);
        CHECK(c.name() == "nccl");
        auto value = [](int rank, int64_t i) { return static_cast<float>(rank * 1000 + i) * 0.5f; };

        std::vector<float> mine(kCount);
        for (int64_t i = 0; i < kCount; ++i) {
            mine[static_cast<size_t>(i)] = value(r, i);
        }
        // all_reduce (sum and max)
        DeviceVec<float> sum(mine);
        REQUIRE(c.all_reduce(sum.get(), kCount, DType::kF32, ReduceOp::kSum).ok());
        DeviceVec<float> max(mine);
        REQUIRE(c.all_reduce(max.get(), kCount, DType::kF32, ReduceOp::kMax).ok());
        REQUIRE(c.barrier().ok());
        const std::vector<float> sum_host = sum.host();
        const std::vector<float> max_host = max.host();
        for (int64_t i = 0; i < kCount; i += 97) {
            float expected = 0;
            for (int q = 0; q < n; ++q) {
                expected += value(q, i);
            }
            CHECK(sum_host[static_cast<size_t>(i)] == doctest::Approx(expected));
            CHECK(max_host[static_cast<size_t>(i)] == value(n - 1, i));
        }

        // all_gather
        DeviceVec<float> send(mine);
        DeviceVec<float> gathered(static_cast<size_t>(n * kCount));
        REQUIRE(c.all_gather(send.get(), gathered.get(), kCount, DType::kF32).ok());
        REQUIRE(c.barrier().ok());
        const std::vector<float> gathered_host = gathered.host();
        for (int q = 0; q < n; ++q) {
            CHECK(gathered_host[static_cast<size_t>(q * kCount + 7)] == value(q, 7));
        }

        // reduce_scatter: block b of every rank's send, summed, lands on rank b.
        std::vector<float> blocks(static_cast<size_t>(n * kCount));
        for (size_t i = 0; i < blocks.size(); ++i) {
            blocks[i] = static_cast<float>(r + 1) * static_cast<float>(i % 13);
        }
        DeviceVec<float> to_scatter(blocks);
        DeviceVec<float> scattered(static_cast<size_t>(kCount));
        REQUIRE(c.reduce_scatter(to_scatter.get(), scattered.get(), kCount, DType::kF32,
                                 ReduceOp::kSum)
                    .ok());
        REQUIRE(c.barrier().ok());
        const float ranks_sum = static_cast<float>(n * (n + 1) / 2);
        const size_t at = static_cast<size_t>(r * kCount + 5);
        CHECK(scattered.host()[5] == doctest::Approx(ranks_sum * static_cast<float>(at % 13)));

        // all_to_all with uneven counts: rank r sends q + 1 elements valued r * 100 + q to q.
        std::vector<int64_t> send_counts(static_cast<size_t>(n));
        std::vector<int64_t> recv_counts(static_cast<size_t>(n));
        std::vector<float> outgoing;
        for (int q = 0; q < n; ++q) {
            send_counts[static_cast<size_t>(q)] = q + 1;
            recv_counts[static_cast<size_t>(q)] = r + 1;
            outgoing.insert(outgoing.end(), static_cast<size_t>(q + 1),
                            static_cast<float>(r * 100 + q));
        }
        DeviceVec<float> a2a_send(outgoing);
        DeviceVec<float> a2a_recv(static_cast<size_t>(n * (r + 1)));
        REQUIRE(c.all_to_all(a2a_send.get(), send_counts, a2a_recv.get(), recv_counts,
                             DType::kF32)
                    .ok());
        REQUIRE(c.barrier().ok());
        const std::vector<float> received = a2a_recv.host();
        for (int q = 0; q < n; ++q) {
            CHECK(received[static_cast<size_t>(q * (r + 1))] == static_cast<float>(q * 100 + r));
        }

        // broadcast from the last rank, in bf16 (moved, not reduced)
        std::vector<uint16_t> words(64, static_cast<uint16_t>(r));
        DeviceVec<uint16_t> cast(words);
        REQUIRE(c.broadcast(cast.get(), 64, DType::kBF16, n - 1).ok());
        REQUIRE(c.barrier().ok());
        CHECK(cast.host()[63] == static_cast<uint16_t>(n - 1));

        // bad input is refused before NCCL sees it
        CHECK(c.broadcast(cast.get(), 64, DType::kBF16, n).code() == StatusCode::kInvalidArgument);
        CHECK(c.all_reduce(cast.get(), -1, DType::kF32, ReduceOp::kSum).code() ==
              StatusCode::kInvalidArgument);
        CHECK(c.all_reduce(cast.get(), 8, DType::kI8, ReduceOp::kSum).code() ==
              StatusCode::kInvalidArgument);
    });
}

TEST_CASE("nccl: an abort fails every rank's later calls with the reason") {
#if !SLUICE_HAVE_NCCL
    return;
#endif
    auto opened = open_nccl_communicators({});
    REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
    std::vector<std::unique_ptr<NcclCommunicator>> comms = std::move(*opened);
    comms.back()->abort("out of memory in the test");
    on_every_rank(comms, [](NcclCommunicator& c) {
        DeviceVec<float> data(std::vector<float>(16, 1.0f));
        const Status status = c.all_reduce(data.get(), 16, DType::kF32, ReduceOp::kSum);
        CHECK(status.code() == StatusCode::kAborted);
        CHECK(status.message().find("out of memory in the test") != std::string::npos);
        CHECK(c.barrier().code() == StatusCode::kAborted);
    });
}

TEST_CASE("nccl: split makes sub-groups that work and fail with the group") {
#if !SLUICE_HAVE_NCCL
    return;
#endif
    auto opened = open_nccl_communicators({});
    REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
    std::vector<std::unique_ptr<NcclCommunicator>> comms = std::move(*opened);
    const int n = static_cast<int>(comms.size());
    std::vector<std::unique_ptr<Communicator>> alone(comms.size());
    std::vector<std::unique_ptr<Communicator>> reversed(comms.size());
    on_every_rank(comms, [&](NcclCommunicator& c) {
        const int r = c.rank();
        // Every rank alone (a grid's rows with one rank each), then all ranks in reverse order.
        auto own = c.split(r, 0);
        REQUIRE_MESSAGE(own.ok(), own.status().to_string());
        CHECK((*own)->size() == 1);
        CHECK((*own)->rank() == 0);
        auto all = c.split(0, n - 1 - r);
        REQUIRE_MESSAGE(all.ok(), all.status().to_string());
        CHECK((*all)->size() == n);
        CHECK((*all)->rank() == n - 1 - r);

        DeviceVec<float> mine(std::vector<float>(4, static_cast<float>(r + 1)));
        REQUIRE((*own)->all_reduce(mine.get(), 4, DType::kF32, ReduceOp::kSum).ok());
        REQUIRE((*own)->barrier().ok());
        CHECK(mine.host()[3] == static_cast<float>(r + 1));
        DeviceVec<float> one(std::vector<float>(1, static_cast<float>(r)));
        DeviceVec<float> gathered(static_cast<size_t>(n));
        REQUIRE((*all)->all_gather(one.get(), gathered.get(), 1, DType::kF32).ok());
        REQUIRE((*all)->barrier().ok());
        CHECK(gathered.host()[0] == static_cast<float>(n - 1));  // the last rank comes first
        alone[static_cast<size_t>(r)] = std::move(*own);
        reversed[static_cast<size_t>(r)] = std::move(*all);
    });
    // An abort through a sub-group fails the group it came from and its other sub-groups.
    alone.back()->abort("expert group lost");
    on_every_rank(comms, [&](NcclCommunicator& c) {
        DeviceVec<float> data(std::vector<float>(16, 1.0f));
        for (Communicator* group : {static_cast<Communicator*>(&c),
                                    reversed[static_cast<size_t>(c.rank())].get()}) {
            const Status status = group->all_reduce(data.get(), 16, DType::kF32, ReduceOp::kSum);
            CHECK(status.code() == StatusCode::kAborted);
            CHECK(status.message().find("expert group lost") != std::string::npos);
        }
    });
    alone.clear();  // sub-groups before the group they came from
    reversed.clear();
}

}  // namespace sluice::inference
