#pragma once
// `sluice bench sync`: the sync engine end to end, SQLite source → SourceSync → index, with the
// index's default settings (lexical-hash embedder, 256 dimensions, Flat, chunking on).
//
//   initial sync   rows/s for a table of --rows rows (default 100,000), triggered mode, and the
//                  share of the time spent reading the source, embedding, indexing (chunking,
//                  analysis, the synced RocksDB write, the in-memory update) and acknowledging
//   freshness      continuous mode: a producer commits one row at a time; the lag is from the
//                  start of the commit to the row being found by a lexical query on a word only
//                  it holds (p50, p99, max over --samples commits)
//
// Thread safety: owned by the main thread.

#include "app/cli.h"

namespace sluice::app {

void add_sync_bench(Cli& cli);

}  // namespace sluice::app
