#pragma once
// Model commands:
//   sluice model inspect DIR [--json]      config, parameter counts, tensors, bytes per dtype,
//                                          KV-cache bytes per token
//   sluice model forward --model DIR --ids 1,2,3 [--weights ...]
//                                          one JSON object {"logits": [[...], ...]}, a row of
//                                          float32 logits per input position
//   sluice model init-tiny --out DIR [--preset tiny|small] [--seed N] [--dtype f32|bf16]
//                                          writes a random DBRX checkpoint
//   sluice generate --model DIR --prompt-ids 1,2,3 [--max-tokens N] [--temperature T]
//                   [--seed S] [sampling flags] [--json]
//                                          generated ids, usage and timings
// Errors print `sluice <command>: <status>` on stderr and exit 1.

#include <cstdint>
#include <string>
#include <vector>

#include "app/cli.h"
#include "common/result.h"

namespace sluice::app {

// Parses "1,2,3" (spaces allowed) into token ids; kInvalidArgument naming the bad item.
Result<std::vector<int32_t>> parse_id_list(const std::string& text);

void add_model_commands(Cli& cli);

}  // namespace sluice::app
