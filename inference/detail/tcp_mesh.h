#pragma once
// The connections of the TCP communicator (tcp_communicator.h): joins the bootstrap with this
// node's rank listener as its contact, then connects every pair of global ranks once. Rank b
// connects to every rank a < b at a's node and sends a hello naming (a, b); each node accepts
// the connections of its ranks and files them by the hello. Every socket is non-blocking, with
// TCP_NODELAY, when the mesh is returned.
//
// Errors: kInvalidArgument for bad options; the bootstrap's errors; kDeadlineExceeded when the
// mesh is not complete within the options' timeout; kIoError when a socket fails; kAborted when
// the group aborts while joining. A node that fails after the bootstrap aborts the group, so the
// other nodes stop waiting for it.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "inference/detail/sockets.h"
#include "inference/detail/tcp_bootstrap.h"
#include "inference/tcp_communicator.h"

namespace sluice::inference::detail {

struct TcpMesh {
    std::shared_ptr<BootstrapSession> session;
    int rank_offset = 0;  // this node's first global rank
    int world_size = 0;
    // [local rank][global peer rank]: this end of the connection; empty for the rank itself.
    std::vector<std::vector<Fd>> connections;
};

Result<TcpMesh> join_tcp_mesh(const TcpGroupOptions& options);

// This host's byte order, as a node announces it: "little-endian" or "big-endian".
std::string host_byte_order();
// A node's contact in the bootstrap: its rank listener and its byte order, "host:port order".
std::string format_mesh_contact(const std::string& host, int port);
// The rank listeners of the nodes' contacts (node order). kFailedPrecondition naming both nodes
// when a node's byte order is not this host's (`self` is this node's index, for the message);
// kInvalidArgument for a contact that is not "host:port order".
Result<std::vector<HostPort>> parse_mesh_contacts(const std::vector<std::string>& contacts,
                                                  int self);

}  // namespace sluice::inference::detail
