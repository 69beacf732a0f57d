#pragma once
// `sluice bench grammar [--json] [--schemas DIR] [--walks N] [--tokens N]`: structured-output
// cost on the full DBRX vocabulary (100,352 tokens).
//
// For every JSON schema in the folder (default: the repository's tests/inference/data/schemas):
// grammar compile time (including the per-position token mask cache), then `walks` sequences of
// up to `tokens` tokens that follow random allowed tokens, timing each fill_next_token_mask
// call. Reported: median and p99 mask time per token over all schemas, compile time median and
// max, cache memory. Then end to end on the random tiny model: decode tokens/s of 8 sequences
// with and without a grammar over the same schemas, and the slowdown.

#include "app/cli.h"

namespace sluice::app {

void add_grammar_bench(Cli& cli);

}  // namespace sluice::app
