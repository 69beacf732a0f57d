#pragma once
// Checks a tool call's arguments against the tool's JSON Schema before the tool runs, so that a
// model's malformed call comes back to it as one clear sentence instead of reaching a tool.
//
// Supported keywords (what tool schemas use; the grammar that constrains generation accepts the
// same set): type (one or a list), properties, required, additionalProperties (false or a
// schema), items, enum, const, minimum, maximum, minLength, maxLength, minItems, maxItems.
// Unknown keywords are ignored, as JSON Schema says.
//
// Thread safety: pure functions.

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace sluice::agents {

// kInvalidArgument naming where and what: "arguments.limit: expected integer, found string".
Status check_arguments(const nlohmann::json& schema, const nlohmann::json& value);

}  // namespace sluice::agents
