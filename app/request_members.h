#pragma once
// The members a JSON request body may hold. A member no route reads is refused rather than
// ignored, so that a misspelt one ("num_result", "temprature") is a 400 naming it and listing
// those taken, never a request served with defaults as if the setting had taken effect.
//
// Thread safety: a pure function.

#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "common/result.h"

namespace sluice::app {

// Refuses members of the object `body` outside `accepted` and `ignored` (taken for clients that
// send them, without effect), kInvalidArgument naming every one and listing `accepted`:
//   unrecognized request parameters: 'num_result'; accepted: columns, filters, num_results
Status check_keys(const nlohmann::json& body, const std::set<std::string>& accepted,
                  const std::set<std::string>& ignored);

}  // namespace sluice::app
