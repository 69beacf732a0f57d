#pragma once
// `sluice source add | list | status | poll | bind | sync | remove`: defining sources in a data
// directory, binding them to the index they feed, looking at their change feeds and syncing.
//
//   sluice source add NAME --type file|sqlite|postgres|http --config JSON [--index I] --data-dir D
//   sluice source list --data-dir D
//   sluice source status NAME --data-dir D
//   sluice source poll NAME [--from CHECKPOINT] [--max N] [--ack] --data-dir D
//   sluice source bind NAME --index I --data-dir D
//   sluice source sync NAME [--index I] [--max-batch N] --data-dir D
//   sluice source remove NAME --data-dir D
//
// poll prints one JSON line per event ({"key", "op", "offset", "document"}) or error record
// ({"error", "key", "offset"}), then {"checkpoint", "caught_up", "paused"} last. Polling a
// postgres source from "" re-creates its replication slot (a new snapshot). sync runs the sync
// engine in triggered mode until the source is caught up and prints the sync status as JSON;
// it needs the data directory to itself (a running server syncs bound sources continuously).
//
// Thread safety: owned by the main thread.

#include "app/cli.h"

namespace sluice::app {

void add_source_commands(Cli& cli);

}  // namespace sluice::app
