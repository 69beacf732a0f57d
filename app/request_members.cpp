#include "app/request_members.h"

namespace sluice::app {

Status check_keys(const nlohmann::json& body, const std::set<std::string>& accepted,
                  const std::set<std::string>& ignored) {
    std::string unknown;
    for (const auto& [key, value] : body.items()) {
        if (!accepted.contains(key) && !ignored.contains(key)) {
            unknown += (unknown.empty() ? "'" : ", '") + key + "'";
        }
    }
    if (unknown.empty()) {
        return Status::ok_status();
    }
    std::string listed;
    for (const auto& name : accepted) {
        listed += (listed.empty() ? "" : ", ") + name;
    }
    return invalid_argument("unrecognized request parameters: " + unknown +
                            "; accepted: " + (listed.empty() ? "none" : listed));
}

}  // namespace sluice::app
