#include "inference/detail/tcp_bootstrap.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include "common/log.h"
#include "inference/detail/sockets.h"

namespace sluice::inference::detail {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kHello = "SLUICE-BOOTSTRAP/2";
// The hello and welcome are small; a stranger's connection gets no more than this.
constexpr uint32_t kMaxMessage = 1 << 20;
// After joining, a relayed step carries every new token and block table of the batch: long
// prompts with long block tables pass 1 MiB.
constexpr uint32_t kMaxJoinedMessage = 64u << 20;
constexpr std::string_view kStepVerb = "STEP";

Status io_error(const std::string& what) {
    return Status(StatusCode::kIoError, "bootstrap: " + what + ": " + std::strerror(errno));
}

// Waits until `fd` is readable; false on timeout.
Result<bool> wait_readable(int fd, Clock::time_point deadline) {
    return wait_for(fd, POLLIN, deadline, "bootstrap");
}

Status write_all(int fd, const char* data, size_t size) {
    while (size > 0) {
        const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return io_error("send");
        }
        data += n;
        size -= static_cast<size_t>(n);
    }
    return Status::ok_status();
}

Status send_message(int fd, std::string_view body) {
    const uint32_t length = htonl(static_cast<uint32_t>(body.size()));
    std::string frame(reinterpret_cast<const char*>(&length), 4);
    frame.append(body);
    return write_all(fd, frame.data(), frame.size());
}

// Reads exactly `size` bytes before the deadline; kIoError "closed" on end of stream.
Status read_all(int fd, char* data, size_t size, Clock::time_point deadline) {
    while (size > 0) {
        SLUICE_ASSIGN_OR_RETURN(const bool readable, wait_readable(fd, deadline));
        if (!readable) {
            return Status(StatusCode::kDeadlineExceeded, "bootstrap: timed out reading a message");
        }
        const ssize_t n = ::recv(fd, data, size, 0);
        if (n == 0) {
            return Status(StatusCode::kIoError, "bootstrap: connection closed");
        }
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            return io_error("recv");
        }
        data += n;
        size -= static_cast<size_t>(n);
    }
    return Status::ok_status();
}

Result<std::string> read_message(int fd, Clock::time_point deadline,
                                 uint32_t max_length = kMaxMessage) {
    uint32_t length = 0;
    SLUICE_RETURN_IF_ERROR(read_all(fd, reinterpret_cast<char*>(&length), 4, deadline));
    length = ntohl(length);
    if (length > max_length) {
        return Status(StatusCode::kIoError,
                      "bootstrap: message of " + std::to_string(length) + " bytes refused");
    }
    std::string body(length, '\0');
    SLUICE_RETURN_IF_ERROR(read_all(fd, body.data(), length, deadline));
    return body;
}

// The first word of a message and the rest.
std::pair<std::string, std::string> split_verb(const std::string& message) {
    const size_t space = message.find(' ');
    if (space == std::string::npos) {
        return {message, ""};
    }
    return {message.substr(0, space), message.substr(space + 1)};
}

struct Hello {
    int node = -1;
    int n_nodes = 0;
    int local_ranks = 0;
};

std::optional<Hello> parse_hello(const std::string& message) {
    std::istringstream in(message);
    std::string magic;
    Hello hello;
    if (!(in >> magic >> hello.node >> hello.n_nodes >> hello.local_ranks) || magic != kHello) {
        return std::nullopt;
    }
    return hello;
}

Result<Fd> listen_on(const HostPort& where) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    addrinfo* found = nullptr;
    const int rc = ::getaddrinfo(where.host.c_str(), where.port.c_str(), &hints, &found);
    if (rc != 0) {
        return Status(StatusCode::kIoError, "bootstrap: cannot resolve `" + where.host +
                                                "`: " + ::gai_strerror(rc));
    }
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, ::freeaddrinfo);
    Status last = Status(StatusCode::kIoError, "bootstrap: no address for " + where.host);
    for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
        Fd fd(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
        if (fd.get() < 0) {
            last = io_error("socket");
            continue;
        }
        const int one = 1;
        ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (::bind(fd.get(), a->ai_addr, a->ai_addrlen) != 0) {
            last = io_error("bind " + where.host + ":" + where.port);
            continue;
        }
        if (::listen(fd.get(), 64) != 0) {
            last = io_error("listen");
            continue;
        }
        return fd;
    }
    return last;
}

// Connects to the root, retrying until the deadline: the root may start after this node.
Result<Fd> connect_to(const HostPort& where, Clock::time_point deadline) {
    std::string last_error = "not tried";
    while (Clock::now() < deadline) {
        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        addrinfo* found = nullptr;
        const int rc = ::getaddrinfo(where.host.c_str(), where.port.c_str(), &hints, &found);
        if (rc != 0) {
            last_error = std::string("cannot resolve: ") + ::gai_strerror(rc);
        } else {
            std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, ::freeaddrinfo);
            for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
                Fd fd(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
                if (fd.get() >= 0 && ::connect(fd.get(), a->ai_addr, a->ai_addrlen) == 0) {
                    const int one = 1;
                    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    return fd;
                }
                last_error = std::strerror(errno);
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return Status(StatusCode::kDeadlineExceeded, "bootstrap: could not reach the root at " +
                                                     where.host + ":" + where.port + " (" +
                                                     last_error + ")");
}

// A joined group: the control channel's sockets (the root: one per other node; another node: the
// one to the root) and the watcher thread that reads them.
class Session final : public BootstrapSession {
public:
    struct Peer {
        int node;
        Fd fd;
        bool open = true;
    };

    Session(int node, int n_nodes, int rank_offset, int world_size, std::string payload,
            std::vector<std::string> contacts, std::vector<Peer> peers)
        : node_(node),
          n_nodes_(n_nodes),
          rank_offset_(rank_offset),
          world_size_(world_size),
          payload_(std::move(payload)),
          contacts_(std::move(contacts)),
          peers_(std::move(peers)) {
        int pipe_fds[2];
        if (::pipe2(pipe_fds, O_CLOEXEC) == 0) {
            wake_read_ = Fd(pipe_fds[0]);
            wake_write_ = Fd(pipe_fds[1]);
        }
        if (!peers_.empty()) {
            watcher_ = std::thread([this] { watch(); });
        }
    }

    ~Session() override {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        if (abort_reason().empty()) {
            for (Peer& peer : peers_) {
                send_to(peer, "BYE");
            }
        }
        if (wake_write_.get() >= 0) {
            const char byte = 0;
            [[maybe_unused]] const ssize_t n = ::write(wake_write_.get(), &byte, 1);
        }
        if (watcher_.joinable()) {
            watcher_.join();
        }
    }

    int node() const override { return node_; }
    int n_nodes() const override { return n_nodes_; }
    int rank_offset() const override { return rank_offset_; }
    int world_size() const override { return world_size_; }
    const std::string& payload() const override { return payload_; }
    const std::vector<std::string>& contacts() const override { return contacts_; }

    void on_abort(std::function<void(const std::string&)> callback) override {
        std::string reason;
        {
            std::lock_guard lock(mutex_);
            if (reason_.empty()) {
                callbacks_.push_back(std::move(callback));
                return;
            }
            reason = reason_;
        }
        callback(reason);
    }

    void abort(const std::string& reason) override {
        const std::string full = "node " + std::to_string(node_) + ": " + reason;
        if (abort_locally(full)) {
            for (Peer& peer : peers_) {
                send_to(peer, "ABORT " + full);
            }
        }
    }

    std::string abort_reason() const override {
        std::lock_guard lock(mutex_);
        return reason_;
    }

    Status broadcast_step(std::string_view call) override {
        if (node_ != 0) {
            return failed_precondition("broadcast_step: only node 0 relays steps, this is node " +
                                       std::to_string(node_));
        }
        if (std::string reason = abort_reason(); !reason.empty()) {
            return Status(StatusCode::kAborted, std::move(reason));
        }
        std::string message(kStepVerb);
        message += ' ';
        message.append(call);
        std::string failure;
        {
            std::lock_guard lock(send_mutex_);
            for (Peer& peer : peers_) {
                if (!peer.open) {
                    // Its process left in order (BYE), so its ranks will not meet this step.
                    failure = "node " + std::to_string(peer.node) + " has left the group";
                    break;
                }
                if (Status sent = send_message(peer.fd.get(), message); !sent.ok()) {
                    failure =
                        "node " + std::to_string(peer.node) + " is gone (" + sent.message() + ")";
                    break;
                }
            }
        }
        if (!failure.empty()) {
            fail_group(nullptr, failure);
            return Status(StatusCode::kAborted, abort_reason());
        }
        return Status::ok_status();
    }

    Result<std::string> next_step() override {
        if (node_ == 0) {
            return failed_precondition("next_step: node 0 leads; only other nodes follow");
        }
        std::unique_lock lock(mutex_);
        steps_changed_.wait(lock, [&] {
            return !reason_.empty() || stop_following_ || !steps_.empty() || root_left_;
        });
        if (!reason_.empty()) {
            return Status(StatusCode::kAborted, reason_);
        }
        if (stop_following_) {
            return Status(StatusCode::kCancelled,
                          "node " + std::to_string(node_) + " stopped following");
        }
        if (!steps_.empty()) {
            std::string step = std::move(steps_.front());
            steps_.pop_front();
            return step;
        }
        return Status(StatusCode::kCancelled, "node 0 ended the group");
    }

    void stop_following() override {
        std::lock_guard lock(mutex_);
        stop_following_ = true;
        steps_changed_.notify_all();
    }

private:
    // Records the reason and runs the callbacks; false when the group had already aborted.
    bool abort_locally(const std::string& reason) {
        std::vector<std::function<void(const std::string&)>> callbacks;
        {
            std::lock_guard lock(mutex_);
            if (!reason_.empty()) {
                return false;
            }
            reason_ = reason;
            callbacks.swap(callbacks_);
            steps_changed_.notify_all();
        }
        log::error("inference", "parallel group aborted", {{"reason", reason}});
        for (auto& callback : callbacks) {
            callback(reason);
        }
        return true;
    }

    void send_to(Peer& peer, const std::string& message) {
        std::lock_guard lock(send_mutex_);
        if (peer.open) {
            // A failed send is the watcher's to notice as a closed connection.
            (void)send_message(peer.fd.get(), message);
        }
    }

    // Reads the control channel until the session ends: an ABORT is applied (and relayed by the
    // root), a BYE closes that peer quietly, and a connection lost without a BYE aborts the group.
    void watch() {
        for (;;) {
            std::vector<pollfd> fds;
            std::vector<Peer*> owners;
            for (Peer& peer : peers_) {
                if (peer.open) {
                    fds.push_back({peer.fd.get(), POLLIN, 0});
                    owners.push_back(&peer);
                }
            }
            fds.push_back({wake_read_.get(), POLLIN, 0});
            if (owners.empty()) {
                return;
            }
            const int n = ::poll(fds.data(), fds.size(), -1);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                abort_locally("node " + std::to_string(node_) + ": control channel poll failed");
                return;
            }
            if (fds.back().revents != 0) {
                return;  // the session is ending
            }
            for (size_t i = 0; i < owners.size(); ++i) {
                if (fds[i].revents != 0) {
                    handle(*owners[i]);
                }
            }
        }
    }

    void handle(Peer& from) {
        auto message =
            read_message(from.fd.get(), Clock::now() + std::chrono::seconds(5), kMaxJoinedMessage);
        if (!message.ok()) {
            {
                std::lock_guard lock(send_mutex_);
                from.open = false;
            }
            bool stopping = false;
            {
                std::lock_guard lock(mutex_);
                stopping = stopping_;
            }
            if (!stopping) {
                fail_group(&from, "node " + std::to_string(from.node) + " is gone (" +
                                      message.status().message() + ")");
            }
            return;
        }
        if (from.node == 0 && is_step(*message)) {
            std::lock_guard lock(mutex_);
            steps_.push_back(message->substr(std::min(message->size(), kStepVerb.size() + 1)));
            steps_changed_.notify_all();
            return;
        }
        const auto [verb, rest] = split_verb(*message);
        if (verb == "BYE") {
            {
                std::lock_guard lock(send_mutex_);
                from.open = false;
            }
            if (from.node == 0) {
                // Steps already queued are still followed; then next_step() ends the group.
                std::lock_guard lock(mutex_);
                root_left_ = true;
                steps_changed_.notify_all();
            }
        } else if (verb == "ABORT") {
            fail_group(&from, rest);
        }
    }

    // "STEP" alone or "STEP " and a body: the body is binary, so no other parsing.
    static bool is_step(const std::string& message) {
        return message.starts_with(kStepVerb) &&
               (message.size() == kStepVerb.size() || message[kStepVerb.size()] == ' ');
    }

    // Aborts with `reason` and tells every peer but `from` (the one it came from, if any).
    void fail_group(const Peer* from, const std::string& reason) {
        if (abort_locally(reason)) {
            for (Peer& peer : peers_) {
                if (&peer != from) {
                    send_to(peer, "ABORT " + reason);
                }
            }
        }
    }

    const int node_;
    const int n_nodes_;
    const int rank_offset_;
    const int world_size_;
    const std::string payload_;
    const std::vector<std::string> contacts_;
    std::vector<Peer> peers_;
    Fd wake_read_;
    Fd wake_write_;

    // reason_, callbacks_, stopping_, and the relayed steps a node > 0 has not followed yet.
    mutable std::mutex mutex_;
    std::string reason_;
    std::vector<std::function<void(const std::string&)>> callbacks_;
    bool stopping_ = false;
    std::deque<std::string> steps_;
    bool root_left_ = false;       // node 0 said BYE
    bool stop_following_ = false;  // stop_following() was called
    std::condition_variable steps_changed_;
    std::mutex send_mutex_;  // writes to peers and their `open` flags
    std::thread watcher_;
};

Status check_options(const BootstrapOptions& options) {
    if (options.n_nodes < 1 || options.node < 0 || options.node >= options.n_nodes) {
        return invalid_argument("bootstrap: node " + std::to_string(options.node) +
                                " outside [0, " + std::to_string(options.n_nodes) + ")");
    }
    if (options.local_ranks < 1) {
        return invalid_argument("bootstrap: a node needs at least one rank, found " +
                                std::to_string(options.local_ranks));
    }
    return Status::ok_status();
}

Result<std::unique_ptr<BootstrapSession>> join_as_root(const BootstrapOptions& options,
                                                       const HostPort& where,
                                                       const std::string& payload) {
    const auto deadline = Clock::now() + options.timeout;
    SLUICE_ASSIGN_OR_RETURN(Fd listener, listen_on(where));
    struct Joined {
        Fd fd;
        int local_ranks;
        std::string contact;
    };
    std::map<int, Joined> joined;
    while (static_cast<int>(joined.size()) < options.n_nodes - 1) {
        SLUICE_ASSIGN_OR_RETURN(const bool ready, wait_readable(listener.get(), deadline));
        if (!ready) {
            return Status(StatusCode::kDeadlineExceeded,
                          "bootstrap: " + std::to_string(joined.size() + 1) + " of " +
                              std::to_string(options.n_nodes) + " nodes joined within " +
                              std::to_string(options.timeout.count()) + " ms");
        }
        Fd fd(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (fd.get() < 0) {
            continue;
        }
        // Relayed steps go from the root to the nodes: no waiting to fill a segment.
        const int one = 1;
        ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        auto message = read_message(fd.get(), std::min(deadline, Clock::now() + std::chrono::seconds(5)));
        if (!message.ok()) {
            log::warn("inference", "bootstrap: a connection sent no hello",
                      {{"error", message.status().message()}});
            continue;
        }
        const std::optional<Hello> hello = parse_hello(*message);
        // The contact follows the hello as its own message, so any bytes (or none) fit.
        Result<std::string> contact = std::string();
        if (hello) {
            contact =
                read_message(fd.get(), std::min(deadline, Clock::now() + std::chrono::seconds(5)));
            if (!contact.ok()) {
                log::warn("inference", "bootstrap: a node sent no contact",
                          {{"error", contact.status().message()}});
                continue;
            }
        }
        std::string refusal;
        if (!hello) {
            refusal = "not a bootstrap hello";
        } else if (hello->n_nodes != options.n_nodes) {
            refusal = "node " + std::to_string(hello->node) + " expects " +
                      std::to_string(hello->n_nodes) + " nodes, the root " +
                      std::to_string(options.n_nodes);
        } else if (hello->node <= 0 || hello->node >= options.n_nodes) {
            refusal = "node index " + std::to_string(hello->node) + " outside [1, " +
                      std::to_string(options.n_nodes) + ")";
        } else if (joined.contains(hello->node)) {
            refusal = "node " + std::to_string(hello->node) + " has already joined";
        } else if (hello->local_ranks < 1) {
            refusal = "node " + std::to_string(hello->node) + " brings no ranks";
        }
        if (!refusal.empty()) {
            log::warn("inference", "bootstrap: refused a node", {{"reason", refusal}});
            (void)send_message(fd.get(), "REFUSE " + refusal);
            continue;
        }
        joined.emplace(hello->node, Joined{std::move(fd), hello->local_ranks, std::move(*contact)});
    }
    int world = options.local_ranks;
    std::vector<std::string> contacts = {options.contact};
    for (const auto& [node, entry] : joined) {
        world += entry.local_ranks;
        contacts.push_back(entry.contact);  // the map is ordered by node
    }
    std::vector<Session::Peer> peers;
    int offset = options.local_ranks;
    for (auto& [node, entry] : joined) {
        SLUICE_RETURN_IF_ERROR(send_message(
            entry.fd.get(), "WELCOME " + std::to_string(offset) + " " + std::to_string(world)));
        SLUICE_RETURN_IF_ERROR(send_message(entry.fd.get(), payload));
        for (const std::string& contact : contacts) {
            SLUICE_RETURN_IF_ERROR(send_message(entry.fd.get(), contact));
        }
        offset += entry.local_ranks;
        peers.push_back({node, std::move(entry.fd)});
    }
    log::info("inference", "bootstrap complete",
              {{"nodes", options.n_nodes}, {"world_size", world}});
    return std::unique_ptr<BootstrapSession>(std::make_unique<Session>(
        0, options.n_nodes, 0, world, payload, std::move(contacts), std::move(peers)));
}

Result<std::unique_ptr<BootstrapSession>> join_as_member(const BootstrapOptions& options,
                                                         const HostPort& where) {
    const auto deadline = Clock::now() + options.timeout;
    SLUICE_ASSIGN_OR_RETURN(Fd fd, connect_to(where, deadline));
    SLUICE_RETURN_IF_ERROR(send_message(
        fd.get(), std::string(kHello) + " " + std::to_string(options.node) + " " +
                      std::to_string(options.n_nodes) + " " + std::to_string(options.local_ranks)));
    SLUICE_RETURN_IF_ERROR(send_message(fd.get(), options.contact));
    auto reply = read_message(fd.get(), deadline);
    if (!reply.ok()) {
        return Status(reply.status().code() == StatusCode::kDeadlineExceeded
                          ? StatusCode::kDeadlineExceeded
                          : StatusCode::kIoError,
                      "bootstrap: node " + std::to_string(options.node) +
                          " got no answer from the root: " + reply.status().message());
    }
    const auto [verb, rest] = split_verb(*reply);
    if (verb == "REFUSE") {
        return Status(StatusCode::kFailedPrecondition, "bootstrap: the root refused node " +
                                                           std::to_string(options.node) + ": " +
                                                           rest);
    }
    std::istringstream in(rest);
    int offset = 0;
    int world = 0;
    if (verb != "WELCOME" || !(in >> offset >> world) || offset <= 0 ||
        offset + options.local_ranks > world) {
        return Status(StatusCode::kIoError, "bootstrap: unexpected answer from the root");
    }
    SLUICE_ASSIGN_OR_RETURN(std::string payload, read_message(fd.get(), deadline));
    std::vector<std::string> contacts;
    for (int node = 0; node < options.n_nodes; ++node) {
        SLUICE_ASSIGN_OR_RETURN(std::string contact, read_message(fd.get(), deadline));
        contacts.push_back(std::move(contact));
    }
    std::vector<Session::Peer> peers;
    peers.push_back({0, std::move(fd)});
    return std::unique_ptr<BootstrapSession>(
        std::make_unique<Session>(options.node, options.n_nodes, offset, world, std::move(payload),
                                  std::move(contacts), std::move(peers)));
}

}  // namespace

Result<std::unique_ptr<BootstrapSession>> join_bootstrap(const BootstrapOptions& options,
                                                         const std::string& payload) {
    SLUICE_RETURN_IF_ERROR(check_options(options));
    if (options.n_nodes == 1) {
        // One node needs no network: nothing to exchange and nobody to tell.
        return std::unique_ptr<BootstrapSession>(std::make_unique<Session>(
            0, 1, 0, options.local_ranks, payload, std::vector<std::string>{options.contact},
            std::vector<Session::Peer>{}));
    }
    SLUICE_ASSIGN_OR_RETURN(const HostPort where,
                            parse_host_port(options.root_address, "bootstrap"));
    if (options.node == 0) {
        return join_as_root(options, where, payload);
    }
    return join_as_member(options, where);
}

}  // namespace sluice::inference::detail
