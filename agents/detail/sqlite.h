#pragma once
// Small RAII helpers over the SQLite C API for agents/: a connection and a prepared statement
// with unique_ptr deleters, and the few calls every store here needs.
//
// Thread safety: a Db is used by one thread at a time (its owner holds a mutex).

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

namespace sluice::agents::detail {

struct DbCloser {
    void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalizer {
    void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

// Opens (creating when `create`) a database in WAL mode with a busy timeout, so that it shares
// catalog.db with governance's own connection.
Result<DbPtr> open_db(const std::filesystem::path& path, int flags);

Status exec(sqlite3* db, std::string_view sql);
Result<StmtPtr> prepare(sqlite3* db, std::string_view sql);
// kIoError with SQLite's message and `what`.
Status sqlite_error(sqlite3* db, std::string_view what);

void bind_text(sqlite3_stmt* stmt, int index, std::string_view text);
std::string column_text(sqlite3_stmt* stmt, int column);

// BEGIN IMMEDIATE ... COMMIT, rolled back on destruction unless committed.
class Transaction {
public:
    explicit Transaction(sqlite3* db) : db_(db) {}
    ~Transaction();
    Status begin();
    Status commit();

private:
    sqlite3* db_;
    bool open_ = false;
};

}  // namespace sluice::agents::detail
