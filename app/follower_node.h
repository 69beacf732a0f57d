#pragma once
// FollowerNode: what `sluice serve` runs on node k > 0 of an engine spanning several nodes
// (parallel.nodes, parallel.node; docs/parallel.md). It loads this node's shards, joins the
// group and follows node 0's steps on a thread of its own (inference::StepFollower) until the
// group ends. It serves no model API (node 0 does); the readiness check "model" says which
// node this is, whom it follows, and once the group has ended, why.
//
// Thread safety: thread-safe.

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "app/config.h"
#include "app/readiness.h"
#include "common/result.h"
#include "inference/step_relay.h"

namespace sluice::app {

// Opens this node's follower (inference::open_follower with the settings' backend options);
// tests put their own here.
using FollowerOpener =
    std::function<Result<std::unique_ptr<inference::StepFollower>>(const ModelSettings&)>;

class FollowerNode {
public:
    // `readiness` (may be null) must outlive the node.
    FollowerNode(ModelSettings settings, Readiness* readiness, FollowerOpener opener);
    // Stops following (not a failure of the group) and joins the thread.
    ~FollowerNode();
    FollowerNode(const FollowerNode&) = delete;
    FollowerNode& operator=(const FollowerNode&) = delete;

    // Opens the follower (blocking: loading and joining the group) and starts following. The
    // error is the open's; afterwards the group's end is reported through the readiness check.
    Status start();

    // Why this node answers no model request: it follows node 0, or it could not join.
    std::string unavailable_reason() const;
    // Calls of node 0 run so far (0 before start()).
    int64_t calls() const;
    // True while following: joined and the group not ended.
    bool following() const;

private:
    void set_state(bool ready, std::string reason);

    const ModelSettings settings_;
    Readiness* readiness_;
    FollowerOpener opener_;
    mutable std::mutex mutex_;
    std::string reason_;                                 // guarded by mutex_
    bool following_ = false;                             // guarded by mutex_
    std::shared_ptr<inference::StepFollower> follower_;  // set once by start()
    std::jthread thread_;
};

// The default opener: inference::open_follower over the settings' model and backend.
Result<std::unique_ptr<inference::StepFollower>> open_follower_for(const ModelSettings& settings);

// Where a node's settings put it: true for node 1 and up of several.
bool is_follower_node(const ModelSettings& settings);

}  // namespace sluice::app
