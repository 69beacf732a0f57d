#pragma once
// The PostgreSQL source's state, shared by its snapshot half (postgres_source.cpp) and its
// streaming half (pg_stream.cpp).
//
// Thread safety: owned by the source's thread; wake_fd is written from any thread.

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "connectors/detail/pg_util.h"
#include "connectors/detail/pgoutput.h"
#include "connectors/postgres_source.h"

namespace sluice::connectors::detail {

struct PgTable {
    std::string schema;
    std::string name;
    std::string display;    // "schema.table": the key prefix and the metadata's "table"
    std::string qualified;  // quoted for SQL
    RowMapping mapping;     // mapping.key resolved
    std::vector<PgColumn> columns;  // in table order
    // The columns the mapping reads (every column when it names no text columns): a change
    // whose relation lacks one is an error record, not a document missing part of its row.
    std::vector<std::string> mapped;
    std::string key_type;  // format_type() of the key column, for casts of key literals
};

// An event of a committed transaction, with its place: transaction end LSN and index inside it.
struct BufferedEvent {
    std::uint64_t txn_end = 0;
    std::uint32_t index = 0;
    bool last = false;  // the transaction's last event
    bool is_error = false;
    ChangeEvent event;
    ErrorRecord error;
};

// The connection parameters beyond the conninfo: the password from the source's connection
// (a secret kept out of the conninfo, so out of every listing) and, for the replication
// connection, replication=database.
inline std::vector<std::pair<std::string, std::string>> connect_params(
    const PostgresSourceConfig& config, bool replication) {
    std::vector<std::pair<std::string, std::string>> out;
    if (!config.password.empty()) {
        out.emplace_back("password", config.password);
    }
    if (replication) {
        out.emplace_back("replication", "database");
    }
    return out;
}

struct PostgresState {
    PostgresSourceConfig config;
    std::vector<PgTable> tables;
    PgConn sql;   // queries: snapshot pages, re-reads, slot management
    PgConn repl;  // replication=database: slot creation, then streaming

    // Snapshot: an open REPEATABLE READ transaction on `sql` for the snapshot at this LSN.
    bool snapshot_open = false;
    std::uint64_t snapshot_lsn = 0;

    // Streaming.
    bool streaming = false;
    std::uint64_t floor = 0;          // the buffer holds every transaction ending after this
    std::uint64_t acknowledged = 0;   // confirmed to the server (flush position)
    std::uint64_t received = 0;       // the latest WAL position seen in the stream
    std::uint64_t progress = 0;       // a position with nothing undelivered before it
    std::deque<BufferedEvent> buffer;
    std::vector<BufferedEvent> current;  // the transaction being received
    bool in_txn = false;
    std::map<std::uint32_t, PgRelation> relations;
    std::chrono::steady_clock::time_point last_status{};
    int wake_fd = -1;

    PostgresState() = default;
    ~PostgresState();
    PostgresState(const PostgresState&) = delete;
    PostgresState& operator=(const PostgresState&) = delete;

    // Reconnects `sql` when it was lost.
    Status ensure_sql();
    const PgTable* table_by_name(const std::string& schema, const std::string& name) const;
    // The row with this key as it is now; nullopt when it does not exist.
    Result<std::optional<Row>> reread(const PgTable& table, const std::string& key);

    // pg_stream.cpp
    Status start_stream(std::uint64_t start);
    void stop_stream();
    // Reads and decodes what has arrived, without blocking. kUnavailable when the stream broke.
    Status pump();
    Status send_status(bool reply_requested);
};

// A column value as JSON, by type: integers, floats and numerics as numbers, booleans as
// booleans, everything else as its text.
nlohmann::json pg_value_json(std::uint32_t type_oid, const std::string& text);

// Row `row_number` of a query result in text format, as the server's output functions write
// each value (what pgoutput sends too), with the result's column names and types. Reading rows
// with SELECT * this way sees the table's columns as they are now, not as they were at open().
Row result_row(const PGresult* result, int row_number);

// An upsert for a row of `table`.
ChangeEvent pg_upsert(const PgTable& table, const Row& row, const std::string& key,
                      std::string offset);

}  // namespace sluice::connectors::detail
