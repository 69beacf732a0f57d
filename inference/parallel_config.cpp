#include "inference/parallel_config.h"

#include <charconv>

namespace sluice::inference {

namespace {

Status validate_node(const std::string& node, size_t index) {
    const std::string field = "parallel.nodes[" + std::to_string(index) + "]";
    const size_t colon = node.rfind(':');
    if (colon == std::string::npos || colon == 0) {
        return invalid_argument("config field '" + field + "': '" + node +
                                "' is not host:port");
    }
    const std::string port = node.substr(colon + 1);
    int value = 0;
    const auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (error != std::errc() || end != port.data() + port.size() || value < 1 || value > 65535) {
        return invalid_argument("config field '" + field + "': port '" + port +
                                "' is not a number in 1..65535");
    }
    return Status::ok_status();
}

}  // namespace

const char* parallel_plan_name(ParallelPlan plan) {
    switch (plan) {
        case ParallelPlan::kTensor:
            return "tensor";
        case ParallelPlan::kExpert:
            return "expert";
        case ParallelPlan::kGrid:
            return "grid";
    }
    return "?";
}

Status validate_parallel_config(const ParallelConfig& config) {
    if (config.tensor < 1) {
        return invalid_argument("config field 'parallel.tensor': " +
                                std::to_string(config.tensor) + ", expected at least 1");
    }
    if (config.expert < 1) {
        return invalid_argument("config field 'parallel.expert': " +
                                std::to_string(config.expert) + ", expected at least 1");
    }
    // In 64 bits: two valid sizes can overflow an int.
    const int64_t ranks = int64_t{config.tensor} * config.expert;
    if (ranks > kMaxParallelRanks) {
        return invalid_argument("config field 'parallel': tensor " + std::to_string(config.tensor) +
                                " x expert " + std::to_string(config.expert) + " = " +
                                std::to_string(ranks) + " ranks, expected at most " +
                                std::to_string(kMaxParallelRanks));
    }
    for (size_t i = 0; i < config.nodes.size(); ++i) {
        SLUICE_RETURN_IF_ERROR(validate_node(config.nodes[i], i));
    }
    if (config.node < 0 || config.node >= config.n_nodes()) {
        return invalid_argument(
            "config field 'parallel.node': " + std::to_string(config.node) +
            ", but parallel.nodes names " + std::to_string(config.n_nodes()) +
            (config.n_nodes() == 1
                 ? " node (index 0)"
                 : " nodes (indices 0.." + std::to_string(config.n_nodes() - 1) + ")"));
    }
    if (ranks % config.n_nodes() != 0) {
        return invalid_argument(
            "config field 'parallel.nodes': " + std::to_string(config.n_nodes()) +
            " nodes cannot share " + std::to_string(ranks) +
            " ranks evenly (every node brings the same number of GPUs)");
    }
    if (config.join_timeout_s < 1) {
        return invalid_argument(
            "config field 'parallel.join_timeout_s': " + std::to_string(config.join_timeout_s) +
            ", expected at least 1 second");
    }
    return Status::ok_status();
}

Status check_runs_engine(const ParallelConfig& config) {
    if (config.node != 0) {
        return failed_precondition("config field 'parallel.node': node " +
                                   std::to_string(config.node) +
                                   " follows node 0's steps; open it as a follower, node 0 runs "
                                   "the engine");
    }
    return Status::ok_status();
}

Status check_follows(const ParallelConfig& config) {
    if (!config.multi_node() || config.node == 0) {
        return failed_precondition(
            "config field 'parallel.node': node " + std::to_string(config.node) + " of " +
            std::to_string(config.n_nodes()) +
            " runs the engine itself; only nodes 1 and up of several follow node 0");
    }
    return Status::ok_status();
}

Status check_parallel_fits_model(const ParallelConfig& config, const ModelConfig& model) {
    // Attention is split by heads across every rank, so the field is whichever sets the count.
    if (model.n_head < config.n_ranks()) {
        std::string field = "'parallel.tensor': " + std::to_string(config.n_ranks()) + " ranks";
        if (config.plan() == ParallelPlan::kExpert) {
            field = "'parallel.expert': " + std::to_string(config.n_ranks()) + " ranks";
        } else if (config.plan() == ParallelPlan::kGrid) {
            field = "'parallel': tensor " + std::to_string(config.tensor) + " x expert " +
                    std::to_string(config.expert) + " = " + std::to_string(config.n_ranks()) +
                    " ranks";
        }
        return invalid_argument("config field " + field + ", but the model has only " +
                                std::to_string(model.n_head) + " attention heads");
    }
    if (model.n_expert < config.expert) {
        return invalid_argument("config field 'parallel.expert': " + std::to_string(config.expert) +
                                " expert groups, but the model has only " +
                                std::to_string(model.n_expert) + " experts");
    }
    if (model.n_ff < config.tensor) {
        return invalid_argument("config field 'parallel.tensor': " + std::to_string(config.tensor) +
                                " ranks per expert, but the model has only " +
                                std::to_string(model.n_ff) + " ffn columns per expert");
    }
    return Status::ok_status();
}

}  // namespace sluice::inference
