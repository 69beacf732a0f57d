#pragma once
// For tests that run the nodes of a multi-node engine as threads (or a child process) of one
// test process, joined by the TCP bootstrap on loopback.

#include <doctest/doctest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "inference/detail/tcp_bootstrap.h"

namespace sluice::inference::testing {

// A loopback port that was free a moment ago.
inline int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    socklen_t len = sizeof(addr);
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    ::close(fd);
    return ntohs(addr.sin_port);
}

inline detail::BootstrapOptions node_options(int port, int node, int n_nodes, int local_ranks) {
    detail::BootstrapOptions options;
    options.root_address = "127.0.0.1:" + std::to_string(port);
    options.node = node;
    options.n_nodes = n_nodes;
    options.local_ranks = local_ranks;
    options.timeout = std::chrono::milliseconds(10'000);
    return options;
}

}  // namespace sluice::inference::testing
