#pragma once
// RAII handles and small helpers over the SQLite C API, shared by the SQLite source, the HTTP
// push log and the source registry.
//
// Thread safety: a Db is used by one thread at a time (SQLite's multi-thread mode).

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace sluice::connectors::detail {

struct SqliteCloser {
    void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct SqliteFinalizer {
    void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using Db = std::unique_ptr<sqlite3, SqliteCloser>;
using Stmt = std::unique_ptr<sqlite3_stmt, SqliteFinalizer>;

// Opens (creating when `create`) with a busy timeout, extended result codes and foreign keys
// left as the file has them. Errors: kIoError naming the path.
Result<Db> open_db(const std::string& path, bool create, bool read_only = false);

Result<Stmt> prepare(sqlite3* db, std::string_view sql);
Status exec(sqlite3* db, std::string_view sql);

// A failed SQLite call as a Status: "what: sqlite message (code)". SQLITE_BUSY becomes
// kUnavailable, corruption kDataLoss, the rest kIoError.
Status sqlite_error(sqlite3* db, std::string_view what);

// Steps a statement expected to finish (no rows). Errors as sqlite_error.
Status step_done(sqlite3* db, sqlite3_stmt* stmt, std::string_view what);

// Binds a JSON scalar (integer, real, string, null).
int bind_json(sqlite3_stmt* stmt, int index, const nlohmann::json& value);
int bind_text(sqlite3_stmt* stmt, int index, std::string_view text);

// The column's value as JSON: integer, real, text; null for NULL and for blobs.
nlohmann::json column_json(sqlite3_stmt* stmt, int column);
std::string column_text(sqlite3_stmt* stmt, int column);

// "name" with embedded quotes doubled.
std::string quote_identifier(std::string_view name);

// A transaction that rolls back unless committed.
class Transaction {
public:
    // `mode`: "DEFERRED", "IMMEDIATE".
    static Result<Transaction> begin(sqlite3* db, std::string_view mode = "DEFERRED");
    Transaction(Transaction&& other) noexcept : db_(other.db_) { other.db_ = nullptr; }
    Transaction& operator=(Transaction&&) = delete;
    ~Transaction();
    Status commit();

private:
    explicit Transaction(sqlite3* db) : db_(db) {}
    sqlite3* db_;
};

}  // namespace sluice::connectors::detail
