#pragma once
// A thin RAII layer over the SQLite C API: a connection, prepared statements and transactions,
// each failure returned as a Status that names the statement.
//
// Thread safety: a Database is owned by one thread at a time; callers that share one guard it
// with their own mutex (SQLite is built serialized, but a transaction spans several calls).

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace sluice::governance::detail {

struct SqliteCloser {
    void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StatementFinalizer {
    void operator()(sqlite3_stmt* statement) const { sqlite3_finalize(statement); }
};
using SqlitePtr = std::unique_ptr<sqlite3, SqliteCloser>;
using StatementPtr = std::unique_ptr<sqlite3_stmt, StatementFinalizer>;

class Database;

// A prepared statement. Bind parameters by 1-based index, then step(): true while a row is
// available. Columns are read by 0-based index.
class Statement {
public:
    Statement(Database& db, StatementPtr statement, std::string sql);

    Statement& bind(int index, std::int64_t value);
    Statement& bind(int index, int value) { return bind(index, static_cast<std::int64_t>(value)); }
    Statement& bind(int index, std::string_view text);
    Statement& bind(int index, const char* text) { return bind(index, std::string_view(text)); }
    Statement& bind(int index, const std::string& text) { return bind(index, std::string_view(text)); }
    Statement& bind(int index, double value);
    Statement& bind_blob(int index, const void* data, std::size_t size);
    // Bind without copying (SQLITE_STATIC): the bytes must stay alive and unchanged until the
    // statement is reset or the parameter bound again. For hot paths whose values outlive the
    // step (the audit writer binds 13 values per record).
    Statement& bind_static(int index, std::string_view text);
    Statement& bind_blob_static(int index, const void* data, std::size_t size);
    Statement& bind_null(int index);
    Statement& bind(int index, const std::optional<std::int64_t>& value);

    // kOk with `true` when a row is ready, `false` when done; errors name the statement.
    Result<bool> step();
    // Steps to completion, expecting no rows.
    Status run();
    void reset();

    std::int64_t column_int(int column) const;
    double column_double(int column) const;
    std::optional<std::int64_t> column_optional_int(int column) const;
    std::string column_text(int column) const;
    std::string column_blob(int column) const;
    bool column_is_null(int column) const;

private:
    Database* db_;
    StatementPtr statement_;
    std::string sql_;
    Status bind_status_;
};

class Database {
public:
    // Opens (creating) the file, sets WAL, foreign keys and a busy timeout so that writers from
    // other processes (the offline `sluice token create`) wait instead of failing.
    static Result<std::unique_ptr<Database>> open(const std::string& path);
    // The same for a file that must already exist: kNotFound naming it when it does not. For
    // readers (audit verify and export), which must leave a folder as they found it.
    static Result<std::unique_ptr<Database>> open_existing(const std::string& path);

    Status exec(std::string_view sql);
    Result<Statement> prepare(std::string_view sql);
    // A cached prepared statement for hot paths; reset before it is returned.
    Result<Statement*> cached(std::string_view sql);

    std::int64_t last_insert_rowid() const;
    int changes() const;
    std::string error_message() const;
    sqlite3* handle() const { return db_.get(); }

    Database(SqlitePtr db, std::string path) : db_(std::move(db)), path_(std::move(path)) {}

private:
    // open() and open_existing(); `flags` are sqlite3_open_v2's.
    static Result<std::unique_ptr<Database>> open_with_flags(const std::string& path, int flags);

    SqlitePtr db_;
    std::string path_;
    std::vector<std::pair<std::string, std::unique_ptr<Statement>>> cache_;
};

// BEGIN IMMEDIATE on construction (taking the write lock at once, so that a read-then-write
// transaction cannot deadlock with another writer), ROLLBACK on destruction unless committed.
class Transaction {
public:
    static Result<std::unique_ptr<Transaction>> begin(Database& db);
    ~Transaction();
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;

    Status commit();

    explicit Transaction(Database& db) : db_(db) {}

private:
    Database& db_;
    bool done_ = false;
};

}  // namespace sluice::governance::detail
