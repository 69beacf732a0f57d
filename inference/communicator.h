#pragma once
// Communicator: the collective operations that join the ranks of one parallel engine (tensor and
// expert parallelism, see DESIGN.md). Two implementations share this contract:
//   - local (local_communicator.h): ranks are threads of one process exchanging host memory;
//     the CPU backend's parallel plans and every test on a machine without GPUs use it;
//   - nccl (nccl_communicator.h): ranks are GPUs, of this process and of other nodes, joined by
//     one NCCL communicator; buffers are device memory and calls are enqueued on the rank's stream.
//
// Every operation is collective: all ranks of the group call it, in the same order, with the same
// count, element type, operation and root. Buffers live where the implementation works (host for
// local, device for nccl); `send` and `recv` may not overlap unless the call says in place.
// Element counts are per rank unless a comment says otherwise.
//
// Failure. A rank that cannot go on calls abort(reason); every rank's pending and later calls then
// return kAborted with a message naming the rank that aborted and its reason, so that a failure on
// one rank stops all of them with the same clear error instead of leaving them waiting forever.
// Groups made by split() share that fate with the group they came from: an abort on any of them
// fails all of them, since a rank waiting in a sub-group would otherwise never learn that a rank
// of another sub-group has stopped.
//
// Errors: kInvalidArgument for a negative count, a root or count list that does not fit the
// group, or an element type the operation does not support (reductions: kF32, kBF16, kF16);
// kAborted once the group is aborted; kInternal for a failure of the transport.
//
// Thread safety: one Communicator object per rank, used by that rank's thread only; abort() may be
// called from any thread.

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "common/result.h"
#include "inference/dtype.h"

namespace sluice::inference {

enum class ReduceOp { kSum, kMax };

class Communicator {
public:
    virtual ~Communicator() = default;

    virtual std::string name() const = 0;  // "local", "nccl"
    virtual int rank() const = 0;
    virtual int size() const = 0;

    // In place: `data` [count] becomes the element-wise reduction over all ranks.
    virtual Status all_reduce(void* data, int64_t count, DType dtype, ReduceOp op) = 0;

    // `send` [count] from every rank; `recv` [size() * count] holds rank r's at r * count.
    virtual Status all_gather(const void* send, void* recv, int64_t count, DType dtype) = 0;

    // `send` [size() * count] on every rank; `recv` [count] on rank r is the reduction of every
    // rank's block r (send + r * count).
    virtual Status reduce_scatter(const void* send, void* recv, int64_t count, DType dtype,
                                  ReduceOp op) = 0;

    // Variable-size all-to-all (expert parallelism's token dispatch and combine): this rank sends
    // send_counts[r] elements to rank r, laid out back to back in `send` in rank order, and
    // receives recv_counts[r] elements from rank r, back to back in `recv` in rank order. Both
    // spans have size() entries; recv_counts must equal what the senders send (exchange the
    // counts first, e.g. with all_gather).
    virtual Status all_to_all(const void* send, std::span<const int64_t> send_counts, void* recv,
                              std::span<const int64_t> recv_counts, DType dtype) = 0;

    // In place: `data` [count] on every rank becomes rank `root`'s.
    virtual Status broadcast(void* data, int64_t count, DType dtype, int root) = 0;

    // Returns when every rank has called it (and, for nccl, the work enqueued before it is done).
    virtual Status barrier() = 0;

    // Collective: splits the group into sub-groups, one per distinct `color`, as MPI_Comm_split
    // and ncclCommSplit do; the ranks of a sub-group are numbered by ascending `key`, ties by
    // their rank here. Returns this rank's communicator of its sub-group (rank and size are the
    // sub-group's). A tensor x expert grid uses it for its rows and columns (docs/parallel.md).
    // The sub-group may borrow from this communicator (nccl: the stream), so destroy it first.
    // kInvalidArgument for a negative color: that rank still takes part, so no rank is left
    // waiting, and is in no sub-group.
    virtual Result<std::unique_ptr<Communicator>> split(int color, int key) = 0;

    // Fails the group; see the file comment. Idempotent: the first reason is kept.
    virtual void abort(const std::string& reason) = 0;
};

}  // namespace sluice::inference
