#include "connectors/source.h"

namespace sluice::connectors {

std::string_view error_policy_name(ErrorPolicy policy) {
    return policy == ErrorPolicy::kPause ? "pause" : "skip";
}

Result<ErrorPolicy> parse_error_policy(std::string_view name) {
    if (name == "skip") {
        return ErrorPolicy::kSkip;
    }
    if (name == "pause") {
        return ErrorPolicy::kPause;
    }
    return invalid_argument("error policy '" + std::string(name) +
                            "': expected 'skip' or 'pause'");
}

Result<ErrorPolicy> error_policy_from_json(const nlohmann::json& value) {
    if (!value.is_string()) {
        return invalid_argument("on_error: expected 'skip' or 'pause'");
    }
    auto policy = parse_error_policy(value.get<std::string>());
    if (!policy.ok()) {
        return policy.status().with_context("on_error");
    }
    return policy;
}

}  // namespace sluice::connectors
