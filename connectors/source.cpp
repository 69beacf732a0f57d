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

}  // namespace sluice::connectors
