#include "app/follower_node.h"

#include <filesystem>

#include "app/model_host.h"
#include "common/log.h"
#include "inference/backend_factory.h"

namespace sluice::app {

bool is_follower_node(const ModelSettings& settings) {
    return settings.parallel.multi_node() && settings.parallel.node > 0;
}

Result<std::unique_ptr<inference::StepFollower>> open_follower_for(const ModelSettings& settings) {
    std::error_code ec;
    if (!std::filesystem::is_directory(settings.path, ec)) {
        return not_found("model folder '" + settings.path +
                         "' does not exist; every node needs the checkpoint at /model/path");
    }
    return inference::open_follower(settings.path, backend_options_for(settings));
}

FollowerNode::FollowerNode(ModelSettings settings, Readiness* readiness, FollowerOpener opener)
    : settings_(std::move(settings)), readiness_(readiness), opener_(std::move(opener)) {
    const inference::ParallelConfig& parallel = settings_.parallel;
    set_state(false, "node " + std::to_string(parallel.node) + " of " +
                         std::to_string(parallel.n_nodes()) + " has not joined node 0 (" +
                         parallel.nodes.front() + ") yet");
}

FollowerNode::~FollowerNode() {
    if (follower_ != nullptr) {
        follower_->stop();
    }
    // thread_ joins as it is destroyed, before follower_.
}

void FollowerNode::set_state(bool ready, std::string reason) {
    {
        std::lock_guard lock(mutex_);
        following_ = ready;
        reason_ = reason;
    }
    if (readiness_ != nullptr) {
        readiness_->set("model", ready, std::move(reason));
    }
}

Status FollowerNode::start() {
    const inference::ParallelConfig& parallel = settings_.parallel;
    const std::string node =
        "node " + std::to_string(parallel.node) + " of " + std::to_string(parallel.n_nodes());
    set_state(false, node + " is loading its shards from " + settings_.path +
                         " and joining node 0 (" + parallel.nodes.front() + ")");
    Result<std::unique_ptr<inference::StepFollower>> opened = opener_(settings_);
    if (!opened.ok()) {
        log::error("model", "this node could not join the parallel group",
                   {{"node", parallel.node}, {"error", opened.status().message()}});
        set_state(false, node + " could not join the parallel group: " + opened.status().message());
        return opened.status();
    }
    {
        std::lock_guard lock(mutex_);
        follower_ = std::move(*opened);
    }
    const int first = parallel.node * parallel.ranks_per_node();
    const std::string ranks = "ranks " + std::to_string(first) + ".." +
                              std::to_string(first + parallel.ranks_per_node() - 1) + " of " +
                              std::to_string(parallel.n_ranks());
    log::info(
        "model", "following node 0's steps",
        {{"node", parallel.node}, {"ranks", ranks}, {"backend", follower_->backend().name()}});
    set_state(true, node + " follows node 0's steps (" + ranks + "); requests go to node 0");
    thread_ = std::jthread([this, node] {
        const Status ended = follower_->run();
        if (ended.ok()) {
            log::info("model", "the parallel group ended", {{"node", settings_.parallel.node}});
            set_state(false, node +
                                 " no longer follows: node 0 ended the group or this node "
                                 "is stopping; restart both to serve again");
        } else {
            log::error("model", "the parallel group failed",
                       {{"node", settings_.parallel.node}, {"error", ended.message()}});
            set_state(false, node + " stopped: " + ended.message());
        }
    });
    return Status::ok_status();
}

std::string FollowerNode::unavailable_reason() const {
    std::lock_guard lock(mutex_);
    if (following_) {
        return "this server is node " + std::to_string(settings_.parallel.node) + " of " +
               std::to_string(settings_.parallel.n_nodes()) +
               ", which follows node 0's steps: send model requests to node 0's server";
    }
    return reason_;
}

int64_t FollowerNode::calls() const {
    std::lock_guard lock(mutex_);
    return follower_ != nullptr ? follower_->calls() : 0;
}

bool FollowerNode::following() const {
    std::lock_guard lock(mutex_);
    return following_;
}

}  // namespace sluice::app
