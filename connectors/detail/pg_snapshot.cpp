// The PostgreSQL source's initial snapshot (pg_snapshot.h).
#include "connectors/detail/pg_snapshot.h"

#include <chrono>
#include <thread>

#include "common/log.h"

namespace sluice::connectors::detail {

std::string column_gone_message(const PgTable& table, const std::string& column) {
    return "table '" + table.display + "' has no column '" + column +
           "' any more (dropped or renamed?); the source's mapping reads it";
}

// The slot's confirmed position, or nullopt when the slot does not exist.
Result<std::optional<std::uint64_t>> slot_position(PostgresState& state) {
    SLUICE_RETURN_IF_ERROR(state.ensure_sql());
    SLUICE_ASSIGN_OR_RETURN(
        PgResult result,
        pg_exec_params(state.sql.get(),
                       "SELECT confirmed_flush_lsn::text FROM pg_replication_slots "
                       "WHERE slot_name = $1",
                       {state.config.slot}, PGRES_TUPLES_OK, "reading the replication slot"));
    if (PQntuples(result.get()) == 0) {
        return std::optional<std::uint64_t>();
    }
    SLUICE_ASSIGN_OR_RETURN(std::uint64_t lsn, parse_lsn(PQgetvalue(result.get(), 0, 0)));
    return std::optional<std::uint64_t>(lsn);
}

// Drops the slot if it exists. A walsender outlives its closed connection briefly, and the slot
// stays "active" until it exits: retry for a few seconds.
Status drop_slot_if_exists(PostgresState& state) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (true) {
        SLUICE_RETURN_IF_ERROR(state.ensure_sql());
        auto dropped =
            pg_exec_params(state.sql.get(),
                           "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                           "WHERE slot_name = $1",
                           {state.config.slot}, PGRES_TUPLES_OK, "dropping the replication slot");
        if (dropped.ok() || dropped.status().code() != StatusCode::kUnavailable ||
            std::chrono::steady_clock::now() >= deadline) {
            return dropped.status();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

void end_snapshot(PostgresState& state) {
    if (state.snapshot_open && state.sql != nullptr) {
        PgResult(PQexec(state.sql.get(), "ROLLBACK"));
    }
    state.snapshot_open = false;
}

Result<std::uint64_t> begin_snapshot(PostgresState& state) {
    state.stop_stream();
    end_snapshot(state);
    SLUICE_RETURN_IF_ERROR(drop_slot_if_exists(state));
    SLUICE_ASSIGN_OR_RETURN(state.repl,
                            pg_connect(state.config.conninfo, connect_params(state.config, true)));
    SLUICE_ASSIGN_OR_RETURN(
        PgResult created,
        pg_exec(state.repl.get(),
                "CREATE_REPLICATION_SLOT " + pg_identifier(state.repl.get(), state.config.slot) +
                    " LOGICAL pgoutput EXPORT_SNAPSHOT",
                PGRES_TUPLES_OK, "creating the replication slot"));
    SLUICE_ASSIGN_OR_RETURN(std::uint64_t lsn, parse_lsn(PQgetvalue(created.get(), 0, 1)));
    const std::string snapshot = PQgetvalue(created.get(), 0, 2);
    SLUICE_RETURN_IF_ERROR(pg_exec(state.sql.get(),
                                   "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                                   PGRES_COMMAND_OK, "beginning the snapshot")
                               .status());
    SLUICE_RETURN_IF_ERROR(
        pg_exec(state.sql.get(),
                "SET TRANSACTION SNAPSHOT " + pg_literal(state.sql.get(), snapshot),
                PGRES_COMMAND_OK, "importing the snapshot")
            .status());
    state.snapshot_open = true;
    state.snapshot_lsn = lsn;
    state.acknowledged = lsn;
    log::info("connectors.postgres", "snapshot begins",
              {{"slot", state.config.slot}, {"consistent_point", lsn_to_string(lsn)}});
    return lsn;
}

namespace {

// The first column the mapping reads that a row read with SELECT * does not have (dropped or
// renamed since open()), if any.
std::optional<std::string> missing_column(const PgTable& table, const Row& row) {
    for (const std::string& column : table.mapped) {
        if (row.find(column) == nullptr) {
            return column;
        }
    }
    return std::nullopt;
}

std::string schema_error(const PgTable& table, const Status& status) {
    return "cannot read table '" + table.display + "' as mapped (dropped, or its key column " +
           "dropped or renamed?): " + status.message();
}

int column_number(const PGresult* result, const std::string& name) {
    for (int c = 0; c < PQnfields(result); ++c) {
        if (name == PQfname(result, c)) {
            return c;
        }
    }
    return -1;
}

// One page of the snapshot: up to `limit` rows of `table` after key `after`, in key order, every
// column in text form (SELECT *: the columns as they are now, so that a column dropped since
// open() is missing from the rows instead of failing the query). kNotFound when the table or its
// key column is gone. The query runs under a savepoint: its failure must not abort the
// snapshot's transaction, which holds the exported snapshot.
Result<PgResult> snapshot_page(PostgresState& state, const PgTable& table,
                               const std::optional<std::string>& after, std::size_t limit) {
    PGconn* conn = state.sql.get();
    const std::string key = table.qualified + "." + pg_identifier(conn, table.mapping.key);
    std::string sql = "SELECT * FROM " + table.qualified + " WHERE " + key + " IS NOT NULL";
    std::vector<std::string> params;
    if (after) {
        sql += " AND " + key + " > $1::" + table.key_type;
        params.push_back(*after);
    }
    sql += " ORDER BY " + key + " LIMIT " + std::to_string(limit);
    SLUICE_RETURN_IF_ERROR(
        pg_exec(conn, "SAVEPOINT sluice_page", PGRES_COMMAND_OK, "snapshot savepoint").status());
    auto page =
        pg_exec_params(conn, sql, params, PGRES_TUPLES_OK, "reading snapshot of " + table.display);
    if (!page.ok()) {
        SLUICE_RETURN_IF_ERROR(pg_exec(conn, "ROLLBACK TO SAVEPOINT sluice_page", PGRES_COMMAND_OK,
                                       "snapshot savepoint")
                                   .status());
        return page.status();
    }
    SLUICE_RETURN_IF_ERROR(
        pg_exec(conn, "RELEASE SAVEPOINT sluice_page", PGRES_COMMAND_OK, "snapshot savepoint")
            .status());
    if (column_number(page->get(), table.mapping.key) < 0) {
        return not_found("table '" + table.display + "' has no key column '" + table.mapping.key +
                         "'");
    }
    return page;
}

Result<std::int64_t> null_key_rows(PostgresState& state, const PgTable& table) {
    PGconn* conn = state.sql.get();
    SLUICE_ASSIGN_OR_RETURN(
        PgResult result,
        pg_exec(conn,
                "SELECT count(*) FROM " + table.qualified + " WHERE " + table.qualified + "." +
                    pg_identifier(conn, table.mapping.key) + " IS NULL",
                PGRES_TUPLES_OK, "counting rows of " + table.display + " without a key"));
    return std::stoll(PQgetvalue(result.get(), 0, 0));
}

// Pausing ends the snapshot's transaction: the locks it holds on the tables read so far would
// make the ALTER TABLE that fixes the table wait for the pause to end. The next poll reads the
// rest as it is then, and streaming from the consistent point replays what came after it.
void pause_snapshot(PostgresState& state, Batch& batch) {
    batch.paused = true;
    end_snapshot(state);
}

}  // namespace

Status read_snapshot(PostgresState& state, SnapshotCursor& cursor, std::size_t limit,
                     Batch& batch) {
    if (!state.snapshot_open || state.snapshot_lsn != cursor.lsn) {
        // Not the snapshot this process exported (a restart, or an older checkpoint): read the
        // rows as they are now; streaming from the consistent point replays what came after.
        end_snapshot(state);
        SLUICE_ASSIGN_OR_RETURN(auto slot, slot_position(state));
        if (!slot || *slot > cursor.lsn) {
            return failed_precondition("replication slot '" + state.config.slot +
                                       "' is gone or past the snapshot's consistent point; "
                                       "start again from \"\"");
        }
        SLUICE_RETURN_IF_ERROR(pg_exec(state.sql.get(),
                                       "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                                       PGRES_COMMAND_OK, "beginning a snapshot read")
                                   .status());
        state.snapshot_open = true;
        state.snapshot_lsn = cursor.lsn;
    }
    // Error records count against the limit too: a table that lost a column would otherwise
    // make one batch of all its rows.
    while (batch.events.size() + batch.errors.size() < limit &&
           cursor.table < state.tables.size()) {
        const PgTable& table = state.tables[cursor.table];
        const std::size_t want = limit - batch.events.size() - batch.errors.size();
        auto page = snapshot_page(state, table, cursor.after, want);
        if (!page.ok() && page.status().code() != StatusCode::kNotFound) {
            return page.status();
        }
        if (!page.ok()) {
            // The table, or its key column, is gone or renamed: no row of it can be read as
            // mapped. Reported for the table, which is skipped, or held here, by the policy.
            batch.errors.push_back(ErrorRecord{table.display, schema_error(table, page.status()),
                                               "snapshot:" + table.display});
            if (state.config.on_error == ErrorPolicy::kPause) {
                pause_snapshot(state, batch);
                return Status();
            }
            ++cursor.table;
            cursor.after.reset();
            continue;
        }
        const PGresult* rows = page->get();
        const int key_column = column_number(rows, table.mapping.key);
        const int count = PQntuples(rows);
        for (int r = 0; r < count; ++r) {
            Row row = result_row(rows, r);
            const std::string key = json_scalar_text(row.values[key_column]);
            const std::string offset = "snapshot:" + table.display + "/" + key;
            if (auto missing = missing_column(table, row)) {
                batch.errors.push_back(ErrorRecord{table.display + "/" + key,
                                                   column_gone_message(table, *missing), offset});
                if (state.config.on_error == ErrorPolicy::kPause) {
                    pause_snapshot(state, batch);  // `after` stays before this row
                    return Status();
                }
            } else {
                batch.events.push_back(pg_upsert(table, row, key, offset));
            }
            cursor.after = PQgetvalue(rows, r, key_column);
        }
        if (static_cast<std::size_t>(count) < want) {
            // The pages never return rows whose key is null (no key, no document): they are
            // reported once the table's keyed rows are read.
            SLUICE_ASSIGN_OR_RETURN(std::int64_t unkeyed, null_key_rows(state, table));
            if (unkeyed > 0) {
                batch.errors.push_back(
                    ErrorRecord{table.display,
                                std::to_string(unkeyed) + " row(s) of table '" + table.display +
                                    "' have a null key column '" + table.mapping.key +
                                    "' and cannot be keyed; they are left out",
                                "snapshot:" + table.display});
                if (state.config.on_error == ErrorPolicy::kPause) {
                    pause_snapshot(state, batch);  // the table's keyed rows stay delivered
                    return Status();
                }
            }
            ++cursor.table;
            cursor.after.reset();
        }
    }
    if (cursor.table >= state.tables.size()) {
        end_snapshot(state);
        state.stop_stream();  // the exporting connection; streaming reconnects
        cursor.done = true;
    }
    return Status();
}

}  // namespace sluice::connectors::detail
