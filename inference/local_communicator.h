#pragma once
// LocalCommunicator: the Communicator (communicator.h) of ranks that are threads of one process.
// Buffers are host memory; a collective copies straight from the other ranks' buffers, so
// nothing is staged through a transport.
//
// How a collective runs. Every rank posts its arguments into the group and waits until all
// have posted (the entry rendezvous). Each rank then computes its own result reading the other
// ranks' posted buffers, and waits until all are done (the exit rendezvous) before returning,
// so no rank changes or frees a buffer another may still read. The entry rendezvous of the next
// call is what lets a rank reuse its scratch.
//
// Determinism. Reductions widen to fp32 and add (or take the max) in rank order 0, 1, ..., and
// every rank reads the same fp32 sums, so all ranks hold bit-identical results; a run is
// reproducible whatever the thread timing.
//
// Arguments that disagree between ranks (count, element type, operation, root, or all-to-all
// counts that do not pair up) are kInvalidArgument on every rank, since each rank checks all
// posts after the entry rendezvous.
//
// split() makes the sub-groups in the same two rendezvous: the first member of each makes the
// new group, the others take it after the exit rendezvous. A group and every group split from
// it, directly or not, form a family that fails together.
//
// abort(reason) wakes every rank of the family waiting at an entry rendezvous with kAborted
// naming the rank (its rank in the original group) and its reason; later calls fail the same
// way. A rank already past the entry rendezvous
// finishes the copy it is doing (it needs no other rank for that) so no buffer is read after
// its owner returned.
//
// Thread safety: see communicator.h. The group is shared by its communicators and lives as long
// as any of them.

#include <memory>
#include <vector>

#include "common/result.h"
#include "inference/communicator.h"

namespace sluice::inference {

// One communicator per rank, index = rank, joined in one group. kInvalidArgument when
// n_ranks < 1.
Result<std::vector<std::unique_ptr<Communicator>>> create_local_communicators(int n_ranks);

}  // namespace sluice::inference
