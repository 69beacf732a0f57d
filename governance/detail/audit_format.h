#pragma once
// What an audit checkpoint signature covers, and the interval a new writer takes from the last
// one; shared by the writer, the key rotation and the verifier.

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace sluice::governance::detail {

class Database;

// Version 2, what the log signs: "sluice-audit-checkpoint-v2\n<seq>\n<hex hash>\n<every>",
// where <every> is the writer's checkpoint interval, so that verify knows, from signed data,
// where the next checkpoint must be. `checkpoint_every` 0 gives version 1,
// "sluice-audit-checkpoint-v1\n<seq>\n<hex hash>", which checkpoints written before the interval
// was recorded carry. Versioned so that one format cannot be confused with another.
std::string audit_checkpoint_message(std::int64_t seq, std::string_view hash,
                                     std::int64_t checkpoint_every);

// The interval that the log's last checkpoint signed, for a writer opened with checkpoint_every
// 0: an offline tool writing beside the server then signs where the server does. Only a
// checkpoint whose signature holds under `public_key` (raw) is believed; otherwise, or when none
// records one, the default (1000).
Result<std::int64_t> inherited_checkpoint_every(Database& db, std::string_view public_key);

}  // namespace sluice::governance::detail
