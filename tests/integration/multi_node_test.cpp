// An engine spanning two nodes, each a `sluice serve` process with one CPU rank of a tensor plan
// of two, joined over loopback: node 0 serves exactly what the same two ranks serve in one
// process, node 1 follows and sends model requests to node 0, and losing node 1 stops node 0
// with the reason on /readyz.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <map>
#include <memory>
#include <string>

#include "sluice_server.h"

namespace {

using nlohmann::json;
using sluice::testing::ServerProcess;
using sluice::testing::tiny_model_dir;
using namespace std::chrono_literals;

// A loopback port that was free a moment ago.
int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    socklen_t len = sizeof(addr);
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    ::close(fd);
    return ntohs(addr.sin_port);
}

// Two ranks of the tensor plan on the CPU, one thread each; on `nodes` when given.
std::map<std::string, std::string> tensor_two(const std::string& nodes = "", int node = 0) {
    std::map<std::string, std::string> environment = {{"SLUICE_MODEL_BACKEND", "cpu"},
                                                      {"SLUICE_MODEL_THREADS", "1"},
                                                      {"SLUICE_PARALLEL_TENSOR", "2"}};
    if (!nodes.empty()) {
        environment["SLUICE_PARALLEL_NODES"] = nodes;
        environment["SLUICE_PARALLEL_NODE"] = std::to_string(node);
        environment["SLUICE_PARALLEL_JOIN_TIMEOUT_S"] = "120";
    }
    return environment;
}

json complete(const ServerProcess& server, int* status = nullptr) {
    const json body = {{"prompt", "The quick brown fox jumps over"},
                       {"max_tokens", 12},
                       {"temperature", 0},
                       {"logprobs", 3}};
    auto result = server.client().Post("/v1/completions", body.dump(), "application/json");
    REQUIRE(result);
    if (status != nullptr) {
        *status = result->status;
    } else {
        REQUIRE_MESSAGE(result->status == 200, result->body);
    }
    return json::parse(result->body);
}

}  // namespace

TEST_CASE(
    "two nodes: node 0 serves what one process serves, node 1 follows, a lost node stops both") {
    const std::string nodes = "127.0.0.1:" + std::to_string(free_port()) + ",127.0.0.1:1";
    // Node 1 first: it waits for node 0's bootstrap.
    auto follower =
        std::make_unique<ServerProcess>("node1", tiny_model_dir(), tensor_two(nodes, 1));
    ServerProcess leader("node0", tiny_model_dir(), tensor_two(nodes, 0));
    const json ready = leader.wait_model_ready(true);
    CHECK(ready["status"] == "ready");

    const json following = follower->wait_model_ready(true);
    CHECK(following["checks"]["model"]["reason"] ==
          "node 1 of 2 follows node 0's steps (ranks 1..1 of 2); requests go to node 0");

    // The same ranks in one process, joined by the local communicator: both reduce in rank order
    // in fp32, so the two servers agree token for token and logprob for logprob.
    {
        ServerProcess one_process("tp2", tiny_model_dir(), tensor_two());
        one_process.wait_model_ready(true);
        const json expected = complete(one_process);
        const json got = complete(leader);
        CHECK(got["choices"][0]["text"] == expected["choices"][0]["text"]);
        CHECK(got["choices"][0]["logprobs"] == expected["choices"][0]["logprobs"]);
        CHECK(got["usage"] == expected["usage"]);
    }

    // Node 1 has no engine of its own and says where to go.
    int status = 0;
    const json refused = complete(*follower, &status);
    CHECK(status == 503);
    CHECK(refused["error"]["message"] ==
          "this server is node 1 of 2, which follows node 0's steps: send model requests to "
          "node 0's server");
    CHECK(follower->metric("sluice_follower_calls_total") > 1);
    CHECK(follower->metric("sluice_follower_following") == 1);

    // Node 1 dies: node 0 stops serving and says why, with no request needed to find out.
    follower->process->signal(SIGKILL);
    const json stopped = leader.wait_model_ready(false);
    const std::string reason = stopped["checks"]["model"]["reason"];
    INFO(reason);
    CHECK(reason.find("the model stopped serving") != std::string::npos);
    CHECK(reason.find("node 1 is gone") != std::string::npos);
    complete(leader, &status);
    CHECK(status == 503);
    follower.reset();
}
