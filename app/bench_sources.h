#pragma once
// `sluice bench sources`: snapshot throughput of the SQLite and PostgreSQL sources on a
// 100,000-row table, and change-capture latency (p50/p99) from a producer's commit to the event
// being returned by poll() in a consumer that waits on the source. The PostgreSQL half starts a
// throwaway cluster (fsync on) and is skipped, with a note, when no server binaries exist.
//
// Thread safety: owned by the main thread.

#include "app/cli.h"

namespace sluice::app {

void add_sources_bench(Cli& cli);

}  // namespace sluice::app
