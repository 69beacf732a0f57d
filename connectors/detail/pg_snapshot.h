#pragma once
// The PostgreSQL source's initial snapshot: the replication slot whose exported snapshot the
// first poll reads, and the pages that read each configured table in key order inside it, with
// the bad-input policy (docs/connectors.md): a row missing a mapped column, a table that cannot
// be read as mapped and rows without a key are error records, skipped or paused on.
//
// Thread safety: like PostgresState, used by one thread at a time.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "common/result.h"
#include "connectors/detail/postgres_state.h"
#include "connectors/source.h"

namespace sluice::connectors::detail {

// Where a snapshot read stands.
struct SnapshotCursor {
    std::uint64_t lsn = 0;             // the consistent point the snapshot reads at
    std::size_t table = 0;             // index into the configured tables
    std::optional<std::string> after;  // the last key of `table` delivered
    bool done = false;                 // every table read: streaming from `lsn` follows
};

// The slot's confirmed position, or nullopt when the slot does not exist.
Result<std::optional<std::uint64_t>> slot_position(PostgresState& state);

// Drops the slot if it exists (retrying while its walsender exits).
Status drop_slot_if_exists(PostgresState& state);

// Ends the snapshot's read transaction, if one is open.
void end_snapshot(PostgresState& state);

// A new slot with an exported snapshot, imported into a read transaction on `state.sql`; returns
// the slot's consistent point. Drops an existing slot of the same name first.
Result<std::uint64_t> begin_snapshot(PostgresState& state);

// Reads up to `limit` events and error records from `cursor` on into `batch`, advancing the
// cursor; `batch.paused` when the policy pauses on an error record. A snapshot that is not the
// one this process exported (a restart) is read as the tables are now, which streaming from the
// consistent point then corrects; kFailedPrecondition when the slot is gone or past it.
Status read_snapshot(PostgresState& state, SnapshotCursor& cursor, std::size_t limit, Batch& batch);

// The error message for a row of `table` missing the mapped `column` (snapshot and stream).
std::string column_gone_message(const PgTable& table, const std::string& column);

}  // namespace sluice::connectors::detail
