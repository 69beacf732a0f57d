#pragma once
// The NCCL communicator: one NCCL communicator over every GPU of every node, one rank per GPU.
// A process drives all GPUs of its node (one Communicator per GPU, each used by that GPU's
// worker thread); nodes find each other through the TCP bootstrap on node 0 (the root_address),
// which hands out NCCL's unique id and numbers the ranks node by node: node 0's GPUs are ranks
// 0 .. g0-1, node 1's the next, and so on.
//
// Buffers are device memory of the rank's GPU. Operations are enqueued on the rank's stream
// (stream()) and return without waiting; barrier() waits for the stream. A rank's compute should
// run on the same stream (or order itself with events) so that a collective sees its inputs.
//
// split() is ncclCommSplit (NCCL 2.18 or later; kNotSupported before): the sub-group's
// communicator enqueues on its parent's stream, fails with the whole group, and is destroyed
// with it (the handle; the object before its parent).
//
// Failure: abort() on any rank, of any node, or the loss of a node's control connection aborts
// every NCCL communicator of every node (ncclCommAbort) and makes every later call, and a
// barrier() in progress, return kAborted with the first reason (communicator.h). An error NCCL
// reports asynchronously (a peer gone mid-collective) is found by barrier() and aborts the group.
//
// Errors: kNotSupported in a build without NCCL; kUnavailable when a requested GPU is not visible;
// kInvalidArgument for bad options; the bootstrap's errors (detail/tcp_bootstrap.h); kInternal
// with NCCL's message when NCCL fails.
//
// Thread safety: see communicator.h.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "inference/communicator.h"
#include "inference/step_relay.h"

namespace sluice::inference {

struct NcclGroupOptions {
    std::vector<int> devices;  // this node's GPUs, one rank each; empty: every visible GPU
    std::string root_address;  // node 0's bootstrap listener "host:port"; unused with one node
    int node = 0;
    int n_nodes = 1;
    std::chrono::milliseconds timeout{60'000};  // for the whole group to join
};

class NcclCommunicator : public Communicator {
public:
    virtual int device() const = 0;
    // The cudaStream_t the rank's operations are enqueued on (void* keeps CUDA out of this
    // header).
    virtual void* stream() const = 0;
    // This node's control channel to the other nodes (the bootstrap's connections), shared by
    // every communicator of the node: the step relay of an engine spanning nodes carries node 0's
    // calls on it (step_relay.h), and its abort is the group's. It keeps the group alive.
    virtual std::shared_ptr<StepChannel> step_channel() const = 0;
};

// Joins the group; returns this node's communicators in the order of options.devices.
Result<std::vector<std::unique_ptr<NcclCommunicator>>> open_nccl_communicators(
    const NcclGroupOptions& options);

}  // namespace sluice::inference
