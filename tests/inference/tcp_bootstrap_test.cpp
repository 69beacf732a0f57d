// The TCP bootstrap of a multi-node engine, run as several "nodes" (threads) on loopback: ranks
// and payload handed out, refusals, timeouts, and an abort or a lost node reaching every node.
#include "inference/detail/tcp_bootstrap.h"

#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "loopback_nodes.h"

namespace sluice::inference::detail {

namespace {

using testing::free_port;
using testing::node_options;

using Sessions = std::vector<std::unique_ptr<BootstrapSession>>;

// Joins `ranks.size()` nodes, node i bringing ranks[i] and contacts[i] (none when empty); the
// members start before the root.
Sessions join_all(const std::vector<int>& ranks, const std::string& payload,
                  const std::vector<std::string>& contacts = {}) {
    const int port = free_port();
    const int n = static_cast<int>(ranks.size());
    std::vector<std::future<Result<std::unique_ptr<BootstrapSession>>>> joins;
    for (int node = n - 1; node >= 0; --node) {
        joins.push_back(std::async(std::launch::async, [=] {
            BootstrapOptions options =
                node_options(port, node, n, ranks[static_cast<size_t>(node)]);
            if (!contacts.empty()) {
                options.contact = contacts[static_cast<size_t>(node)];
            }
            return join_bootstrap(options, node == 0 ? payload : "ignored");
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

TEST_CASE("bootstrap: every node gets every node's contact, empty or binary") {
    const std::vector<std::string> contacts = {"127.0.0.1:4100", "", std::string("a b\0\n", 5)};
    const Sessions sessions = join_all({1, 2, 1}, "x", contacts);
    for (const auto& session : sessions) {
        CHECK(session->contacts() == contacts);
    }
    // Without contacts every entry is empty; one node keeps its own.
    const Sessions plain = join_all({1, 1}, "x");
    for (const auto& session : plain) {
        CHECK(session->contacts() == std::vector<std::string>{"", ""});
    }
    BootstrapOptions alone;
    alone.contact = "host:1";
    auto single = join_bootstrap(alone, "");
    REQUIRE(single.ok());
    CHECK((*single)->contacts() == std::vector<std::string>{"host:1"});
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

TEST_CASE("bootstrap: node 0's steps reach every other node in order, binary and large") {
    Sessions sessions = join_all({1, 1, 1}, "x");
    CHECK(sessions[0]->node() == 0);
    CHECK(sessions[2]->node() == 2);
    CHECK(sessions[1]->n_nodes() == 3);
    std::vector<std::string> steps = {"", std::string("\0\x01STEP \xff", 8)};
    // Past the 1 MiB limit of the hello: a relayed step of long prompts.
    std::string large(3 << 20, '\0');
    for (size_t i = 0; i < large.size(); ++i) {
        large[i] = static_cast<char>((i * 131) >> 3);
    }
    steps.push_back(large);
    for (const std::string& step : steps) {
        REQUIRE(sessions[0]->broadcast_step(step).ok());
    }
    for (size_t node = 1; node < 3; ++node) {
        for (const std::string& step : steps) {
            auto got = sessions[node]->next_step();
            REQUIRE_MESSAGE(got.ok(), got.status().to_string());
            CHECK(*got == step);
        }
    }
    // Each end refuses the other's half.
    CHECK(sessions[1]->broadcast_step("x").code() == StatusCode::kFailedPrecondition);
    CHECK(sessions[0]->next_step().status().code() == StatusCode::kFailedPrecondition);

    // Steps sent before node 0 leaves are still followed; then the group has ended in order.
    REQUIRE(sessions[0]->broadcast_step("last").ok());
    sessions[0].reset();
    for (size_t node = 1; node < 3; ++node) {
        auto last = sessions[node]->next_step();
        REQUIRE(last.ok());
        CHECK(*last == "last");
        const auto ended = sessions[node]->next_step();
        CHECK(ended.status().code() == StatusCode::kCancelled);
        CHECK(ended.status().message() == "node 0 ended the group");
        CHECK(sessions[node]->abort_reason().empty());
    }
}

TEST_CASE("bootstrap: a waiting node wakes on an abort, and stop_following is not a failure") {
    Sessions sessions = join_all({1, 1}, "x");
    auto waiting = std::async(std::launch::async, [&] { return sessions[1]->next_step(); });
    sessions[0]->abort("rank 0 ran out of memory");
    const auto woken = waiting.get();
    CHECK(woken.status().code() == StatusCode::kAborted);
    CHECK(woken.status().message() == "node 0: rank 0 ran out of memory");
    const Status refused = sessions[0]->broadcast_step("x");
    CHECK(refused.code() == StatusCode::kAborted);
    CHECK(refused.message() == "node 0: rank 0 ran out of memory");

    Sessions healthy = join_all({1, 1}, "x");
    auto following = std::async(std::launch::async, [&] { return healthy[1]->next_step(); });
    healthy[1]->stop_following();
    CHECK(following.get().status().code() == StatusCode::kCancelled);
    CHECK(healthy[1]->next_step().status().code() == StatusCode::kCancelled);
    CHECK(healthy[1]->abort_reason().empty());
    CHECK(healthy[0]->abort_reason().empty());
}

TEST_CASE("bootstrap: a step to a node that left in order fails the group") {
    Sessions sessions = join_all({1, 1}, "x");
    sessions[1].reset();  // says BYE
    // The BYE is read by the root's watcher thread; until then a step may still be sent.
    Status sent = Status::ok_status();
    for (int attempt = 0; attempt < 500 && sent.ok(); ++attempt) {
        sent = sessions[0]->broadcast_step("step");
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    CHECK(sent.code() == StatusCode::kAborted);
    CHECK(sent.message().find("node 1 ") == 0);
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
