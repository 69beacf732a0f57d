#pragma once
// `sluice generate`: runs a DBRX checkpoint on the CPU from the command line.
//
//   sluice generate --model DIR (--prompt TEXT | --prompt-ids 1,2,3) [--chat] [--system TEXT]
//                   [--max-tokens N] [--temperature T] [--seed S] [sampling flags]
//                   [--stop TEXT]... [--stop-id ID]... [--json]
//
// Text prompts are encoded with the checkpoint's own tokenizer (tokenizer.json in DIR) in
// ordinary mode; --chat renders the prompt as a user turn of the chat template and stops at the
// end of the assistant's turn. Text streams to stdout as it is generated; with --json one object
// is printed instead: ids, text, finish_reason, usage and timings (prefill and decode tokens/s).
// Errors print `sluice generate: <status>` on stderr and exit 1.

#include "app/cli.h"

namespace sluice::app {

void add_generate_command(Cli& cli);

}  // namespace sluice::app
