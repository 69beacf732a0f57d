#pragma once
// What an audit checkpoint signature covers; shared by the writer and the verifier.

#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::governance::detail {

// Version 2, what the log signs: "sluice-audit-checkpoint-v2\n<seq>\n<hex hash>\n<every>",
// where <every> is the writer's checkpoint interval, so that verify knows, from signed data,
// where the next checkpoint must be. `checkpoint_every` 0 gives version 1,
// "sluice-audit-checkpoint-v1\n<seq>\n<hex hash>", which checkpoints written before the interval
// was recorded carry. Versioned so that one format cannot be confused with another.
std::string audit_checkpoint_message(std::int64_t seq, std::string_view hash,
                                     std::int64_t checkpoint_every);

}  // namespace sluice::governance::detail
