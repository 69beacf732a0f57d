#pragma once
// The members a JSON object read from outside (a request, a stored definition) may hold. One
// outside them is refused rather than ignored, so that a misspelt member ("tool" for "tools",
// "corection") is a 400 naming it, never a definition stored or a request served as if the
// member were absent.
//
// Thread safety: a pure function.

#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/result.h"

namespace sluice::agents::detail {

// kInvalidArgument naming the first member of the object `value` outside `known`, after `what`:
//   agent: unknown field 'tool' (expected name, endpoint, instructions, tools, ...)
inline Status refuse_unknown_fields(const nlohmann::json& value, std::string_view what,
                                    std::initializer_list<std::string_view> known) {
    for (const auto& [key, unused] : value.items()) {
        bool found = false;
        for (std::string_view name : known) {
            found = found || key == name;
        }
        if (found) {
            continue;
        }
        std::string expected;
        for (std::string_view name : known) {
            expected.append(expected.empty() ? "" : ", ").append(name);
        }
        return invalid_argument(std::string(what) + ": unknown field '" + key + "' (expected " +
                                expected + ")");
    }
    return Status();
}

}  // namespace sluice::agents::detail
