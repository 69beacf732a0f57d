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
    return plan == ParallelPlan::kExpert ? "expert" : "tensor";
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
    if (config.tensor > 1 && config.expert > 1 && config.tensor != config.expert) {
        return invalid_argument("config field 'parallel': tensor " + std::to_string(config.tensor) +
                                " and expert " + std::to_string(config.expert) +
                                " differ; give one of them, or both equal (the expert plan)");
    }
    for (size_t i = 0; i < config.nodes.size(); ++i) {
        SLUICE_RETURN_IF_ERROR(validate_node(config.nodes[i], i));
    }
    return Status::ok_status();
}

}  // namespace sluice::inference
