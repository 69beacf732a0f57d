#pragma once
// `sluice source add | list | status | poll | remove`: defining sources in a data directory and
// looking at their change feeds.
//
//   sluice source add NAME --type file|sqlite|postgres|http --config JSON --data-dir D
//   sluice source list --data-dir D
//   sluice source status NAME --data-dir D
//   sluice source poll NAME [--from CHECKPOINT] [--max N] [--ack] --data-dir D
//   sluice source remove NAME --data-dir D
//
// poll prints one JSON line per event ({"key", "op", "offset", "document"}) or error record
// ({"error", "key", "offset"}), then {"checkpoint", "caught_up", "paused"} last. Polling a
// postgres source from "" re-creates its replication slot (a new snapshot).
//
// Thread safety: owned by the main thread.

#include "app/cli.h"

namespace sluice::app {

void add_source_commands(Cli& cli);

}  // namespace sluice::app
