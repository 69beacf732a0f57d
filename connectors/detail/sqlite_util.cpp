#include "connectors/detail/sqlite_util.h"

namespace sluice::connectors::detail {

Status sqlite_error(sqlite3* db, std::string_view what) {
    const int code = db != nullptr ? sqlite3_extended_errcode(db) : SQLITE_ERROR;
    std::string message = std::string(what) + ": " +
                          (db != nullptr ? sqlite3_errmsg(db) : "out of memory") + " (" +
                          std::to_string(code) + ")";
    switch (code & 0xff) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED: return unavailable(std::move(message));
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB: return data_loss(std::move(message));
        case SQLITE_FULL: return Status(StatusCode::kResourceExhausted, std::move(message));
        default: return io_error(std::move(message));
    }
}

Result<Db> open_db(const std::string& path, bool create, bool read_only) {
    sqlite3* raw = nullptr;
    int flags = SQLITE_OPEN_NOMUTEX;
    if (read_only) {
        flags |= SQLITE_OPEN_READONLY;
    } else {
        flags |= SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0);
    }
    const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
    Db db(raw);
    if (rc != SQLITE_OK) {
        if (!create && (rc & 0xff) == SQLITE_CANTOPEN) {
            return not_found("sqlite database '" + path + "': cannot open");
        }
        return sqlite_error(db.get(), "opening sqlite database '" + path + "'");
    }
    sqlite3_extended_result_codes(db.get(), 1);
    sqlite3_busy_timeout(db.get(), 5000);
    return db;
}

Result<Stmt> prepare(sqlite3* db, std::string_view sql) {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &raw, nullptr) !=
        SQLITE_OK) {
        return sqlite_error(db, "preparing '" + std::string(sql.substr(0, 80)) + "'");
    }
    return Stmt(raw);
}

Status exec(sqlite3* db, std::string_view sql) {
    const std::string text(sql);
    if (sqlite3_exec(db, text.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
        return sqlite_error(db, "executing '" + text.substr(0, 80) + "'");
    }
    return Status();
}

Status step_done(sqlite3* db, sqlite3_stmt* stmt, std::string_view what) {
    const int rc = sqlite3_step(stmt);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        return sqlite_error(db, what);
    }
    return Status();
}

int bind_text(sqlite3_stmt* stmt, int index, std::string_view text) {
    return sqlite3_bind_text(stmt, index, text.data(), static_cast<int>(text.size()),
                             SQLITE_TRANSIENT);
}

int bind_json(sqlite3_stmt* stmt, int index, const nlohmann::json& value) {
    if (value.is_number_integer()) {
        return sqlite3_bind_int64(stmt, index, value.get<std::int64_t>());
    }
    if (value.is_number()) {
        return sqlite3_bind_double(stmt, index, value.get<double>());
    }
    if (value.is_string()) {
        return bind_text(stmt, index, value.get_ref<const std::string&>());
    }
    return sqlite3_bind_null(stmt, index);
}

nlohmann::json column_json(sqlite3_stmt* stmt, int column) {
    switch (sqlite3_column_type(stmt, column)) {
        case SQLITE_INTEGER: return sqlite3_column_int64(stmt, column);
        case SQLITE_FLOAT: return sqlite3_column_double(stmt, column);
        case SQLITE_TEXT: return column_text(stmt, column);
        default: return nullptr;
    }
}

std::string column_text(sqlite3_stmt* stmt, int column) {
    const unsigned char* text = sqlite3_column_text(stmt, column);
    if (text == nullptr) {
        return {};
    }
    return std::string(reinterpret_cast<const char*>(text),
                       static_cast<std::size_t>(sqlite3_column_bytes(stmt, column)));
}

std::string quote_identifier(std::string_view name) {
    std::string out = "\"";
    for (char c : name) {
        out += c;
        if (c == '"') {
            out += '"';
        }
    }
    out += '"';
    return out;
}

Result<Transaction> Transaction::begin(sqlite3* db, std::string_view mode) {
    SLUICE_RETURN_IF_ERROR(exec(db, "BEGIN " + std::string(mode)));
    return Transaction(db);
}

Transaction::~Transaction() {
    if (db_ != nullptr) {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
}

Status Transaction::commit() {
    SLUICE_CHECK(db_ != nullptr, "commit of a finished transaction");
    sqlite3* db = db_;
    db_ = nullptr;
    Status status = exec(db, "COMMIT");
    if (!status.ok()) {
        // A failed COMMIT (SQLITE_BUSY) leaves the transaction open; end it so that the
        // connection is usable again.
        sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    }
    return status;
}

}  // namespace sluice::connectors::detail
