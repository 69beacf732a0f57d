#include "connectors/sqlite_source.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <optional>

#include "common/log.h"
#include "connectors/detail/sqlite_util.h"

namespace sluice::connectors {

using detail::Db;
using detail::quote_identifier;
using detail::Stmt;
using nlohmann::json;

namespace detail {

struct ResolvedTable {
    std::string name;
    std::string key_sql;  // quoted key column, or rowid
    RowMapping mapping;   // mapping.key names the key column in the selected row
    std::string first_page_sql;  // separate from next_page_sql so that both use the key index
    std::string next_page_sql;
    std::string row_sql;
    std::string null_keys_sql;        // counts rows without a key; empty for rowid keys
    // Keys on more than one row, and the rows of one key; empty when the key is unique (the
    // primary key, rowid, a unique index on the column alone).
    std::string duplicate_keys_sql;
    std::string key_rows_sql;
    std::vector<std::string> mapped;  // the columns the mapping reads (checked on every row)
};

struct SqliteSourceState {
    SqliteSourceConfig config;
    Db db;
    std::vector<ResolvedTable> tables;
    std::string file_id;              // "<st_dev>:<st_ino>" of the file `db` has open
    std::int64_t last_seen_seq = -1;  // for wait()
};

}  // namespace detail

namespace {

constexpr std::string_view kRowKeyAlias = "_sluice_key";

struct Position {
    bool snapshot = true;
    std::int64_t hw = 0;      // snapshot: last seq before it began
    std::size_t table = 0;    // snapshot: table index
    json after = nullptr;     // snapshot: last key delivered in that table
    std::int64_t seq = 0;     // changes: last seq delivered
    bool start = false;       // "": nothing yet
    std::string file;         // the database file's identity; empty in older checkpoints
};

Result<Position> parse_position(std::string_view checkpoint) {
    Position position;
    if (checkpoint.empty()) {
        position.start = true;
        return position;
    }
    json value = json::parse(checkpoint, nullptr, false);
    auto bad = [&] {
        return invalid_argument("sqlite checkpoint '" + std::string(checkpoint.substr(0, 200)) +
                                "': expected {\"v\":1,\"seq\":S} or a snapshot position");
    };
    // "v" read as json: value("v", 0) throws when it is not a number.
    if (!value.is_object() || value.value("v", json()) != 1) {
        return bad();
    }
    if (value.contains("file")) {
        if (!value["file"].is_string()) {
            return bad();
        }
        position.file = value["file"].get<std::string>();
    }
    if (value.contains("seq")) {
        if (!value["seq"].is_number_integer()) {
            return bad();
        }
        position.snapshot = false;
        position.seq = value["seq"].get<std::int64_t>();
        return position;
    }
    if (!value.contains("hw") || !value["hw"].is_number_integer() || !value.contains("t") ||
        !value["t"].is_number_unsigned()) {
        return bad();
    }
    position.hw = value["hw"].get<std::int64_t>();
    position.table = value["t"].get<std::size_t>();
    position.after = value.value("after", json(nullptr));
    return position;
}

std::string format_position(const Position& position) {
    json value;
    if (position.snapshot) {
        value = json{{"v", 1}, {"hw", position.hw}, {"t", position.table},
                     {"after", position.after}};
    } else {
        value = json{{"v", 1}, {"seq", position.seq}};
    }
    if (!position.file.empty()) {
        value["file"] = position.file;
    }
    // ensure_ascii keeps checkpoints printable whatever the keys hold.
    return value.dump(-1, ' ', true, json::error_handler_t::replace);
}

Result<std::int64_t> current_seq(sqlite3* db) {
    SLUICE_ASSIGN_OR_RETURN(
        Stmt stmt,
        detail::prepare(db, "SELECT seq FROM sqlite_sequence WHERE name = '_sluice_changes'"));
    const int rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_ROW) {
        return sqlite3_column_int64(stmt.get(), 0);
    }
    if (rc == SQLITE_DONE) {
        return std::int64_t{0};
    }
    return detail::sqlite_error(db, "reading the change sequence");
}

Result<std::int64_t> read_state(sqlite3* db, std::string_view name) {
    SLUICE_ASSIGN_OR_RETURN(Stmt stmt,
                            detail::prepare(db, "SELECT value FROM _sluice_state WHERE name = ?"));
    detail::bind_text(stmt.get(), 1, name);
    const int rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_ROW) {
        return sqlite3_column_int64(stmt.get(), 0);
    }
    if (rc == SQLITE_DONE) {
        return std::int64_t{0};
    }
    return detail::sqlite_error(db, "reading _sluice_state");
}

// The identity of the file at `path` now: a file replaced by rename has another one. Empty when
// it cannot be read (gone for the moment).
std::string file_identity(const std::string& path) {
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) {
        return "";
    }
    return std::to_string(info.st_dev) + ":" + std::to_string(info.st_ino);
}

Row read_row(sqlite3_stmt* stmt) {
    Row row;
    const int n = sqlite3_column_count(stmt);
    row.columns.reserve(static_cast<std::size_t>(n));
    row.values.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
        row.columns.emplace_back(sqlite3_column_name(stmt, i));
        row.values.push_back(detail::column_json(stmt, i));
    }
    return row;
}

// Whether no two rows can share the key: rowid, the single-column primary key, or a column with
// a unique index of its own (not partial).
Result<bool> key_is_unique(sqlite3* db, const std::string& table, const std::string& key,
                           const std::vector<std::string>& pk) {
    if (key == "rowid" || (pk.size() == 1 && pk[0] == key)) {
        return true;
    }
    SLUICE_ASSIGN_OR_RETURN(
        Stmt stmt,
        detail::prepare(db,
                        "SELECT count(*) FROM pragma_index_list(?1) AS l WHERE l.\"unique\" "
                        "AND NOT l.partial AND (SELECT count(*) FROM pragma_index_info(l.name)) "
                        "= 1 AND (SELECT name FROM pragma_index_info(l.name)) = ?2"));
    detail::bind_text(stmt.get(), 1, table);
    detail::bind_text(stmt.get(), 2, key);
    if (sqlite3_step(stmt.get()) != SQLITE_ROW) {
        return detail::sqlite_error(db, "reading indexes of table '" + table + "'");
    }
    return sqlite3_column_int64(stmt.get(), 0) > 0;
}

// Resolves the key column (explicit, "rowid", or the single-column primary key) and checks that
// every mapped column exists.
Result<detail::ResolvedTable> resolve_table(sqlite3* db, const SqliteTableConfig& config) {
    detail::ResolvedTable table;
    table.name = config.table;
    table.mapping = config.mapping;
    {
        // Capture is triggers AFTER INSERT/UPDATE/DELETE, which SQLite allows on tables only.
        SLUICE_ASSIGN_OR_RETURN(Stmt kind,
                                detail::prepare(db,
                                                "SELECT type FROM sqlite_master WHERE name = ?1 "
                                                "COLLATE NOCASE AND type IN ('table', 'view')"));
        detail::bind_text(kind.get(), 1, config.table);
        if (sqlite3_step(kind.get()) == SQLITE_ROW &&
            detail::column_text(kind.get(), 0) == "view") {
            return invalid_argument("sqlite table '" + config.table +
                                    "' is a view: views are not supported as sources (only "
                                    "tables), since changes to them cannot be captured");
        }
    }
    SLUICE_ASSIGN_OR_RETURN(
        Stmt info, detail::prepare(db, "SELECT name, pk FROM pragma_table_info(?)"));
    detail::bind_text(info.get(), 1, config.table);
    std::vector<std::string> columns;
    std::vector<std::string> pk;
    int rc = SQLITE_ROW;
    while ((rc = sqlite3_step(info.get())) == SQLITE_ROW) {
        columns.push_back(detail::column_text(info.get(), 0));
        if (sqlite3_column_int(info.get(), 1) > 0) {
            pk.push_back(columns.back());
        }
    }
    if (rc != SQLITE_DONE) {
        return detail::sqlite_error(db, "reading columns of table '" + config.table + "'");
    }
    if (columns.empty()) {
        return not_found("sqlite table '" + config.table + "' does not exist");
    }
    auto has = [&](const std::string& column) {
        return std::find(columns.begin(), columns.end(), column) != columns.end();
    };
    std::string key = config.mapping.key;
    if (key.empty()) {
        if (pk.size() != 1) {
            return invalid_argument("sqlite table '" + config.table + "': no single-column " +
                                    "primary key; set 'key' to a unique column or 'rowid'");
        }
        key = pk[0];
    }
    if (key == "rowid") {
        table.key_sql = "rowid";
        table.mapping.key = std::string(kRowKeyAlias);
    } else if (!has(key)) {
        return not_found("sqlite table '" + config.table + "': key column '" + key +
                         "' does not exist");
    } else {
        table.key_sql = quote_identifier(key);
        table.mapping.key = key;
    }
    std::vector<std::string> mapped = config.mapping.text;
    mapped.insert(mapped.end(), config.mapping.metadata.begin(), config.mapping.metadata.end());
    for (const std::string& column : {config.mapping.acl_principals, config.mapping.acl_groups}) {
        if (!column.empty()) {
            mapped.push_back(column);
        }
    }
    for (const std::string& column : mapped) {
        if (!has(column)) {
            return not_found("sqlite table '" + config.table + "': column '" + column +
                             "' does not exist");
        }
    }
    table.mapped = mapped;
    const std::string from = " FROM " + quote_identifier(config.table);
    const std::string select = "SELECT *, " + table.key_sql + " AS " +
                               std::string(kRowKeyAlias) + from;
    SLUICE_ASSIGN_OR_RETURN(const bool unique, key_is_unique(db, config.table, key, pk));
    // A key on several rows names one document: the first of its rows by rowid (a WITHOUT ROWID
    // table has none: the first as the key's order leaves them). Pages order each key's rows so
    // that the page loop keeps the first and passes the others.
    const bool by_rowid = !unique && detail::prepare(db, "SELECT rowid" + from + " LIMIT 0").ok();
    const std::string order =
        " ORDER BY " + table.key_sql + (by_rowid ? ", rowid" : "") + " LIMIT ?2";
    // A row whose key column is null has no key and cannot be a document: the pages leave such
    // rows out (a null `after` would otherwise restart the table at its first page forever) and
    // the snapshot reports them once the table's keyed rows are read.
    table.first_page_sql =
        select + " WHERE ?1 IS NULL AND " + table.key_sql + " IS NOT NULL" + order;
    table.next_page_sql = select + " WHERE " + table.key_sql + " > ?1" + order;
    table.row_sql = select + " WHERE " + table.key_sql + " = ?1" +
                    (by_rowid ? " ORDER BY rowid LIMIT 1" : " LIMIT 1");
    if (table.key_sql != "rowid") {
        table.null_keys_sql = "SELECT count(*)" + from + " WHERE " + table.key_sql + " IS NULL";
    }
    if (!unique) {
        table.duplicate_keys_sql = "SELECT " + table.key_sql + ", count(*)" + from + " WHERE " +
                                   table.key_sql + " IS NOT NULL GROUP BY " + table.key_sql +
                                   " HAVING count(*) > 1 ORDER BY " + table.key_sql;
        table.key_rows_sql = "SELECT count(*)" + from + " WHERE " + table.key_sql + " = ?1";
    }
    return table;
}

std::string trigger_sql(const detail::ResolvedTable& table) {
    const std::string tbl = quote_identifier(table.name);
    std::string name_literal = "'";
    for (char c : table.name) {
        name_literal += c;
        if (c == '\'') {
            name_literal += '\'';
        }
    }
    name_literal += "'";
    const std::string ts = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";
    const std::string insert = "INSERT INTO _sluice_changes(tbl, op, key, ts) ";
    auto trigger = [&](std::string_view what) {
        return quote_identifier("_sluice_" + table.name + "_" + std::string(what));
    };
    const std::string new_key = "NEW." + table.key_sql;
    const std::string old_key = "OLD." + table.key_sql;
    return "CREATE TRIGGER " + trigger("insert") + " AFTER INSERT ON " + tbl + " BEGIN " +
           insert + "VALUES (" + name_literal + ", 'U', " + new_key + ", " + ts + "); END;\n" +
           "CREATE TRIGGER " + trigger("update") + " AFTER UPDATE ON " + tbl + " BEGIN " +
           insert + "SELECT " + name_literal + ", 'D', " + old_key + ", " + ts + " WHERE " +
           old_key + " IS NOT " + new_key + "; " + insert + "VALUES (" + name_literal +
           ", 'U', " + new_key + ", " + ts + "); END;\n" + "CREATE TRIGGER " +
           trigger("delete") + " AFTER DELETE ON " + tbl + " BEGIN " + insert + "VALUES (" +
           name_literal + ", 'D', " + old_key + ", " + ts + "); END;\n";
}

Status install_capture(sqlite3* db, const std::vector<detail::ResolvedTable>& tables) {
    SLUICE_ASSIGN_OR_RETURN(auto txn, detail::Transaction::begin(db, "IMMEDIATE"));
    SLUICE_RETURN_IF_ERROR(detail::exec(
        db,
        "CREATE TABLE IF NOT EXISTS _sluice_changes(seq INTEGER PRIMARY KEY AUTOINCREMENT, "
        "tbl TEXT NOT NULL, op TEXT NOT NULL, key, ts TEXT NOT NULL);"
        "CREATE TABLE IF NOT EXISTS _sluice_state(name TEXT PRIMARY KEY, value INTEGER);"));
    std::vector<std::string> existing;
    {
        SLUICE_ASSIGN_OR_RETURN(
            Stmt stmt, detail::prepare(db, "SELECT name FROM sqlite_master WHERE type = "
                                           "'trigger' AND name LIKE '\\_sluice\\_%' ESCAPE '\\'"));
        while (sqlite3_step(stmt.get()) == SQLITE_ROW) {
            existing.push_back(detail::column_text(stmt.get(), 0));
        }
    }
    for (const std::string& name : existing) {
        SLUICE_RETURN_IF_ERROR(detail::exec(db, "DROP TRIGGER " + quote_identifier(name)));
    }
    for (const detail::ResolvedTable& table : tables) {
        SLUICE_RETURN_IF_ERROR(detail::exec(db, trigger_sql(table)));
    }
    return txn.commit();
}

// The `_sluice_*` objects in the database, triggers first (they name the change table).
Result<std::vector<std::string>> capture_objects(sqlite3* db) {
    SLUICE_ASSIGN_OR_RETURN(
        Stmt stmt,
        detail::prepare(db,
                        "SELECT type, name FROM sqlite_master WHERE (type = 'trigger' AND name "
                        "LIKE '\\_sluice\\_%' ESCAPE '\\') OR (type = 'table' AND name IN "
                        "('_sluice_changes', '_sluice_state')) ORDER BY type = 'table', name"));
    std::vector<std::string> objects;
    int rc = SQLITE_ROW;
    while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
        objects.push_back(detail::column_text(stmt.get(), 0) + " " +
                          detail::column_text(stmt.get(), 1));
    }
    if (rc != SQLITE_DONE) {
        return detail::sqlite_error(db, "listing change capture objects");
    }
    return objects;
}

// "trigger x" -> DROP TRIGGER IF EXISTS "x";
std::string drop_sql(const std::string& object) {
    const std::size_t space = object.find(' ');
    const std::string type = object.substr(0, space) == "trigger" ? "TRIGGER" : "TABLE";
    return "DROP " + type + " IF EXISTS " + quote_identifier(object.substr(space + 1)) + ";";
}

Status drop_capture(sqlite3* db, const std::vector<std::string>& objects) {
    SLUICE_ASSIGN_OR_RETURN(auto txn, detail::Transaction::begin(db, "IMMEDIATE"));
    for (const std::string& object : objects) {
        SLUICE_RETURN_IF_ERROR(detail::exec(db, drop_sql(object)));
    }
    return txn.commit();
}

ChangeEvent upsert_event(const detail::ResolvedTable& table, const Row& row, std::string key,
                         std::string offset) {
    ChangeEvent event;
    event.key = table.name + "/" + key;
    event.op = Op::kUpsert;
    Row visible = row;
    // The selected key alias is an implementation detail, not a column of the table.
    if (!visible.columns.empty() && visible.columns.back() == kRowKeyAlias) {
        if (table.mapping.key != kRowKeyAlias) {
            visible.columns.pop_back();
            visible.values.pop_back();
        }
    }
    event.document = row_document(table.mapping, visible, json{{"table", table.name}});
    event.offset = std::move(offset);
    return event;
}

// The first mapped column a row read with SELECT * no longer has (dropped or renamed since
// open()), if any.
std::optional<std::string> missing_column(const detail::ResolvedTable& table, const Row& row) {
    for (const std::string& column : table.mapped) {
        if (std::find(row.columns.begin(), row.columns.end(), column) == row.columns.end()) {
            return column;
        }
    }
    return std::nullopt;
}

std::string column_error(const detail::ResolvedTable& table, const std::string& column) {
    return "table '" + table.name + "' has no column '" + column +
           "' any more (dropped or renamed?); the source's mapping reads it";
}

std::string null_keys_error(const detail::ResolvedTable& table, std::int64_t rows) {
    return std::to_string(rows) + " row(s) of table '" + table.name + "' have a null key column '" +
           table.mapping.key + "' and cannot be keyed; they are left out";
}

// Rows of `table` whose key is null (0 for rowid keys, which are never null).
std::string duplicate_key_error(const detail::ResolvedTable& table, const std::string& key,
                                std::int64_t rows) {
    return "key '" + key + "' of table '" + table.name + "' is on " + std::to_string(rows) +
           " rows (column '" + table.mapping.key + "' is not unique); the first by rowid is its " +
           "document, the other " + std::to_string(rows - 1) + " row(s) are left out";
}

// One error record per key of `table` that is on more than one row.
Status report_duplicate_keys(sqlite3* db, const detail::ResolvedTable& table, Batch& batch) {
    if (table.duplicate_keys_sql.empty()) {
        return Status();
    }
    SLUICE_ASSIGN_OR_RETURN(Stmt stmt, detail::prepare(db, table.duplicate_keys_sql));
    int rc = SQLITE_ROW;
    while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
        const std::string key = json_scalar_text(detail::column_json(stmt.get(), 0));
        batch.errors.push_back(ErrorRecord{
            table.name, duplicate_key_error(table, key, sqlite3_column_int64(stmt.get(), 1)),
            "snapshot:" + table.name});
    }
    if (rc != SQLITE_DONE) {
        return detail::sqlite_error(db, "finding repeated keys of '" + table.name + "'");
    }
    return Status();
}

Result<std::int64_t> null_key_rows(sqlite3* db, const detail::ResolvedTable& table) {
    if (table.null_keys_sql.empty()) {
        return std::int64_t{0};
    }
    SLUICE_ASSIGN_OR_RETURN(Stmt count, detail::prepare(db, table.null_keys_sql));
    if (sqlite3_step(count.get()) != SQLITE_ROW) {
        return detail::sqlite_error(db, "counting rows of '" + table.name + "' without a key");
    }
    return static_cast<std::int64_t>(sqlite3_column_int64(count.get(), 0));
}

std::string schema_error(const detail::ResolvedTable& table, const Status& status) {
    return "cannot read table '" + table.name + "' as mapped (a column dropped or renamed?): " +
           status.message();
}

}  // namespace

Result<SqliteSourceConfig> sqlite_config_from_json(const json& value) {
    if (!value.is_object()) {
        return invalid_argument("sqlite source: expected an object");
    }
    SqliteSourceConfig config;
    auto path = value.find("path");
    if (path == value.end() || !path->is_string() || path->get<std::string>().empty()) {
        return invalid_argument("path: expected the database file path");
    }
    config.path = path->get<std::string>();
    SLUICE_ASSIGN_OR_RETURN(config.tables, table_mappings_from_json(value));
    for (const auto& [field, item] : value.items()) {
        if (field == "prune_acknowledged") {
            if (!item.is_boolean()) {
                return invalid_argument("prune_acknowledged: expected true or false");
            }
            config.prune_acknowledged = item.get<bool>();
        } else if (field == "on_error") {
            SLUICE_ASSIGN_OR_RETURN(config.on_error, error_policy_from_json(item));
        } else if (field != "path" && field != "tables") {
            return invalid_argument(field + ": unknown field");
        }
    }
    return config;
}

json to_json(const SqliteSourceConfig& config) {
    json tables = json::array();
    for (const SqliteTableConfig& table : config.tables) {
        json item = to_json(table.mapping);
        item["table"] = table.table;
        tables.push_back(std::move(item));
    }
    return json{{"path", config.path}, {"tables", tables},
                {"prune_acknowledged", config.prune_acknowledged},
                {"on_error", error_policy_name(config.on_error)}};
}

namespace {

// Opens the database file at config.path as it is now, resolves the tables and installs capture
// into `state` (db, tables, file_id); `state` is left as it was on failure.
Status open_database(const SqliteSourceConfig& config, detail::SqliteSourceState& state) {
    // Taken before opening: a rename in between makes the identity the old file's, and the next
    // poll opens the new one again.
    std::string file_id = file_identity(config.path);
    SLUICE_ASSIGN_OR_RETURN(Db db, detail::open_db(config.path, /*create=*/false));
    std::vector<detail::ResolvedTable> tables;
    for (const SqliteTableConfig& table : config.tables) {
        SLUICE_ASSIGN_OR_RETURN(detail::ResolvedTable resolved, resolve_table(db.get(), table));
        tables.push_back(std::move(resolved));
    }
    SLUICE_RETURN_IF_ERROR(install_capture(db.get(), tables)
                               .with_context("installing change capture in '" + config.path + "'"));
    state.db = std::move(db);
    state.tables = std::move(tables);
    state.file_id = std::move(file_id);
    state.last_seen_seq = -1;
    return Status();
}

// A database file replaced by rename (a restored backup, a tool that writes a copy and renames
// it over the original) is another file: the open handle still reads the deleted one. Opens the
// file the path names now; checkpoints of the old file then fail with kFailedPrecondition.
Status follow_replaced_file(detail::SqliteSourceState& state) {
    const std::string now = file_identity(state.config.path);
    if (now.empty() || now == state.file_id) {
        return Status();
    }
    const std::string before = state.file_id;
    SLUICE_RETURN_IF_ERROR(
        open_database(state.config, state)
            .with_context("reopening the replaced sqlite database '" + state.config.path + "'"));
    log::info("connectors.sqlite",
              "database file replaced; reopened, capture installed in the new file, re-snapshot",
              {{"path", state.config.path}, {"file_before", before}, {"file", state.file_id}});
    return Status();
}

}  // namespace

Result<std::unique_ptr<SqliteSource>> SqliteSource::open(SqliteSourceConfig config) {
    auto state = std::make_unique<detail::SqliteSourceState>();
    state->config = std::move(config);
    SLUICE_RETURN_IF_ERROR(open_database(state->config, *state));
    return std::make_unique<SqliteSource>(std::move(state));
}

CaptureRemoval remove_sqlite_capture(const std::string& path,
                                     const std::vector<std::string>& tables) {
    CaptureRemoval removal;
    std::error_code ec;
    if (!std::filesystem::exists(path, ec) && !ec) {
        return removal;
    }
    auto leave = [&](std::vector<std::string> objects, const Status& why) {
        removal.left_behind = std::move(objects);
        removal.reason = why.message();
        for (const std::string& object : removal.left_behind) {
            removal.cleanup_sql += drop_sql(object) + " ";
        }
        if (!removal.cleanup_sql.empty()) {
            removal.cleanup_sql.pop_back();
        }
        return removal;
    };
    std::vector<std::string> expected;
    for (const std::string& table : tables) {
        for (const char* what : {"insert", "update", "delete"}) {
            expected.push_back("trigger _sluice_" + table + "_" + what);
        }
    }
    expected.push_back("table _sluice_changes");
    expected.push_back("table _sluice_state");
    auto db = detail::open_db(path, /*create=*/false);
    if (!db) {
        // Name what is there if the file can at least be read.
        if (auto reader = detail::open_db(path, false, /*read_only=*/true)) {
            if (auto found = capture_objects(reader->get())) {
                return leave(std::move(*found), db.status());
            }
        }
        return leave(std::move(expected), db.status());
    }
    auto found = capture_objects(db->get());
    if (!found) {
        return leave(std::move(expected), found.status());
    }
    if (Status dropped = drop_capture(db->get(), *found); !dropped.ok()) {
        return leave(std::move(*found), dropped);
    }
    removal.dropped = std::move(*found);
    return removal;
}

SqliteSource::SqliteSource(std::unique_ptr<detail::SqliteSourceState> state)
    : state_(std::move(state)) {}

SqliteSource::~SqliteSource() = default;

Result<Batch> SqliteSource::poll(std::string_view checkpoint, const PollOptions& options) {
    SLUICE_ASSIGN_OR_RETURN(Position position, parse_position(checkpoint));
    SLUICE_RETURN_IF_ERROR(follow_replaced_file(*state_));
    if (!position.file.empty() && position.file != state_->file_id) {
        return failed_precondition("sqlite database '" + state_->config.path +
                                   "' was replaced (file " + position.file + ", now " +
                                   state_->file_id +
                                   "); its changes do not follow the checkpoint, start again "
                                   "from \"\"");
    }
    position.file = state_->file_id;
    sqlite3* db = state_->db.get();
    const std::size_t limit = std::max<std::size_t>(options.max_events, 1);
    Batch batch;
    // One read transaction: the change rows and the rows they point at are one view.
    SLUICE_ASSIGN_OR_RETURN(auto txn, detail::Transaction::begin(db));
    SLUICE_ASSIGN_OR_RETURN(const std::int64_t acknowledged, read_state(db, "acknowledged_seq"));
    if (position.start) {
        SLUICE_ASSIGN_OR_RETURN(position.hw, current_seq(db));
        position.start = false;
    }
    const std::int64_t from_seq = position.snapshot ? position.hw : position.seq;
    if (from_seq < acknowledged && state_->config.prune_acknowledged) {
        return failed_precondition("sqlite checkpoint at seq " + std::to_string(from_seq) +
                                   " is older than the acknowledged seq " +
                                   std::to_string(acknowledged) +
                                   "; its changes are pruned, start again from \"\"");
    }
    while (position.snapshot && batch.events.size() < limit) {
        if (position.table >= state_->tables.size()) {
            position = Position{.snapshot = false, .seq = position.hw, .file = position.file};
            break;
        }
        const detail::ResolvedTable& table = state_->tables[position.table];
        auto prepared = detail::prepare(db, position.after.is_null() ? table.first_page_sql
                                                                     : table.next_page_sql);
        if (!prepared.ok()) {
            // The table changed under the mapping (a column dropped or renamed): report it and
            // skip the table, or stop here, by the source's policy.
            batch.errors.push_back(ErrorRecord{table.name, schema_error(table, prepared.status()),
                                               "snapshot:" + table.name});
            if (state_->config.on_error == ErrorPolicy::kPause) {
                batch.paused = true;
                break;
            }
            ++position.table;
            position.after = nullptr;
            continue;
        }
        Stmt page = std::move(prepared).value();
        detail::bind_json(page.get(), 1, position.after);
        const std::size_t want = limit - batch.events.size();
        sqlite3_bind_int64(page.get(), 2, static_cast<sqlite3_int64>(want));
        std::size_t got = 0;
        int rc = SQLITE_ROW;
        while ((rc = sqlite3_step(page.get())) == SQLITE_ROW) {
            Row row = read_row(page.get());
            ++got;
            if (!position.after.is_null() && row.values.back() == position.after) {
                continue;  // a later row of a repeated key, reported at the table's end
            }
            std::string key = json_scalar_text(row.values.back());
            const std::string offset = "snapshot:" + table.name + "/" + key;
            if (auto missing = missing_column(table, row)) {
                batch.errors.push_back(
                    ErrorRecord{table.name + "/" + key, column_error(table, *missing), offset});
                if (state_->config.on_error == ErrorPolicy::kPause) {
                    batch.paused = true;  // `after` stays before this row
                    break;
                }
            } else {
                batch.events.push_back(upsert_event(table, row, key, offset));
            }
            position.after = row.values.back();
        }
        if (batch.paused) {
            break;
        }
        if (rc != SQLITE_DONE) {
            return detail::sqlite_error(db, "reading snapshot of '" + table.name + "'");
        }
        if (got < want) {
            SLUICE_ASSIGN_OR_RETURN(std::int64_t unkeyed, null_key_rows(db, table));
            const std::size_t errors_before = batch.errors.size();
            if (unkeyed > 0) {
                batch.errors.push_back(ErrorRecord{table.name, null_keys_error(table, unkeyed),
                                                   "snapshot:" + table.name});
            }
            SLUICE_RETURN_IF_ERROR(report_duplicate_keys(db, table, batch));
            if (batch.errors.size() > errors_before) {
                if (state_->config.on_error == ErrorPolicy::kPause) {
                    batch.paused = true;  // the table's keyed rows stay delivered
                    break;
                }
            }
            ++position.table;
            position.after = nullptr;
        }
    }
    if (!position.snapshot && batch.events.size() < limit) {
        SLUICE_ASSIGN_OR_RETURN(
            Stmt changes, detail::prepare(db, "SELECT seq, tbl, op, key FROM _sluice_changes "
                                              "WHERE seq > ?1 ORDER BY seq LIMIT ?2"));
        sqlite3_bind_int64(changes.get(), 1, position.seq);
        sqlite3_bind_int64(changes.get(), 2,
                           static_cast<sqlite3_int64>(limit - batch.events.size()));
        int rc = SQLITE_ROW;
        while ((rc = sqlite3_step(changes.get())) == SQLITE_ROW) {
            const std::int64_t before = position.seq;
            position.seq = sqlite3_column_int64(changes.get(), 0);
            const std::string tbl = detail::column_text(changes.get(), 1);
            const std::string op = detail::column_text(changes.get(), 2);
            const std::string offset = "seq:" + std::to_string(position.seq);
            auto table = std::find_if(state_->tables.begin(), state_->tables.end(),
                                      [&](const auto& t) { return t.name == tbl; });
            if (table == state_->tables.end()) {
                continue;  // captured under an earlier configuration
            }
            if (sqlite3_column_type(changes.get(), 3) == SQLITE_NULL) {
                // A row whose key column is null was never indexed: its delete (or the key's
                // change away from null) removes nothing. Its upsert cannot be keyed, and it is
                // reported and passed by whatever the policy: pausing could not help, since the
                // recorded change keeps its null key after the row gets one (which is itself a
                // new change, delivered after this one).
                if (op == "U") {
                    batch.errors.push_back(ErrorRecord{
                        tbl,
                        "a change to a row of table '" + tbl + "' with a null key column '" +
                            table->mapping.key + "' cannot be keyed; it is left out",
                        offset});
                }
                continue;
            }
            const std::string key = json_scalar_text(detail::column_json(changes.get(), 3));
            if (!table->key_rows_sql.empty()) {
                // A key that may repeat: its document is its first row, whichever row changed,
                // so a delete of one of its rows upserts the next; a repeated key is reported
                // whatever the policy (the change is delivered all the same).
                SLUICE_ASSIGN_OR_RETURN(Stmt count, detail::prepare(db, table->key_rows_sql));
                sqlite3_bind_value(count.get(), 1, sqlite3_column_value(changes.get(), 3));
                if (sqlite3_step(count.get()) != SQLITE_ROW) {
                    return detail::sqlite_error(db, "counting '" + tbl + "' rows of key " + key);
                }
                if (const std::int64_t rows = sqlite3_column_int64(count.get(), 0); rows > 1) {
                    batch.errors.push_back(
                        ErrorRecord{tbl, duplicate_key_error(*table, key, rows), offset});
                }
            }
            if (op == "U" || !table->key_rows_sql.empty()) {
                auto prepared = detail::prepare(db, table->row_sql);
                if (!prepared.ok()) {
                    batch.errors.push_back(ErrorRecord{tbl + "/" + key,
                                                       schema_error(*table, prepared.status()),
                                                       offset});
                    if (state_->config.on_error == ErrorPolicy::kPause) {
                        position.seq = before;  // the change is polled again once fixed
                        batch.paused = true;
                        break;
                    }
                    continue;
                }
                Stmt lookup = std::move(prepared).value();
                sqlite3_bind_value(lookup.get(), 1, sqlite3_column_value(changes.get(), 3));
                const int found = sqlite3_step(lookup.get());
                if (found == SQLITE_ROW) {
                    Row row = read_row(lookup.get());
                    if (auto missing = missing_column(*table, row)) {
                        batch.errors.push_back(
                            ErrorRecord{tbl + "/" + key, column_error(*table, *missing), offset});
                        if (state_->config.on_error == ErrorPolicy::kPause) {
                            position.seq = before;  // the change is polled again once fixed
                            batch.paused = true;
                            break;
                        }
                        continue;
                    }
                    batch.events.push_back(upsert_event(*table, row, key, offset));
                    continue;
                }
                if (found != SQLITE_DONE) {
                    return detail::sqlite_error(db, "reading '" + tbl + "' row " + key);
                }
            }
            // 'D', or 'U' of a row deleted since: a later 'D' follows, deleting twice is harmless.
            ChangeEvent event;
            event.key = tbl + "/" + key;
            event.op = Op::kDelete;
            event.offset = offset;
            batch.events.push_back(std::move(event));
        }
        if (rc != SQLITE_DONE && !batch.paused) {
            return detail::sqlite_error(db, "reading _sluice_changes");
        }
        if (batch.events.size() < limit && !batch.paused) {
            batch.caught_up = true;
        }
    }
    SLUICE_RETURN_IF_ERROR(txn.commit());
    batch.checkpoint = format_position(position);
    return batch;
}

Status SqliteSource::acknowledge(std::string_view checkpoint) {
    SLUICE_ASSIGN_OR_RETURN(Position position, parse_position(checkpoint));
    if (position.start) {
        return Status();
    }
    if (!position.file.empty() && position.file != state_->file_id) {
        return Status();  // seqs of a replaced file: nothing of the open one to release
    }
    const std::int64_t seq = position.snapshot ? position.hw : position.seq;
    sqlite3* db = state_->db.get();
    SLUICE_ASSIGN_OR_RETURN(auto txn, detail::Transaction::begin(db, "IMMEDIATE"));
    SLUICE_ASSIGN_OR_RETURN(const std::int64_t acknowledged, read_state(db, "acknowledged_seq"));
    if (seq <= acknowledged) {
        return Status();
    }
    SLUICE_ASSIGN_OR_RETURN(
        Stmt record, detail::prepare(db, "INSERT INTO _sluice_state(name, value) VALUES "
                                         "('acknowledged_seq', ?1) ON CONFLICT(name) DO UPDATE "
                                         "SET value = excluded.value"));
    sqlite3_bind_int64(record.get(), 1, seq);
    SLUICE_RETURN_IF_ERROR(detail::step_done(db, record.get(), "recording acknowledged seq"));
    if (state_->config.prune_acknowledged) {
        SLUICE_ASSIGN_OR_RETURN(Stmt prune,
                                detail::prepare(db, "DELETE FROM _sluice_changes WHERE seq <= ?"));
        sqlite3_bind_int64(prune.get(), 1, seq);
        SLUICE_RETURN_IF_ERROR(detail::step_done(db, prune.get(), "pruning _sluice_changes"));
    }
    return txn.commit();
}

Result<bool> SqliteSource::wait(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    if (state_->last_seen_seq < 0) {
        SLUICE_ASSIGN_OR_RETURN(state_->last_seen_seq, current_seq(state_->db.get()));
    }
    while (true) {
        if (const std::string now = file_identity(state_->config.path);
            !now.empty() && now != state_->file_id) {
            return true;  // replaced: the next poll opens the new file
        }
        SLUICE_ASSIGN_OR_RETURN(const std::int64_t seq, current_seq(state_->db.get()));
        if (seq != state_->last_seen_seq) {
            state_->last_seen_seq = seq;
            return true;
        }
        std::unique_lock lock(wake_mutex_);
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) {
            return false;
        }
        const auto step = std::min<std::chrono::steady_clock::duration>(
            deadline - now, state_->config.wait_poll_interval);
        if (wake_cv_.wait_for(lock, step, [&] { return woken_; })) {
            woken_ = false;
            return false;
        }
    }
}

void SqliteSource::wake() {
    {
        std::lock_guard lock(wake_mutex_);
        woken_ = true;
    }
    wake_cv_.notify_all();
}

Result<json> SqliteSource::status() {
    SLUICE_RETURN_IF_ERROR(follow_replaced_file(*state_));
    sqlite3* db = state_->db.get();
    SLUICE_ASSIGN_OR_RETURN(const std::int64_t seq, current_seq(db));
    SLUICE_ASSIGN_OR_RETURN(const std::int64_t acknowledged, read_state(db, "acknowledged_seq"));
    SLUICE_ASSIGN_OR_RETURN(Stmt count,
                            detail::prepare(db, "SELECT count(*) FROM _sluice_changes "
                                                "WHERE seq > ?"));
    sqlite3_bind_int64(count.get(), 1, acknowledged);
    if (sqlite3_step(count.get()) != SQLITE_ROW) {
        return detail::sqlite_error(db, "counting pending changes");
    }
    json tables = json::array();
    for (const auto& table : state_->tables) {
        tables.push_back(table.name);
    }
    return json{{"kind", "sqlite"},
                {"path", state_->config.path},
                {"tables", tables},
                {"last_seq", seq},
                {"acknowledged_seq", acknowledged},
                {"pending_changes", sqlite3_column_int64(count.get(), 0)}};
}

}  // namespace sluice::connectors
