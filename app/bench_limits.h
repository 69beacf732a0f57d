#pragma once
// `sluice bench limits [--json] [--threads N]`: the cost of rate limits and token budgets on
// the model-call path. In a temporary data directory with 200 users in 10 groups and limits on
// each user, each group and the endpoint, N threads (default 8) each run (1) reserve + release
// (the in-memory check alone) and (2) reserve + settle (the check plus the durable usage row and
// its audit record), and report p50/p99 latency and calls per second; (3) all threads race for
// one nearly spent group budget and the overshoot is reported (it must be 0).

#include "app/cli.h"

namespace sluice::app {

void add_limits_bench(Cli& cli);

}  // namespace sluice::app
