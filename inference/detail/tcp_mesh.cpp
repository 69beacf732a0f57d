#include "inference/detail/tcp_mesh.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <thread>

#include "common/log.h"

namespace sluice::inference::detail {

namespace {

using Clock = std::chrono::steady_clock;

Status io_error(const std::string& what) {
    return Status(StatusCode::kIoError, "tcp communicator: " + what + ": " + std::strerror(errno));
}

std::string format_host_port(const std::string& host, int port) {
    const bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Result<bool> wait_for(int fd, short events, Clock::time_point deadline) {
    return detail::wait_for(fd, events, deadline, "tcp communicator");
}

void set_nodelay(int fd) {
    // A collective's headers are small and every rank waits on them.
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// Listens on `host` at a port the system picks; returns the socket and the port.
Result<std::pair<Fd, int>> listen_any_port(const std::string& host) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    addrinfo* found = nullptr;
    const int rc = ::getaddrinfo(host.c_str(), "0", &hints, &found);
    if (rc != 0) {
        return Status(StatusCode::kIoError,
                      "tcp communicator: cannot resolve `" + host + "`: " + ::gai_strerror(rc));
    }
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, ::freeaddrinfo);
    Status last(StatusCode::kIoError, "tcp communicator: no address for " + host);
    for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
        Fd fd(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
        if (fd.get() < 0) {
            last = io_error("socket");
            continue;
        }
        if (::bind(fd.get(), a->ai_addr, a->ai_addrlen) != 0) {
            last = io_error("bind " + host);
            continue;
        }
        if (::listen(fd.get(), SOMAXCONN) != 0) {
            last = io_error("listen");
            continue;
        }
        sockaddr_storage bound{};
        socklen_t length = sizeof(bound);
        if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &length) != 0) {
            last = io_error("getsockname");
            continue;
        }
        const int port = bound.ss_family == AF_INET6
                             ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                             : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
        return std::make_pair(std::move(fd), port);
    }
    return last;
}

// One non-blocking connect attempt to every address of `where`, each bounded by the deadline.
Result<Fd> connect_once(const HostPort& where, Clock::time_point deadline, std::string* error) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const int rc = ::getaddrinfo(where.host.c_str(), where.port.c_str(), &hints, &found);
    if (rc != 0) {
        *error = std::string("cannot resolve: ") + ::gai_strerror(rc);
        return Fd();
    }
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, ::freeaddrinfo);
    for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
        Fd fd(
            ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol));
        if (fd.get() < 0) {
            return io_error("socket");
        }
        if (::connect(fd.get(), a->ai_addr, a->ai_addrlen) == 0) {
            return fd;
        }
        if (errno != EINPROGRESS) {
            *error = std::strerror(errno);
            continue;
        }
        SLUICE_ASSIGN_OR_RETURN(const bool done, wait_for(fd.get(), POLLOUT, deadline));
        int so_error = ETIMEDOUT;
        socklen_t length = sizeof(so_error);
        if (done) {
            ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &so_error, &length);
        }
        if (so_error == 0) {
            return fd;
        }
        *error = std::strerror(so_error);
    }
    return Fd();
}

// Writes or reads exactly `size` bytes on a non-blocking socket before the deadline.
Status transfer_all(int fd, char* data, size_t size, bool writing, Clock::time_point deadline) {
    while (size > 0) {
        const ssize_t n =
            writing ? ::send(fd, data, size, MSG_NOSIGNAL) : ::recv(fd, data, size, 0);
        if (n > 0) {
            data += n;
            size -= static_cast<size_t>(n);
            continue;
        }
        if (n == 0) {
            return Status(StatusCode::kIoError, "tcp communicator: connection closed");
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            return io_error(writing ? "send" : "recv");
        }
        SLUICE_ASSIGN_OR_RETURN(const bool ready,
                                wait_for(fd, writing ? POLLOUT : POLLIN, deadline));
        if (!ready) {
            return Status(StatusCode::kDeadlineExceeded, "tcp communicator: timed out");
        }
    }
    return Status::ok_status();
}

// The first bytes on a rank connection: the group's size, the accepting rank `a` and the
// connecting rank `b` (host byte order: the nodes of one engine share a byte order, as their
// payloads of floats do; parse_mesh_contacts checks it before any connection).
struct RankHello {
    static constexpr uint32_t kMagic = 0x534c5443;  // "SLTC"
    uint32_t magic = kMagic;
    int32_t world = 0;
    int32_t a = 0;
    int32_t b = 0;
};

Status check_options(const TcpGroupOptions& options) {
    if (options.nodes.empty()) {
        return invalid_argument("tcp communicator: no nodes, expected at least one host:port");
    }
    const int n_nodes = static_cast<int>(options.nodes.size());
    if (options.node < 0 || options.node >= n_nodes) {
        return invalid_argument("tcp communicator: node " + std::to_string(options.node) +
                                " outside [0, " + std::to_string(n_nodes) + ")");
    }
    if (options.local_ranks < 1) {
        return invalid_argument("tcp communicator: a node needs at least one rank, found " +
                                std::to_string(options.local_ranks));
    }
    for (const std::string& node : options.nodes) {
        SLUICE_RETURN_IF_ERROR(parse_host_port(node, "tcp communicator").status());
    }
    return Status::ok_status();
}

Status aborted(const BootstrapSession& session) {
    return Status(StatusCode::kAborted, session.abort_reason());
}

// Connects to a rank's node, retrying until the deadline: its listener is up before its contact
// is handed out, so a retry covers a slow or briefly unreachable network.
Result<Fd> connect_until(const HostPort& where, Clock::time_point deadline,
                         const BootstrapSession& session) {
    std::string last_error = "not tried";
    while (Clock::now() < deadline) {
        if (!session.abort_reason().empty()) {
            return aborted(session);
        }
        SLUICE_ASSIGN_OR_RETURN(
            Fd fd, connect_once(where, std::min(deadline, Clock::now() + std::chrono::seconds(1)),
                                &last_error));
        if (fd.get() >= 0) {
            return fd;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return Status(StatusCode::kDeadlineExceeded, "tcp communicator: could not reach " + where.host +
                                                     ":" + where.port + " (" + last_error + ")");
}

// Rank b of this node connects to every rank a < b and names both.
Status connect_down(const TcpGroupOptions& options, const std::vector<HostPort>& contacts,
                    Clock::time_point deadline, TcpMesh& mesh) {
    for (int local = 0; local < options.local_ranks; ++local) {
        const int b = mesh.rank_offset + local;
        for (int a = 0; a < b; ++a) {
            const HostPort& where = contacts[static_cast<size_t>(a / options.local_ranks)];
            SLUICE_ASSIGN_OR_RETURN(Fd fd, connect_until(where, deadline, *mesh.session));
            RankHello hello;
            hello.world = mesh.world_size;
            hello.a = a;
            hello.b = b;
            SLUICE_RETURN_IF_ERROR(transfer_all(fd.get(), reinterpret_cast<char*>(&hello),
                                                sizeof(hello), /*writing=*/true, deadline));
            mesh.connections[static_cast<size_t>(local)][static_cast<size_t>(a)] = std::move(fd);
        }
    }
    return Status::ok_status();
}

// Accepts the connections of every higher rank to this node's ranks and files them by hello.
// A connection whose hello is wrong (a stranger, or a rank of another group) is dropped.
Status accept_up(const TcpGroupOptions& options, const Fd& listener, Clock::time_point deadline,
                 TcpMesh& mesh) {
    int expected = 0;
    for (int local = 0; local < options.local_ranks; ++local) {
        expected += mesh.world_size - 1 - (mesh.rank_offset + local);
    }
    int accepted = 0;
    while (accepted < expected) {
        if (!mesh.session->abort_reason().empty()) {
            return aborted(*mesh.session);
        }
        if (Clock::now() >= deadline) {
            return Status(StatusCode::kDeadlineExceeded,
                          "tcp communicator: node " + std::to_string(options.node) + " accepted " +
                              std::to_string(accepted) + " of " + std::to_string(expected) +
                              " rank connections within " +
                              std::to_string(options.timeout.count()) + " ms");
        }
        // Wakes now and then to notice an abort of the group.
        SLUICE_ASSIGN_OR_RETURN(
            const bool ready,
            wait_for(listener.get(), POLLIN,
                     std::min(deadline, Clock::now() + std::chrono::milliseconds(100))));
        if (!ready) {
            continue;
        }
        Fd fd(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
        if (fd.get() < 0) {
            continue;
        }
        RankHello hello;
        const Status read = transfer_all(
            fd.get(), reinterpret_cast<char*>(&hello), sizeof(hello),
            /*writing=*/false, std::min(deadline, Clock::now() + std::chrono::seconds(5)));
        const int local = hello.a - mesh.rank_offset;
        const bool valid =
            read.ok() && hello.magic == RankHello::kMagic && hello.world == mesh.world_size &&
            local >= 0 && local < options.local_ranks && hello.b > hello.a &&
            hello.b < mesh.world_size &&
            mesh.connections[static_cast<size_t>(local)][static_cast<size_t>(hello.b)].get() < 0;
        if (!valid) {
            log::warn("inference", "tcp communicator: dropped a connection with a bad hello",
                      {{"node", options.node}});
            continue;
        }
        mesh.connections[static_cast<size_t>(local)][static_cast<size_t>(hello.b)] = std::move(fd);
        ++accepted;
    }
    return Status::ok_status();
}

// Everything after the bootstrap: the contacts, the connections, their socket options.
Status build_mesh(const TcpGroupOptions& options, const Fd& listener, Clock::time_point deadline,
                  TcpMesh& mesh) {
    const int n_nodes = static_cast<int>(options.nodes.size());
    if (mesh.world_size != n_nodes * options.local_ranks) {
        return invalid_argument("tcp communicator: the group has " +
                                std::to_string(mesh.world_size) + " ranks, expected " +
                                std::to_string(n_nodes) + " nodes x " +
                                std::to_string(options.local_ranks) +
                                " (every node must bring the same number of ranks)");
    }
    SLUICE_ASSIGN_OR_RETURN(const std::vector<HostPort> contacts,
                            parse_mesh_contacts(mesh.session->contacts(), options.node));
    mesh.connections.resize(static_cast<size_t>(options.local_ranks));
    for (std::vector<Fd>& row : mesh.connections) {
        row.resize(static_cast<size_t>(mesh.world_size));
    }
    // Connecting first cannot deadlock: a connect completes in the listener's backlog before the
    // other node accepts it, and the hello fits in the socket's buffer.
    SLUICE_RETURN_IF_ERROR(connect_down(options, contacts, deadline, mesh));
    SLUICE_RETURN_IF_ERROR(accept_up(options, listener, deadline, mesh));
    for (const std::vector<Fd>& row : mesh.connections) {
        for (const Fd& fd : row) {
            if (fd.get() >= 0) {
                set_nodelay(fd.get());
            }
        }
    }
    return Status::ok_status();
}

}  // namespace

std::string host_byte_order() {
    static_assert(std::numeric_limits<float>::is_iec559, "floats cross nodes as IEEE 754");
    return std::endian::native == std::endian::little ? "little-endian" : "big-endian";
}

std::string format_mesh_contact(const std::string& host, int port) {
    return format_host_port(host, port) + " " + host_byte_order();
}

Result<std::vector<HostPort>> parse_mesh_contacts(const std::vector<std::string>& contacts,
                                                  int self) {
    const std::string mine = host_byte_order();
    std::vector<HostPort> out;
    for (size_t node = 0; node < contacts.size(); ++node) {
        const std::string& contact = contacts[node];
        const size_t space = contact.rfind(' ');
        if (space == std::string::npos) {
            return invalid_argument("tcp communicator: node " + std::to_string(node) +
                                    " announced '" + contact +
                                    "', expected 'host:port byte-order' (a different version?)");
        }
        const std::string order = contact.substr(space + 1);
        if (order != mine) {
            return failed_precondition(
                "tcp communicator: node " + std::to_string(node) + " is " + order +
                " and node " + std::to_string(self) + " " + mine +
                "; the ranks exchange floats as their hosts store them, so every node of one "
                "engine must have the same byte order");
        }
        SLUICE_ASSIGN_OR_RETURN(HostPort where,
                                parse_host_port(contact.substr(0, space), "tcp communicator"));
        out.push_back(std::move(where));
    }
    return out;
}

Result<TcpMesh> join_tcp_mesh(const TcpGroupOptions& options) {
    SLUICE_RETURN_IF_ERROR(check_options(options));
    const auto deadline = Clock::now() + options.timeout;
    SLUICE_ASSIGN_OR_RETURN(
        const HostPort mine,
        parse_host_port(options.nodes[static_cast<size_t>(options.node)], "tcp communicator"));
    SLUICE_ASSIGN_OR_RETURN(auto listening, listen_any_port(mine.host));
    BootstrapOptions bootstrap;
    bootstrap.root_address = options.nodes[0];
    bootstrap.node = options.node;
    bootstrap.n_nodes = static_cast<int>(options.nodes.size());
    bootstrap.local_ranks = options.local_ranks;
    bootstrap.timeout = options.timeout;
    bootstrap.contact = format_mesh_contact(mine.host, listening.second);
    SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<BootstrapSession> session,
                            join_bootstrap(bootstrap, ""));
    TcpMesh mesh;
    mesh.session = std::move(session);
    mesh.rank_offset = mesh.session->rank_offset();
    mesh.world_size = mesh.session->world_size();
    const Status built = build_mesh(options, listening.first, deadline, mesh);
    if (!built.ok()) {
        if (built.code() != StatusCode::kAborted) {
            mesh.session->abort(built.message());  // the other nodes stop waiting for this one
        }
        return built;
    }
    return mesh;
}

}  // namespace sluice::inference::detail
