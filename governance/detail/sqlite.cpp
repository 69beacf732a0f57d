#include "governance/detail/sqlite.h"

#include <filesystem>

namespace sluice::governance::detail {
namespace {

Status sqlite_error(sqlite3* db, std::string_view what, std::string_view sql) {
    int code = sqlite3_extended_errcode(db);
    std::string message = std::string(what) + ": " + sqlite3_errmsg(db) + " (sqlite " +
                          std::to_string(code) + ") in `" + std::string(sql.substr(0, 120)) + "`";
    int primary = code & 0xff;
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
        return Status(StatusCode::kUnavailable, message);
    }
    if (primary == SQLITE_CONSTRAINT) {
        return Status(StatusCode::kFailedPrecondition, message);
    }
    if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) {
        return data_loss(message);
    }
    if (primary == SQLITE_FULL || primary == SQLITE_IOERR || primary == SQLITE_CANTOPEN ||
        primary == SQLITE_READONLY) {
        return io_error(message);
    }
    return internal_error(message);
}

}  // namespace

Statement::Statement(Database& db, StatementPtr statement, std::string sql)
    : db_(&db), statement_(std::move(statement)), sql_(std::move(sql)) {}

Statement& Statement::bind(int index, std::int64_t value) {
    if (sqlite3_bind_int64(statement_.get(), index, value) != SQLITE_OK && bind_status_.ok()) {
        bind_status_ = sqlite_error(db_->handle(), "bind", sql_);
    }
    return *this;
}

Statement& Statement::bind(int index, std::string_view text) {
    if (sqlite3_bind_text(statement_.get(), index, text.data(), static_cast<int>(text.size()),
                          SQLITE_TRANSIENT) != SQLITE_OK &&
        bind_status_.ok()) {
        bind_status_ = sqlite_error(db_->handle(), "bind", sql_);
    }
    return *this;
}

Statement& Statement::bind(int index, double value) {
    if (sqlite3_bind_double(statement_.get(), index, value) != SQLITE_OK && bind_status_.ok()) {
        bind_status_ = sqlite_error(db_->handle(), "bind", sql_);
    }
    return *this;
}

Statement& Statement::bind_blob(int index, const void* data, std::size_t size) {
    if (sqlite3_bind_blob(statement_.get(), index, data, static_cast<int>(size),
                          SQLITE_TRANSIENT) != SQLITE_OK &&
        bind_status_.ok()) {
        bind_status_ = sqlite_error(db_->handle(), "bind", sql_);
    }
    return *this;
}

Statement& Statement::bind_static(int index, std::string_view text) {
    if (sqlite3_bind_text(statement_.get(), index, text.data(), static_cast<int>(text.size()),
                          SQLITE_STATIC) != SQLITE_OK &&
        bind_status_.ok()) {
        bind_status_ = sqlite_error(db_->handle(), "bind", sql_);
    }
    return *this;
}

Statement& Statement::bind_blob_static(int index, const void* data, std::size_t size) {
    if (sqlite3_bind_blob(statement_.get(), index, data, static_cast<int>(size), SQLITE_STATIC) !=
            SQLITE_OK &&
        bind_status_.ok()) {
        bind_status_ = sqlite_error(db_->handle(), "bind", sql_);
    }
    return *this;
}

Statement& Statement::bind_null(int index) {
    if (sqlite3_bind_null(statement_.get(), index) != SQLITE_OK && bind_status_.ok()) {
        bind_status_ = sqlite_error(db_->handle(), "bind", sql_);
    }
    return *this;
}

Statement& Statement::bind(int index, const std::optional<std::int64_t>& value) {
    return value ? bind(index, *value) : bind_null(index);
}

Result<bool> Statement::step() {
    if (!bind_status_.ok()) {
        return bind_status_;
    }
    int rc = sqlite3_step(statement_.get());
    if (rc == SQLITE_ROW) {
        return true;
    }
    if (rc == SQLITE_DONE) {
        return false;
    }
    Status failure = sqlite_error(db_->handle(), "step", sql_);
    sqlite3_reset(statement_.get());
    return failure;
}

Status Statement::run() {
    while (true) {
        SLUICE_ASSIGN_OR_RETURN(bool row, step());
        if (!row) {
            return Status();
        }
    }
}

void Statement::reset() {
    sqlite3_reset(statement_.get());
    sqlite3_clear_bindings(statement_.get());
    bind_status_ = Status();
}

std::int64_t Statement::column_int(int column) const {
    return sqlite3_column_int64(statement_.get(), column);
}

double Statement::column_double(int column) const {
    return sqlite3_column_double(statement_.get(), column);
}

std::optional<std::int64_t> Statement::column_optional_int(int column) const {
    if (column_is_null(column)) {
        return std::nullopt;
    }
    return column_int(column);
}

std::string Statement::column_text(int column) const {
    const unsigned char* text = sqlite3_column_text(statement_.get(), column);
    int size = sqlite3_column_bytes(statement_.get(), column);
    return text == nullptr ? std::string()
                           : std::string(reinterpret_cast<const char*>(text),
                                         static_cast<std::size_t>(size));
}

std::string Statement::column_blob(int column) const {
    const void* data = sqlite3_column_blob(statement_.get(), column);
    int size = sqlite3_column_bytes(statement_.get(), column);
    return data == nullptr ? std::string()
                           : std::string(static_cast<const char*>(data),
                                         static_cast<std::size_t>(size));
}

bool Statement::column_is_null(int column) const {
    return sqlite3_column_type(statement_.get(), column) == SQLITE_NULL;
}

Result<std::unique_ptr<Database>> Database::open_existing(const std::string& path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
        if (ec) {
            return io_error("database '" + path + "': " + ec.message());
        }
        return not_found("database '" + path + "' does not exist");
    }
    return open_with_flags(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX);
}

Result<std::unique_ptr<Database>> Database::open(const std::string& path) {
    return open_with_flags(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX);
}

Result<std::unique_ptr<Database>> Database::open_with_flags(const std::string& path, int flags) {
    sqlite3* raw = nullptr;
    int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
    SqlitePtr db(raw);
    if (rc != SQLITE_OK) {
        std::string message = raw != nullptr ? sqlite3_errmsg(raw) : "out of memory";
        return io_error("opening database '" + path + "': " + message);
    }
    sqlite3_busy_timeout(db.get(), 10000);
    auto database = std::make_unique<Database>(std::move(db), path);
    // WAL lets readers (audit verify, exports) run beside the writer; NORMAL synchronous is
    // durable against process crashes, and loses at most the last commits on power loss.
    SLUICE_RETURN_IF_ERROR(database->exec("PRAGMA journal_mode=WAL").with_context(path));
    SLUICE_RETURN_IF_ERROR(database->exec("PRAGMA synchronous=NORMAL").with_context(path));
    SLUICE_RETURN_IF_ERROR(database->exec("PRAGMA foreign_keys=ON").with_context(path));
    return database;
}

Status Database::exec(std::string_view sql) {
    std::string text(sql);
    char* error = nullptr;
    int rc = sqlite3_exec(db_.get(), text.c_str(), nullptr, nullptr, &error);
    if (rc != SQLITE_OK) {
        Status failure = sqlite_error(db_.get(), "exec", sql);
        sqlite3_free(error);
        return failure;
    }
    return Status();
}

Result<Statement> Database::prepare(std::string_view sql) {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db_.get(), sql.data(), static_cast<int>(sql.size()), &raw,
                                nullptr);
    if (rc != SQLITE_OK) {
        return sqlite_error(db_.get(), "prepare", sql);
    }
    return Statement(*this, StatementPtr(raw), std::string(sql));
}

Result<Statement*> Database::cached(std::string_view sql) {
    for (auto& [text, statement] : cache_) {
        if (text == sql) {
            statement->reset();
            return statement.get();
        }
    }
    SLUICE_ASSIGN_OR_RETURN(Statement statement, prepare(sql));
    cache_.emplace_back(std::string(sql), std::make_unique<Statement>(std::move(statement)));
    return cache_.back().second.get();
}

std::int64_t Database::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_.get()); }

int Database::changes() const { return sqlite3_changes(db_.get()); }

std::string Database::error_message() const { return sqlite3_errmsg(db_.get()); }

// BEGIN and COMMIT run as cached statements: the audit log's group commits run them hundreds of
// times a second, and sqlite3_exec would parse them each time.
Result<std::unique_ptr<Transaction>> Transaction::begin(Database& db) {
    SLUICE_ASSIGN_OR_RETURN(auto* begin, db.cached("BEGIN IMMEDIATE"));
    SLUICE_RETURN_IF_ERROR(begin->run());
    return std::make_unique<Transaction>(db);
}

Transaction::~Transaction() {
    if (!done_) {
        (void)db_.exec("ROLLBACK");
    }
}

Status Transaction::commit() {
    SLUICE_ASSIGN_OR_RETURN(auto* commit, db_.cached("COMMIT"));
    SLUICE_RETURN_IF_ERROR(commit->run());
    done_ = true;
    return Status();
}

}  // namespace sluice::governance::detail
