#pragma once
// PostgresSource: PostgreSQL tables through logical replication (pgoutput).
//
// open() checks the tables and their columns, resolves each key (the configured column or the
// single-column primary key), and makes the publication cover exactly the configured tables.
//
// Polling from "" (re)creates the replication slot on a replication connection
// (replication=database) with CREATE_REPLICATION_SLOT ... LOGICAL pgoutput EXPORT_SNAPSHOT, then
// reads every table in pages inside a REPEATABLE READ transaction that imported the exported
// snapshot (SET TRANSACTION SNAPSHOT): the snapshot and the slot's consistent point L describe
// the same instant, so streaming from L afterwards neither loses nor repeats a change. A process
// that restarts in the middle of the snapshot no longer has the exported snapshot; it reads the
// remaining pages as they are now and then streams from L, which replays every change after L
// in commit order, so the consumer still converges on the tables' state.
//
// Streaming runs START_REPLICATION from the checkpoint's LSN and decodes Relation, Begin,
// Insert, Update, Delete, Commit and Truncate messages. Events are handed out only for committed
// transactions. An update that changes the key becomes delete(old key) + upsert(new key). An
// update whose new row leaves a TOASTed column out (unchanged) takes the value from the old row
// when the table has REPLICA IDENTITY FULL, and otherwise re-reads the row by key.
// TRUNCATE cannot be expressed as per-key events: it is an ErrorRecord naming the table.
//
// Checkpoints:
//   {"v":1,"snapshot":"L","t":I,"after":"K"}  snapshot of table I, rows with key > K left
//   {"v":1,"lsn":"S"}                          every transaction that ended at or before S
//   {"v":1,"lsn":"S","txn":"E","n":N}          ... and the first N events of the one ending at E
// The slot's confirmed LSN moves only in acknowledge(), so a restarted consumer that polls
// from its last committed checkpoint gets everything after it again and nothing before it.
// While the consumer is caught up, the source asks the server for its position every
// heartbeat_interval and moves the checkpoint to it, so that acknowledging an idle feed lets
// the slot release WAL written by other tables and databases.
//
// A lost connection (network, server restart) makes poll() return kUnavailable; the next poll
// reconnects and resumes from its checkpoint.
//
// The connection string is a secret: it is never logged, and status() leaves it out.
//
// Thread safety: owned by one thread; wake() from any thread.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "connectors/row_mapping.h"
#include "connectors/source.h"

namespace sluice::connectors {

// table: "schema.table", or "table" in schema public; mapping.key: a column, or empty for the
// single-column primary key.
using PostgresTableConfig = TableMapping;

struct PostgresSourceConfig {
    std::string conninfo;  // key=value or URI; a secret when it holds a password
    // The catalog connection whose secret is the password (so that the password is kept, and
    // access to it governed, as a connection's secret). The application resolves it into
    // `password` before open(); never part of the JSON form.
    std::string connection;
    std::string password;
    std::string slot;
    std::string publication;
    std::vector<PostgresTableConfig> tables;
    bool manage_publication = true;      // create it, or set its tables to `tables`
    bool replica_identity_full = false;  // ALTER TABLE ... REPLICA IDENTITY FULL in open()
    std::chrono::milliseconds heartbeat_interval{10000};
    // A row that cannot be read as mapped (the table's columns changed under the mapping)
    // becomes an ErrorRecord keyed by the row's key; one keyed "<schema>.<table>" stands for a
    // table whose snapshot pages cannot be read at all, for its rows with a null key, and for a
    // streamed change without a key value. skip goes on; pause stops the batch there until the
    // table or the mapping is fixed. The same policy holds for the snapshot and the stream, and
    // for TRUNCATE records.
    ErrorPolicy on_error = ErrorPolicy::kSkip;
};

// {"conninfo", "slot", "publication", "tables": [{"table", "key", "text", ...}],
// "manage_publication", "replica_identity_full", "heartbeat_ms", "connection",
// "on_error": "skip"|"pause"}.
// Errors: kInvalidArgument naming the field.
Result<PostgresSourceConfig> postgres_config_from_json(const nlohmann::json& value);
// With the connection string's password replaced by "***" unless `with_secrets`.
nlohmann::json to_json(const PostgresSourceConfig& config, bool with_secrets);

// "host=h password=p" → "host=h password=***"; "postgresql://u:p@h/db" → "postgresql://u:***@h/db".
std::string redact_conninfo(const std::string& conninfo);

// Where a connection string (key=value or URI) sends libpq, as libpq parses it: each server it
// names (every "host" and every "hostaddr") as "host:port" in lower case, the port the one given
// for it or 5432. `service` is true when it names a service of pg_service.conf, whose servers
// are not known from the string. No server named means libpq's default (a Unix socket of this
// machine, or PGHOST). Errors: kInvalidArgument with libpq's message when it does not parse.
struct ConninfoServers {
    std::vector<std::string> servers;
    bool service = false;
};
Result<ConninfoServers> conninfo_servers(const std::string& conninfo);

namespace detail {
struct PostgresState;
}

class PostgresSource final : public Source {
public:
    // Errors: kUnavailable (cannot connect), kNotFound (table, column), kInvalidArgument (no
    // usable key, bad slot or publication name), kPermissionDenied-like SQL errors as
    // kInvalidArgument with PostgreSQL's message.
    static Result<std::unique_ptr<PostgresSource>> open(PostgresSourceConfig config);
    ~PostgresSource() override;

    std::string_view kind() const override { return "postgres"; }
    Result<Batch> poll(std::string_view checkpoint, const PollOptions& options) override;
    Status acknowledge(std::string_view checkpoint) override;
    Result<bool> wait(std::chrono::milliseconds timeout) override;
    void wake() override;
    Result<nlohmann::json> status() override;

    // Drops the replication slot (and nothing else). For removing a source for good.
    Status drop_slot();

    explicit PostgresSource(std::unique_ptr<detail::PostgresState> state);

private:
    std::unique_ptr<detail::PostgresState> state_;
};

}  // namespace sluice::connectors
