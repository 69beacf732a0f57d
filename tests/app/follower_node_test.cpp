// A server on node 1 of an engine spanning two nodes: it joins node 0, follows its calls, serves
// no model request itself, and /readyz's "model" check tells what it is doing and, once the
// group ends, why. The two nodes are joined by an in-process channel (the TCP one is the
// inference module's and is tested there), and the follower's backend is the CPU backend of the
// whole tiny model, put in through the opener: the relay does not care what the ranks hold, and
// the CPU backend runs on one node only.
#include "app/follower_node.h"

#include <doctest/doctest.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "app/model_host.h"
#include "app/readiness.h"
#include "inference/cpu_backend.h"
#include "inference/engine.h"
#include "tiny_model_folder.h"

namespace sluice::app {
namespace {

// Node 0 and node 1 of one group, joined in process: what node 0 broadcasts node 1 takes in
// order; an abort reaches both; node 0's side going away ends the group in order.
class Group {
public:
    struct Side final : inference::StepChannel {
        Side(std::shared_ptr<Group> group, int node) : group_(std::move(group)), node_(node) {}
        ~Side() override {
            if (node_ == 0) {
                group_->end();
            }
        }
        int node() const override { return node_; }
        int n_nodes() const override { return 2; }
        Status broadcast_step(std::string_view call) override {
            return group_->push(std::string(call));
        }
        Result<std::string> next_step() override { return group_->pop(); }
        void stop_following() override { group_->end(); }
        void abort(const std::string& reason) override {
            group_->abort("node " + std::to_string(node_) + ": " + reason);
        }
        std::string abort_reason() const override { return group_->reason(); }

    private:
        std::shared_ptr<Group> group_;
        const int node_;
    };

    Status push(std::string call) {
        std::lock_guard lock(mutex_);
        if (!reason_.empty()) {
            return Status(StatusCode::kAborted, reason_);
        }
        calls_.push_back(std::move(call));
        cv_.notify_all();
        return Status::ok_status();
    }
    Result<std::string> pop() {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return !calls_.empty() || ended_ || !reason_.empty(); });
        if (!reason_.empty()) {
            return Status(StatusCode::kAborted, reason_);
        }
        if (calls_.empty()) {
            return Status(StatusCode::kCancelled, "node 0 ended the group");
        }
        std::string call = std::move(calls_.front());
        calls_.pop_front();
        return call;
    }
    void end() {
        std::lock_guard lock(mutex_);
        ended_ = true;
        cv_.notify_all();
    }
    void abort(const std::string& reason) {
        std::lock_guard lock(mutex_);
        if (reason_.empty()) {
            reason_ = reason;
        }
        cv_.notify_all();
    }
    std::string reason() const {
        std::lock_guard lock(mutex_);
        return reason_;
    }

private:
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<std::string> calls_;
    bool ended_ = false;
    std::string reason_;
};

ModelSettings node_settings(const std::string& model_dir, int node) {
    ModelSettings settings;
    settings.path = model_dir;
    settings.backend = "cpu";
    settings.parallel.tensor = 2;  // one rank on each of the two nodes
    settings.parallel.nodes = {"10.0.0.1:29500", "10.0.0.2:29500"};
    settings.parallel.node = node;
    return settings;
}

// Node 1's opener: joins `group` and follows with a CPU backend of the whole model.
FollowerOpener cpu_follower_opener(std::shared_ptr<Group> group) {
    return
        [group](const ModelSettings& settings) -> Result<std::unique_ptr<inference::StepFollower>> {
            SLUICE_ASSIGN_OR_RETURN(auto backend, inference::open_cpu_backend(settings.path, {}));
            return std::make_unique<inference::StepFollower>(
                std::move(backend), std::make_shared<Group::Side>(group, 1));
        };
}

Readiness::Check model_check(const Readiness& readiness) {
    for (const Readiness::Check& check : readiness.checks()) {
        if (check.name == "model") {
            return check;
        }
    }
    FAIL("no model check");
    return {};
}

// Waits (bounded) until `done` holds; the state it waits for is reached by other threads.
bool eventually(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) {
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
}

// Node 0: the leader over a CPU backend of the whole model, and an engine over it.
struct NodeZero {
    std::shared_ptr<inference::StepChannel> channel;
    std::unique_ptr<inference::Engine> engine;
};

NodeZero start_node_zero(const std::string& model_dir, const std::shared_ptr<Group>& group) {
    NodeZero zero;
    zero.channel = std::make_shared<Group::Side>(group, 0);
    auto local = inference::open_cpu_backend(model_dir, {});
    REQUIRE(local.ok());
    inference::EngineOptions options;
    options.kv_cache = {16, 64};
    auto engine = inference::Engine::open(
        inference::make_leader_backend(std::move(*local), zero.channel, 0), nullptr, options);
    REQUIRE_MESSAGE(engine.ok(), engine.status().to_string());
    zero.engine = std::move(*engine);
    return zero;
}

int64_t follower_calls(const ModelHost& host) {
    const std::string metrics = host.metrics_text();
    const std::string name = "\nsluice_follower_calls_total ";
    const size_t at = metrics.find(name);
    REQUIRE(at != std::string::npos);
    return std::stoll(metrics.substr(at + name.size()));
}

TEST_CASE("follower node: joins node 0, follows its calls, and reports the group's failure") {
    const testing::TinyModelFolder folder("sluice-follower");
    auto group = std::make_shared<Group>();
    Readiness readiness;
    ModelHost host(node_settings(folder.model_dir(), 1), &readiness, cpu_follower_opener(group));
    CHECK_FALSE(model_check(readiness).ready);
    CHECK(model_check(readiness).reason ==
          "node 1 of 2 has not joined node 0 (10.0.0.1:29500) yet");

    const Status load = host.load();
    NodeZero zero = start_node_zero(folder.model_dir(), group);
    REQUIRE_MESSAGE(load.ok(), load.to_string());

    const Readiness::Check following = model_check(readiness);
    CHECK(following.ready);
    CHECK(following.reason ==
          "node 1 of 2 follows node 0's steps (ranks 1..1 of 2); requests "
          "go to node 0");
    // No engine here: model requests are told where to go.
    CHECK(host.engine() == nullptr);
    CHECK(host.unavailable().code() == StatusCode::kUnavailable);
    CHECK(host.unavailable().message() ==
          "this server is node 1 of 2, which follows node 0's steps: send model requests to "
          "node 0's server");
    CHECK(host.metrics_text().find("sluice_follower_following 1\n") != std::string::npos);

    // Node 0's KV cache and every step of an embedding reach node 1.
    CHECK(eventually([&] { return follower_calls(host) >= 1; }));
    const int64_t before = follower_calls(host);
    const std::vector<std::vector<int32_t>> prompts = {{1, 2, 3, 4, 5}, {7, 8}};
    auto embedded = zero.engine->embed_ids(prompts);
    REQUIRE_MESSAGE(embedded.ok(), embedded.status().to_string());
    CHECK(eventually([&] { return follower_calls(host) > before; }));

    // A failure anywhere in the group stops node 1 with the reason.
    zero.channel->abort("an operator stopped node 0's GPUs");
    CHECK(eventually([&] { return !model_check(readiness).ready; }));
    const std::string reason = model_check(readiness).reason;
    CHECK(reason.find("node 1 of 2 stopped: ") == 0);
    CHECK(reason.find("an operator stopped node 0's GPUs") != std::string::npos);
    CHECK(host.unavailable().message() == reason);
    CHECK(host.metrics_text().find("sluice_follower_following 0\n") != std::string::npos);
    // And node 0's engine no longer runs steps.
    CHECK_FALSE(zero.engine->embed_ids(prompts).ok());
}

TEST_CASE("follower node: node 0 shutting down ends the group in order") {
    const testing::TinyModelFolder folder("sluice-follower-end");
    auto group = std::make_shared<Group>();
    Readiness readiness;
    ModelHost host(node_settings(folder.model_dir(), 1), &readiness, cpu_follower_opener(group));
    REQUIRE(host.load().ok());
    {
        NodeZero zero = start_node_zero(folder.model_dir(), group);
        CHECK(model_check(readiness).ready);
    }  // node 0 stops: its engine, then its channel
    CHECK(eventually([&] { return !model_check(readiness).ready; }));
    CHECK(model_check(readiness).reason ==
          "node 1 of 2 no longer follows: node 0 ended the group or this node is stopping; "
          "restart both to serve again");
}

TEST_CASE("follower node: what cannot join is said on /readyz") {
    const testing::TinyModelFolder folder("sluice-follower-refused");
    Readiness readiness;
    // The default opener, asked for weights the CPU backend does not have.
    ModelSettings settings = node_settings(folder.model_dir(), 1);
    settings.weights = "fp8";
    ModelHost host(settings, &readiness);
    const Status load = host.load();
    CHECK(load.code() == StatusCode::kInvalidArgument);
    CHECK(load.message().find("cpu backend: fp8 and int4 weights are the cuda backend's") == 0);
    CHECK_FALSE(model_check(readiness).ready);
    CHECK(model_check(readiness).reason ==
          "node 1 of 2 could not join the parallel group: " + load.message());
    CHECK(host.unavailable().message() == model_check(readiness).reason);

    ModelSettings missing = node_settings("/nonexistent/model", 1);
    ModelHost no_model(missing, &readiness);
    CHECK(no_model.load().code() == StatusCode::kNotFound);
}

}  // namespace
}  // namespace sluice::app
