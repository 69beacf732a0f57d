#pragma once
// `sluice bench decode [--model DIR] [--json]`: CPU prefill and decode throughput of DBRX at
// batch 1 and 8, with bf16 and int8 weights, read against the machine's memory bandwidth.
//
// Without --model it writes the `small` random preset (~1B parameters, bf16) to a temporary
// folder and removes it afterwards. Decode at batch 1 reads every active weight once per token,
// so active-weight bytes x tokens/s over the triad bandwidth (bench_memory.h) says how close the
// kernels come to the memory bound.

#include "app/cli.h"

namespace sluice::app {

void add_decode_bench(Cli& cli);

}  // namespace sluice::app
