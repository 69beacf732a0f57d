#pragma once
// What an audit checkpoint signature covers; shared by the writer and the verifier.

#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::governance::detail {

// "sluice-audit-checkpoint-v1\n<seq>\n<hex hash>": versioned so that a later format cannot be
// confused with this one.
std::string audit_checkpoint_message(std::int64_t seq, std::string_view hash);

}  // namespace sluice::governance::detail
