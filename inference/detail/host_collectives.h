#pragma once
// What the communicators of host-memory ranks share (local_communicator.h, tcp_communicator.h):
// the collectives' names, the checks of one rank's arguments and of every rank's agreement, with
// the same messages, and the element conversions of a reduction — widened to fp32 and combined
// in rank order by both, so the two give bit-identical results.
//
// Thread safety: pure functions.

#include <cstdint>
#include <span>

#include "common/status.h"
#include "inference/communicator.h"
#include "inference/dtype.h"

namespace sluice::inference::detail {

// Values fixed: the TCP communicator sends them.
enum class CollectiveOp : int64_t {
    kAllReduce = 1,
    kAllGather,
    kReduceScatter,
    kAllToAll,
    kBroadcast,
    kBarrier,
    kSplit
};

const char* collective_op_name(CollectiveOp op);

// F32, BF16 and F16 are reduced; other types only move.
bool reducible(DType dtype);
// Element i of `data` widened to fp32, and stored back in the element type.
float load_element(DType dtype, const void* data, int64_t i);
void store_element(DType dtype, void* data, int64_t i, float value);
float combine(ReduceOp op, float a, float b);

// One rank's arguments: kInvalidArgument naming the collective for a negative count, a type that
// cannot be reduced, or all-to-all count lists without one entry per rank.
Status check_count(CollectiveOp op, int64_t count);
Status check_reduction(CollectiveOp op, int64_t count, DType dtype);
Status check_count_lists(std::span<const int64_t> send_counts, std::span<const int64_t> recv_counts,
                         int size);

// What a rank called, as every rank sees it.
struct CollectiveCall {
    CollectiveOp op = CollectiveOp::kBarrier;
    int64_t count = 0;
    DType dtype = DType::kF32;
    ReduceOp reduce = ReduceOp::kSum;
    int root = 0;
    std::span<const int64_t> send_counts;  // all-to-all only
    std::span<const int64_t> recv_counts;
};

// Every rank checks every rank's call (calls[r]) the same way, so all reach the same verdict:
// kInvalidArgument when a rank called another collective or other arguments, or all-to-all
// counts that do not pair up.
Status check_agreement(int rank, const CollectiveCall& mine, std::span<const CollectiveCall> calls);

}  // namespace sluice::inference::detail
