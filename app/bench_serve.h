#pragma once
// `sluice bench serve [--model DIR] [--backend cpu|cuda] [--weights FORMAT] [--clients N]
// [--json]`: the serving engine end to end over HTTP (options: serve_bench_options.h). It starts
// the OpenAI-compatible server in-process on a free port and drives it with streaming clients,
// as users' tools would:
//   1. batch 1: one client, requests one after another (the baseline);
//   2. N concurrent clients with a mix of prompt and output lengths: requests/s, output
//      tokens/s, time to first token and inter-token latency (p50, p99);
//   3. a long shared prefix (a document or system prompt of --prefix-tokens tokens): time to
//      first token cold, then warm from the prefix cache;
//   4. overload: a burst of 4N requests against a queue of N: how fast 429 answers come and
//      whether every accepted request finished.
//
// Without --model it writes the `small` random preset to a temporary folder and removes it
// afterwards. The table and the JSON name the backend and its device. `--backend cuda` where
// this build has no CUDA backend or no GPU is visible exits 2 with a message before anything is
// written or measured. On cuda three untimed requests run first and the batch-1 phase runs the
// whole prompt/output mix on prompts of its own (serve_bench_options.cpp says why); on cpu the
// phases are as before.

#include "app/cli.h"

namespace sluice::app {

void add_serve_bench(Cli& cli);

}  // namespace sluice::app
