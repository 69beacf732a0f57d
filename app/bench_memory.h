#pragma once
// `sluice bench memory`: the machine's memory bandwidth by a STREAM-style triad
// (a[i] = b[i] + s * c[i], 24 bytes counted per element), single-threaded and with every core.
// Decode on a CPU is bound by this number, so the decode benchmark is read against it.

#include "app/cli.h"

namespace sluice::app {

struct TriadResult {
    int threads = 0;
    double best_gb_s = 0;  // 1e9 bytes per second, STREAM's convention
};

// Runs the triad over three arrays of `elements` doubles, `repeats` times, keeps the best.
TriadResult measure_triad_bandwidth(int threads, std::size_t elements, int repeats);

void add_memory_bench(Cli& cli);

}  // namespace sluice::app
