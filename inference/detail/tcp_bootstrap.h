#pragma once
// The TCP bootstrap that joins the processes (nodes) of one parallel engine before NCCL can: the
// root node (node 0) listens on the configured address and port, every other node connects to it,
// and once all have said hello the root tells each node its first rank and the world size and
// hands every node the same opaque payload (NCCL's unique id) and every node's contact (where a
// node's own listeners are, e.g. the TCP communicator's; opaque here, and may be empty).
//
// The connections then stay open as a control channel, so that a failure on one node stops all of
// them: a node that aborts sends its reason to the root, which relays it to every node; a node
// whose process dies closes its socket, and the root (or, when the root dies, every other node)
// aborts with "node N is gone". Every node's on_abort callback runs once, on the session's
// watcher thread, with the first reason it learns.
//
// The session is also the engine's StepChannel (step_relay.h): the root sends each relayed call
// to every other node, whose watcher thread queues it for next_step(). After the hello, messages
// may be up to 64 MiB (a relayed step of long prompts); the hello and welcome stay under 1 MiB.
//
// Wire format: every message is a 4-byte big-endian length and that many bytes.
//   hello  (node → root):  "SLUICE-BOOTSTRAP/2" node n_nodes local_ranks   (text, space-separated),
//                          then a message holding the node's contact (any bytes, may be empty)
//   welcome (root → node): "WELCOME" rank_offset world_size, then a message holding the payload,
//                          then n_nodes messages holding the contacts of nodes 0, 1, ...
//   refuse (root → node):  "REFUSE" reason — a duplicate node index or disagreeing n_nodes
//   abort  (both ways):    "ABORT" reason
//   bye    (both ways):    "BYE" — an orderly close, not a failure
//   step   (root → node):  "STEP " and one encoded call (binary, step_relay.h)
//
// Errors: kInvalidArgument for bad options (address not host:port, node outside [0, n_nodes),
// no local ranks); kDeadlineExceeded when the group is not complete within the timeout; kIoError
// when the address cannot be bound or resolved; kFailedPrecondition when the root refuses.
//
// Thread safety: a session's methods may be called from any thread.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "inference/step_relay.h"

namespace sluice::inference::detail {

struct BootstrapOptions {
    std::string root_address;  // "host:port" of node 0's listener; node 0 binds it
    int node = 0;
    int n_nodes = 1;
    int local_ranks = 1;  // ranks this node brings (its GPUs)
    std::chrono::milliseconds timeout{60'000};
    std::string contact;  // handed to every node as contacts()[node]; opaque, may be empty
};

class BootstrapSession : public StepChannel {
public:
    ~BootstrapSession() override = default;

    virtual int rank_offset() const = 0;  // this node's first global rank
    virtual int world_size() const = 0;   // ranks of all nodes
    virtual const std::string& payload() const = 0;
    // Every node's BootstrapOptions::contact, index = node.
    virtual const std::vector<std::string>& contacts() const = 0;

    // Runs `callback(reason)` once when the group aborts (immediately if it already has).
    virtual void on_abort(std::function<void(const std::string&)> callback) = 0;
    // Aborts the whole group with `reason` (sent as "node N: reason"); the first reason wins.
    void abort(const std::string& reason) override = 0;
    // The reason, or empty while the group is healthy.
    std::string abort_reason() const override = 0;
};

// Joins the group; `payload` is what the root hands out (ignored on other nodes). Blocks until
// the group is complete, the timeout passes, or the root refuses this node.
Result<std::unique_ptr<BootstrapSession>> join_bootstrap(const BootstrapOptions& options,
                                                         const std::string& payload);

}  // namespace sluice::inference::detail
