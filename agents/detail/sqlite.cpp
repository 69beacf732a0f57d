#include "agents/detail/sqlite.h"

namespace sluice::agents::detail {

Status sqlite_error(sqlite3* db, std::string_view what) {
    std::string message = std::string(what) + ": " + (db ? sqlite3_errmsg(db) : "out of memory");
    return Status(StatusCode::kIoError, std::move(message));
}

Result<DbPtr> open_db(const std::filesystem::path& path, int flags) {
    sqlite3* raw = nullptr;
    int rc = sqlite3_open_v2(path.c_str(), &raw, flags | SQLITE_OPEN_NOMUTEX, nullptr);
    DbPtr db(raw);
    if (rc != SQLITE_OK) {
        return sqlite_error(db.get(), "cannot open " + path.string());
    }
    sqlite3_busy_timeout(db.get(), 5000);
    if ((flags & SQLITE_OPEN_READWRITE) != 0) {
        SLUICE_RETURN_IF_ERROR(exec(db.get(), "PRAGMA journal_mode=WAL"));
        SLUICE_RETURN_IF_ERROR(exec(db.get(), "PRAGMA synchronous=NORMAL"));
    }
    return db;
}

Status exec(sqlite3* db, std::string_view sql) {
    char* error = nullptr;
    int rc = sqlite3_exec(db, std::string(sql).c_str(), nullptr, nullptr, &error);
    if (rc != SQLITE_OK) {
        std::string message = error ? error : sqlite3_errstr(rc);
        sqlite3_free(error);
        return Status(StatusCode::kIoError, "sqlite: " + message);
    }
    return Status();
}

Result<StmtPtr> prepare(sqlite3* db, std::string_view sql) {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &raw, nullptr);
    StmtPtr stmt(raw);
    if (rc != SQLITE_OK) {
        return sqlite_error(db, "prepare");
    }
    return stmt;
}

void bind_text(sqlite3_stmt* stmt, int index, std::string_view text) {
    sqlite3_bind_text(stmt, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
}

std::string column_text(sqlite3_stmt* stmt, int column) {
    const unsigned char* text = sqlite3_column_text(stmt, column);
    if (text == nullptr) {
        return std::string();
    }
    return std::string(reinterpret_cast<const char*>(text),
                       static_cast<size_t>(sqlite3_column_bytes(stmt, column)));
}

Transaction::~Transaction() {
    if (open_) {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
}

Status Transaction::begin() {
    SLUICE_RETURN_IF_ERROR(exec(db_, "BEGIN IMMEDIATE"));
    open_ = true;
    return Status();
}

Status Transaction::commit() {
    SLUICE_RETURN_IF_ERROR(exec(db_, "COMMIT"));
    open_ = false;
    return Status();
}

}  // namespace sluice::agents::detail
