#pragma once
// TcpCommunicator: the Communicator (communicator.h) of CPU ranks in several processes — the CPU
// backend's ranks when an engine spans nodes (parallel.nodes). Buffers are host memory, as with
// the local communicator; every pair of ranks of the group, on one node or two, is joined by one
// TCP connection, and a collective exchanges the bytes it needs over them.
//
// Joining. Each node listens for its ranks' connections on the host of its own entry in
// `nodes` (node k: nodes[k]'s host) at a port the system picks, and says where in the bootstrap
// hello (detail/tcp_bootstrap.h: BootstrapOptions::contact); node 0's bootstrap (nodes[0])
// hands every node every contact. Then rank b connects to every rank a < b at a's node and
// names both ranks; when every rank of the node holds a connection to every other rank of the
// group, the communicators are made. Ranks are numbered node by node: node k holds ranks
// k x R .. (k + 1) x R - 1 (R = local_ranks, the same on every node).
//
// Semantics are the local communicator's (local_communicator.h), so the CPU backend's plans run
// on either unchanged:
//   - reductions widen to fp32 and combine in rank order 0, 1, ..., so every rank holds
//     bit-identical results;
//   - arguments that disagree between ranks (count, dtype, op, root, all-to-all counts that do
//     not pair up) are kInvalidArgument on every rank — each collective first exchanges a small
//     header of its arguments;
//   - split() numbers sub-group members by (key, rank); sub-groups reuse the parent's
//     connections (collectives run in the same order on every rank, and a connection carries
//     one collective's bytes at a time), and fail with it.
// Sends and receives of one collective make progress together (non-blocking sockets, poll), so
// no pair of ranks deadlocks with both sides' socket buffers full.
//
// Failure. abort(reason) on any rank aborts the whole group through the bootstrap's control
// channel (StepChannel::abort), and the channel's abort — from any node, or a node whose process
// died — wakes every rank of this node waiting in a collective: they and every later call return
// kAborted with the first reason. A peer connection that closes mid-collective aborts the group
// naming that rank.
//
// Errors: the bootstrap's (deadline, refused, bad address); kInvalidArgument for bad options;
// kIoError when a socket fails.
//
// Thread safety: as communicator.h — one communicator per rank, used by that rank's thread;
// abort() from any thread.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "inference/communicator.h"
#include "inference/step_relay.h"

namespace sluice::inference {

struct TcpGroupOptions {
    std::vector<std::string> nodes;  // "host:port" of every node (parallel.nodes), at least one
    int node = 0;                    // this process's index in `nodes`
    int local_ranks = 1;             // ranks every node brings
    std::chrono::milliseconds timeout{60'000};  // for every node to join and connect
};

struct TcpGroup {
    std::vector<std::unique_ptr<Communicator>> comms;  // this node's ranks, in rank order
    std::shared_ptr<StepChannel> channel;  // the group's control channel (node 0 relays steps)
};

// Joins the group; the communicators' rank() is the global rank, size() the world size.
Result<TcpGroup> open_tcp_communicators(const TcpGroupOptions& options);

}  // namespace sluice::inference
