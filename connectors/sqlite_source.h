#pragma once
// SqliteSource: change capture on tables of a SQLite database.
//
// open() installs, in one transaction, a change table and triggers on each configured table:
//
//   _sluice_changes(seq INTEGER PRIMARY KEY AUTOINCREMENT, tbl, op, key, ts)
//
// An insert or update records ('U', key); a delete records ('D', key); an update that changes
// the key records ('D', old key) then ('U', new key). The triggers are re-created on every open
// so that they follow the configuration; triggers for tables no longer configured are dropped.
//
// Checkpoints:
//   ""                                  start: snapshot every table, then changes
//   {"v":1,"hw":H,"t":I,"after":K}      snapshot of table I in progress, rows with key > K left;
//                                       H is the last change seq before the snapshot began
//   {"v":1,"seq":S}                     snapshot done, changes after seq S left
// The snapshot pages through each table by key (keyset pagination), one read transaction per
// poll; changes made while it runs have seq > H and are delivered after it, so the consumer
// converges on the database's state. A change row is turned into an event by reading the row as
// it is at poll time: 'U' for a row that no longer exists becomes a delete.
//
// Checkpoints also carry "file": the database file's identity (st_dev:st_ino). Each poll, wait()
// and status() compare the path's identity with the open file's; a file replaced by rename is
// opened again (capture installed in it, logged), and polling from a checkpoint of the old file
// is kFailedPrecondition (start again from "").
//
// Keys are "<table>/<key value>". Offsets are "snapshot:<table>/<key>" and "seq:<S>".
//
// acknowledge() deletes change rows up to the acknowledged seq (when prune_acknowledged) and
// records the acknowledged seq; polling from an older checkpoint is then kFailedPrecondition.
// One SqliteSource per database file when pruning.
//
// Thread safety: owned by one thread; wake() from any thread.

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "connectors/row_mapping.h"
#include "connectors/source.h"

namespace sluice::connectors {

// mapping.key: a column, "rowid", or empty for the single-column primary key.
using SqliteTableConfig = TableMapping;

struct SqliteSourceConfig {
    std::string path;
    std::vector<SqliteTableConfig> tables;
    bool prune_acknowledged = true;
    // A row that cannot be read as mapped (the table's columns changed under the mapping)
    // becomes an ErrorRecord keyed by the row's key ("<table>" during the snapshot): skip goes
    // on, pause stops the batch there until the table or the mapping is fixed.
    ErrorPolicy on_error = ErrorPolicy::kSkip;
    std::chrono::milliseconds wait_poll_interval{50};  // how often wait() looks for commits
};

// {"path", "tables": [{"table", "key", "text", "metadata", "acl_principals", "acl_groups",
// "acl"}], "prune_acknowledged", "on_error": "skip"|"pause"}. Errors: kInvalidArgument naming the field.
Result<SqliteSourceConfig> sqlite_config_from_json(const nlohmann::json& value);
nlohmann::json to_json(const SqliteSourceConfig& config);

// What remove_sqlite_capture() did to a database. Objects are named "trigger <name>" and
// "table <name>".
struct CaptureRemoval {
    std::vector<std::string> dropped;
    // Objects still in the database because it could not be written (read-only, locked, gone
    // or unreadable); `reason` says why and `cleanup_sql` is what removes them by hand.
    std::vector<std::string> left_behind;
    std::string reason;
    std::string cleanup_sql;
};

// Drops, in one transaction, every `_sluice_*` trigger and table that open() installs in the
// database at `path` (capture of a removed source; at most one source per database). When the
// database cannot be opened or written, nothing is dropped and the objects are reported in
// `left_behind`: those found by reading it, else those the configured `tables` would have.
// A database file that no longer exists has nothing to remove. Never fails: what could not be
// done is the result.
CaptureRemoval remove_sqlite_capture(const std::string& path,
                                     const std::vector<std::string>& tables);

namespace detail {
struct SqliteSourceState;
}

class SqliteSource final : public Source {
public:
    // Opens the database, checks that each table and mapped column exists, resolves keys and
    // installs the change table and triggers. Errors: kNotFound (file, table, column),
    // kInvalidArgument (no usable key), kIoError/kUnavailable from SQLite.
    static Result<std::unique_ptr<SqliteSource>> open(SqliteSourceConfig config);
    ~SqliteSource() override;

    std::string_view kind() const override { return "sqlite"; }
    Result<Batch> poll(std::string_view checkpoint, const PollOptions& options) override;
    Status acknowledge(std::string_view checkpoint) override;
    Result<bool> wait(std::chrono::milliseconds timeout) override;
    void wake() override;
    Result<nlohmann::json> status() override;

    explicit SqliteSource(std::unique_ptr<detail::SqliteSourceState> state);

private:
    std::unique_ptr<detail::SqliteSourceState> state_;
    std::mutex wake_mutex_;
    std::condition_variable wake_cv_;
    bool woken_ = false;  // guarded by wake_mutex_
};

}  // namespace sluice::connectors
