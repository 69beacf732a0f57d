// The TCP bootstrap of a multi-node engine, run as several "nodes" (threads) on loopback: ranks
// and payload handed out, refusals, timeouts, and an abort or a lost node reaching every node.
#include "inference/detail/tcp_bootstrap.h"

#include <doctest/doctest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

namespace sluice::inference::detail {

namespace {

// A loopback port that was free a moment ago.
int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
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

BootstrapOptions node_options(int port, int node, int n_nodes, int local_ranks) {
    BootstrapOptions options;
    options.root_address = "127.0.0.1:" + std::to_string(port);
    options.node = node;
    options.n_nodes = n_nodes;
    options.local_ranks = local_ranks;
    options.timeout = std::chrono::milliseconds(10'000);
    return options;
}

using Sessions = std::vector<std::unique_ptr<BootstrapSession>>;

// Joins `ranks.size()` nodes, node i bringing ranks[i]; the members start before the root.
Sessions join_all(const std::vector<int>& ranks, const std::string& payload) {
    const int port = free_port();
    const int n = static_cast<int>(ranks.size());
    std::vector<std::future<Result<std::unique_ptr<BootstrapSession>>>> joins;
    for (int node = n - 1; node >= 0; --node) {
        joins.push_back(std::async(std::launch::async, [=] {
            return join_bootstrap(node_options(port, node, n, ranks[static_cast<size_t>(node)]),
                                  node == 0 ? payload : "ignored");
        }));
    }
    Sessions sessions(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
        auto session = joins[static_cast<size_t>(i)].get();
        REQUIRE_MESSAGE(session.ok(), session.status().to_string());
        sessions[static_cast<size_t>(n - 1 - i)] = std::move(*session);
    }
    return sessions;
}

// Waits for a node's abort callback.
class AbortLatch {
public:
    void operator()(const std::string& reason) {
        std::lock_guard lock(mutex_);
        reasons_.push_back(reason);
        changed_.notify_all();
    }
    std::vector<std::string> wait() {
        std::unique_lock lock(mutex_);
        changed_.wait_for(lock, std::chrono::seconds(10), [&] { return !reasons_.empty(); });
        return reasons_;
    }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<std::string> reasons_;
};

}  // namespace

TEST_CASE("bootstrap: one node needs no network") {
    BootstrapOptions options;
    options.root_address = "not an address";
    options.local_ranks = 4;
    auto session = join_bootstrap(options, "id");
    REQUIRE(session.ok());
    CHECK((*session)->rank_offset() == 0);
    CHECK((*session)->world_size() == 4);
    CHECK((*session)->payload() == "id");
}

TEST_CASE("bootstrap: ranks are numbered node by node and every node gets the root's payload") {
    std::string payload(128, '\0');
    for (size_t i = 0; i < payload.size(); ++i) {
        payload[i] = static_cast<char>(i * 7);  // binary, as NCCL's unique id is
    }
    const Sessions sessions = join_all({2, 1, 3}, payload);
    CHECK(sessions[0]->rank_offset() == 0);
    CHECK(sessions[1]->rank_offset() == 2);
    CHECK(sessions[2]->rank_offset() == 3);
    for (const auto& session : sessions) {
        CHECK(session->world_size() == 6);
        CHECK(session->payload() == payload);
        CHECK(session->abort_reason().empty());
    }
}

TEST_CASE("bootstrap: an abort on one node reaches every node once, with its reason") {
    const Sessions sessions = join_all({1, 1, 1}, "x");
    std::vector<std::unique_ptr<AbortLatch>> latches;
    for (const auto& session : sessions) {
        latches.push_back(std::make_unique<AbortLatch>());
        AbortLatch* latch = latches.back().get();
        session->on_abort([latch](const std::string& reason) { (*latch)(reason); });
    }
    sessions[2]->abort("rank 2 ran out of memory");
    for (auto& latch : latches) {
        const std::vector<std::string> reasons = latch->wait();
        REQUIRE(reasons.size() == 1);
        CHECK(reasons[0] == "node 2: rank 2 ran out of memory");
    }
    sessions[0]->abort("a second failure");  // the first reason is kept
    CHECK(sessions[1]->abort_reason() == "node 2: rank 2 ran out of memory");
    // A callback registered after the abort runs at once.
    AbortLatch late;
    sessions[1]->on_abort([&late](const std::string& reason) { late(reason); });
    CHECK(late.wait().size() == 1);
}

TEST_CASE("bootstrap: a node whose process dies aborts the others") {
    const int port = free_port();
    // Node 1 is a child process that joins and then dies without a word (_exit: no destructor,
    // no BYE), as a crashed or killed node would; the kernel closes its socket.
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        auto session = join_bootstrap(node_options(port, 1, 3, 1), "");
        ::_exit(session.ok() ? 0 : 1);
    }
    auto member = std::async(std::launch::async,
                             [=] { return join_bootstrap(node_options(port, 2, 3, 1), ""); });
    auto root = join_bootstrap(node_options(port, 0, 3, 1), "x");
    auto other = member.get();
    int child_status = 0;
    REQUIRE(::waitpid(child, &child_status, 0) == child);
    CHECK(WIFEXITED(child_status));
    CHECK(WEXITSTATUS(child_status) == 0);
    REQUIRE_MESSAGE(root.ok(), root.status().to_string());
    REQUIRE_MESSAGE(other.ok(), other.status().to_string());
    AbortLatch root_latch;
    AbortLatch member_latch;
    (*root)->on_abort([&](const std::string& reason) { root_latch(reason); });
    (*other)->on_abort([&](const std::string& reason) { member_latch(reason); });
    const std::vector<std::string> at_root = root_latch.wait();
    const std::vector<std::string> at_member = member_latch.wait();
    REQUIRE(at_root.size() == 1);
    REQUIRE(at_member.size() == 1);
    CHECK(at_root[0].find("node 1 is gone") == 0);
    CHECK(at_member[0] == at_root[0]);  // relayed by the root
}

TEST_CASE("bootstrap: orderly shutdown is not a failure") {
    Sessions sessions = join_all({1, 1}, "x");
    AbortLatch latch;
    sessions[0]->on_abort([&](const std::string& reason) { latch(reason); });
    sessions[1].reset();  // says BYE
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    CHECK(sessions[0]->abort_reason().empty());
}

TEST_CASE("bootstrap: refusals and timeouts name the problem") {
    const int port = free_port();
    SUBCASE("a member whose node count disagrees is refused") {
        auto root = std::async(std::launch::async, [=] {
            BootstrapOptions options = node_options(port, 0, 2, 1);
            options.timeout = std::chrono::milliseconds(1500);
            return join_bootstrap(options, "x");
        });
        auto member = join_bootstrap(node_options(port, 1, 3, 1), "");
        CHECK(member.status().code() == StatusCode::kFailedPrecondition);
        CHECK(member.status().message().find("expects 3 nodes") != std::string::npos);
        auto root_result = root.get();
        CHECK(root_result.status().code() == StatusCode::kDeadlineExceeded);
        CHECK(root_result.status().message().find("1 of 2 nodes joined") != std::string::npos);
    }
    SUBCASE("a member with no root times out") {
        BootstrapOptions options = node_options(port, 1, 2, 1);
        options.timeout = std::chrono::milliseconds(300);
        auto member = join_bootstrap(options, "");
        CHECK(member.status().code() == StatusCode::kDeadlineExceeded);
        CHECK(member.status().message().find("could not reach the root") != std::string::npos);
    }
    SUBCASE("bad options") {
        CHECK(join_bootstrap(node_options(port, 2, 2, 1), "").status().code() ==
              StatusCode::kInvalidArgument);
        CHECK(join_bootstrap(node_options(port, 0, 2, 0), "").status().code() ==
              StatusCode::kInvalidArgument);
        BootstrapOptions options = node_options(port, 1, 2, 1);
        options.root_address = "no-port";
        CHECK(join_bootstrap(options, "").status().message().find("not host:port") !=
              std::string::npos);
    }
}

}  // namespace sluice::inference::detail
