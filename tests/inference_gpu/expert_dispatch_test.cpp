// Parity of the expert plan's dispatch kernels (cuda/expert_dispatch.cuh) with their CPU
// references (cpu/expert_dispatch.h, expert_exchange.h): bit-identical, since they only move
// values; with experts that receive no slots, and with nothing to move.
#include "inference/cpu/expert_dispatch.h"

#include <doctest/doctest.h>

#include <random>

#include "gpu_test_support.h"
#include "inference/cuda/expert_dispatch.cuh"
#include "inference/expert_exchange.h"

namespace sluice::inference {
namespace {

using testing::DeviceVec;
using testing::random_floats;

// Offsets of `n_slots` slots over `n_expert` experts, every other expert left empty.
std::vector<int32_t> sparse_offsets(int64_t n_expert, int64_t n_slots, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> counts(static_cast<size_t>(n_expert), 0);
    for (int64_t s = 0; s < n_slots; ++s) {
        const auto e = static_cast<size_t>(2 * (rng() % static_cast<uint32_t>(n_expert / 2)));
        ++counts[e];
    }
    std::vector<int32_t> offsets(static_cast<size_t>(n_expert + 1), 0);
    for (size_t e = 0; e < counts.size(); ++e) {
        offsets[e + 1] = offsets[e] + counts[e];
    }
    return offsets;
}

}  // namespace

TEST_CASE("cuda expert dispatch kernels equal their cpu references") {
    const int64_t n_expert = 16;
    const int64_t n_slots = 45;
    const int64_t d = 300;  // more than a block's threads
    const auto offsets = sparse_offsets(n_expert, n_slots, 7);
    const auto x = random_floats(static_cast<size_t>(n_slots * d), 8);
    DeviceVec<int32_t> doffsets(offsets);
    DeviceVec<float> dx(x);

    for (const int n_groups : {1, 2, 3, 4, 16}) {
        DeviceVec<float> rows(static_cast<size_t>(n_groups));
        REQUIRE(
            cuda::rows_per_group(doffsets.get(), n_expert, n_slots, n_groups, rows.get(), nullptr)
                .ok());
        INFO(n_groups << " groups");
        CHECK(rows.host() == rows_per_group(offsets, n_expert, n_groups));
        // A rank without tokens: offsets are not read, every count is zero.
        REQUIRE(
            cuda::rows_per_group(doffsets.get(), n_expert, 0, n_groups, rows.get(), nullptr).ok());
        CHECK(rows.host() == std::vector<float>(static_cast<size_t>(n_groups), 0.0f));
    }

    std::vector<float> ref_send(static_cast<size_t>(n_slots * (d + 1)));
    cpu::pack_dispatch_rows(x.data(), offsets.data(), n_expert, n_slots, d, ref_send.data());
    DeviceVec<float> send(ref_send.size());
    REQUIRE(cuda::pack_dispatch_rows(dx.get(), doffsets.get(), n_expert, n_slots, d, send.get(),
                                     nullptr)
                .ok());
    CHECK(send.host() == ref_send);

    const int64_t expert_begin = 4;
    std::vector<float> ref_x(static_cast<size_t>(n_slots * d));
    std::vector<int32_t> ref_local(static_cast<size_t>(n_slots));
    cpu::unpack_dispatch_rows(ref_send.data(), n_slots, d, expert_begin, ref_x.data(),
                              ref_local.data());
    DeviceVec<float> unpacked(ref_x.size());
    DeviceVec<int32_t> local(ref_local.size());
    REQUIRE(cuda::unpack_dispatch_rows(send.get(), n_slots, d, expert_begin, unpacked.get(),
                                       local.get(), nullptr)
                .ok());
    CHECK(unpacked.host() == ref_x);
    CHECK(unpacked.host() == x);
    CHECK(local.host() == ref_local);

    std::vector<int32_t> index(static_cast<size_t>(n_slots));
    for (int64_t i = 0; i < n_slots; ++i) {
        index[static_cast<size_t>(i)] = static_cast<int32_t>((i * 17) % n_slots);
    }
    std::vector<float> ref_gathered(static_cast<size_t>(n_slots * d));
    cpu::gather_rows(x.data(), index.data(), n_slots, d, ref_gathered.data());
    DeviceVec<int32_t> dindex(index);
    DeviceVec<float> gathered(ref_gathered.size());
    REQUIRE(cuda::gather_rows(dx.get(), dindex.get(), n_slots, d, gathered.get(), nullptr).ok());
    CHECK(gathered.host() == ref_gathered);

    // Nothing to move launches nothing and succeeds.
    CHECK(cuda::pack_dispatch_rows(dx.get(), doffsets.get(), n_expert, 0, d, send.get(), nullptr)
              .ok());
    CHECK(
        cuda::unpack_dispatch_rows(send.get(), 0, d, 0, unpacked.get(), local.get(), nullptr).ok());
    CHECK(cuda::gather_rows(dx.get(), dindex.get(), 0, d, gathered.get(), nullptr).ok());
    CHECK(!cuda::rows_per_group(doffsets.get(), n_expert, n_slots, 17, send.get(), nullptr).ok());
}

}  // namespace sluice::inference
