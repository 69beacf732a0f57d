#include "connectors/source_registry.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <regex>

#include "common/log.h"
#include "connectors/detail/sqlite_util.h"
#include "connectors/file_source.h"
#include "connectors/postgres_source.h"
#include "connectors/sqlite_source.h"

namespace sluice::connectors {

namespace fs = std::filesystem;
using detail::Stmt;
using nlohmann::json;

namespace detail {
struct RegistryDb {
    Db db;
};
}  // namespace detail

namespace {

std::string now_iso() {
    const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm utc{};
    gmtime_r(&now, &utc);
    char buffer[32];
    std::strftime(buffer, sizeof(buffer), "%Y-%m-%dT%H:%M:%SZ", &utc);
    return buffer;
}

std::string slot_name(const std::string& source) {
    std::string out = "sluice_";
    for (char c : source) {
        out += c == '-' ? '_' : c;
    }
    return out.substr(0, 63);
}

}  // namespace

namespace {

// A source without an ACL fills an index nobody can read (an empty ACL grants no one), so a new
// file or sqlite source must say who reads its documents; an explicit empty ACL is allowed.
// Checked when a source is defined, not when a stored definition is opened.
Status require_acl(const SourceDefinition& definition) {
    const char* kWhat =
        ": required: who may read the documents, {\"principals\": [...], \"groups\": [...]} "
        "(empty lists: nobody)";
    if (definition.kind == "file" && !definition.config.contains("acl")) {
        return invalid_argument(std::string("acl") + kWhat);
    }
    if (definition.kind == "sqlite") {
        const json& tables = definition.config.at("tables");
        for (std::size_t i = 0; i < tables.size(); ++i) {
            if (!tables[i].contains("acl")) {
                return invalid_argument("tables[" + std::to_string(i) + "].acl" + kWhat);
            }
        }
    }
    return Status();
}

}  // namespace

Result<SourceDefinition> validate_definition(SourceDefinition definition) {
    static const std::regex kName("[a-z0-9][a-z0-9_-]{0,63}");
    if (!std::regex_match(definition.name, kName)) {
        return invalid_argument("name '" + definition.name +
                                "': expected 1 to 64 of a-z, 0-9, '_' and '-'");
    }
    if (!definition.config.is_object()) {
        return invalid_argument("config: expected an object");
    }
    if (definition.kind == "file") {
        SLUICE_RETURN_IF_ERROR(file_config_from_json(definition.config).status());
    } else if (definition.kind == "sqlite") {
        SLUICE_RETURN_IF_ERROR(sqlite_config_from_json(definition.config).status());
    } else if (definition.kind == "postgres") {
        json& config = definition.config;
        if (!config.contains("slot")) {
            config["slot"] = slot_name(definition.name);
        }
        if (!config.contains("publication")) {
            config["publication"] = slot_name(definition.name);
        }
        SLUICE_RETURN_IF_ERROR(postgres_config_from_json(config).status());
    } else if (definition.kind == "http") {
        SLUICE_RETURN_IF_ERROR(push_config_from_json(definition.config).status());
    } else {
        return invalid_argument("type '" + definition.kind +
                                "': expected file, sqlite, postgres or http");
    }
    SLUICE_RETURN_IF_ERROR(require_acl(definition));
    return definition;
}

bool reads_server_files(const std::string& kind) { return kind == "file" || kind == "sqlite"; }

bool reads_server_machine(const SourceDefinition& definition) {
    if (reads_server_files(definition.kind)) {
        return true;
    }
    if (definition.kind != "postgres") {
        return false;
    }
    // With a catalog connection, the connection's allowed_hosts decide where libpq may go (and
    // the sync refuses any other server). Without one, libpq goes wherever the conninfo says,
    // from this machine, as its operating-system user, with its ~/.pgpass.
    auto connection = definition.config.find("connection");
    if (connection == definition.config.end() || !connection->is_string() ||
        connection->get<std::string>().empty()) {
        return true;
    }
    return false;
}

Status check_outside_data_dir(const SourceDefinition& definition, const fs::path& data_dir) {
    std::string field;
    if (definition.kind == "file") {
        field = "root";
    } else if (definition.kind == "sqlite") {
        field = "path";
    } else {
        return Status();
    }
    auto value = definition.config.find(field);
    if (value == definition.config.end() || !value->is_string()) {
        return invalid_argument(field + ": expected a path");
    }
    const std::string path = value->get<std::string>();
    std::error_code ec;
    const fs::path resolved = fs::weakly_canonical(path, ec);
    if (ec) {
        return invalid_argument(field + " '" + path + "': cannot be resolved: " + ec.message());
    }
    const fs::path data = fs::weakly_canonical(data_dir, ec);
    if (ec) {
        return io_error("resolving the data directory '" + data_dir.string() +
                        "': " + ec.message());
    }
    // Component-wise prefix: "/srv/data2" is not inside "/srv/data".
    auto data_end = data.end();
    if (!data.empty() && data.filename().empty()) {
        --data_end;  // a trailing separator is an empty last component
    }
    auto path_end = resolved.end();
    if (!resolved.empty() && resolved.filename().empty() && resolved != resolved.root_path()) {
        --path_end;
    }
    auto [at_data, at_path] = std::mismatch(data.begin(), data_end, resolved.begin(), path_end);
    if (at_data == data_end) {
        return invalid_argument(field + " '" + path + "': inside the server's data directory '" +
                                data.string() +
                                "' (its catalog, tokens, audit log and indexes); a source may "
                                "not read it");
    }
    // A folder holding the data directory would read it too, as one of its subfolders.
    if (definition.kind == "file" && at_path == path_end) {
        return invalid_argument(field + " '" + path + "': holds the server's data directory '" +
                                data.string() +
                                "' (its catalog, tokens, audit log and indexes), which a source "
                                "may not read; choose a root that does not contain it");
    }
    return Status();
}

json describe(const SourceDefinition& definition) {
    json config = definition.config;
    if (definition.kind == "postgres" && config.contains("conninfo") &&
        config["conninfo"].is_string()) {
        config["conninfo"] = redact_conninfo(config["conninfo"].get<std::string>());
    }
    return json{{"name", definition.name},
                {"type", definition.kind},
                {"config", config},
                {"created_at", definition.created_at}};
}

nlohmann::json release_source(const SourceDefinition& definition) {
    if (definition.kind != "sqlite") {
        return nlohmann::json::object();
    }
    auto config = sqlite_config_from_json(definition.config);
    if (!config) {
        return nlohmann::json::object();  // never opened, so nothing was installed
    }
    std::vector<std::string> tables;
    for (const SqliteTableConfig& table : config->tables) {
        tables.push_back(table.table);
    }
    CaptureRemoval removal = remove_sqlite_capture(config->path, tables);
    auto list = [](const std::vector<std::string>& objects) {
        std::string text;
        for (const std::string& object : objects) {
            text += (text.empty() ? "" : ", ") + object;
        }
        return text;
    };
    if (!removal.dropped.empty()) {
        log::info("connectors.sqlite", "change capture removed from the database",
                  {{"source", definition.name},
                   {"path", config->path},
                   {"dropped", list(removal.dropped)}});
    }
    if (removal.left_behind.empty()) {
        return nlohmann::json::object();
    }
    log::warn("connectors.sqlite",
              "change capture left in the database (it could not be written); remove it with "
              "the cleanup statements",
              {{"source", definition.name},
               {"path", config->path},
               {"left_behind", list(removal.left_behind)},
               {"reason", removal.reason},
               {"cleanup_sql", removal.cleanup_sql}});
    return nlohmann::json{{"left_behind", removal.left_behind},
                          {"reason", removal.reason},
                          {"cleanup_sql", removal.cleanup_sql}};
}

Result<std::unique_ptr<Source>> open_source(const SourceDefinition& definition,
                                            const fs::path& state_dir, const std::string& secret) {
    std::error_code ec;
    fs::create_directories(state_dir, ec);
    if (ec) {
        return io_error("creating '" + state_dir.string() + "': " + ec.message());
    }
    if (definition.kind == "file") {
        SLUICE_ASSIGN_OR_RETURN(FileSourceConfig config, file_config_from_json(definition.config));
        config.state_dir = state_dir.string();
        SLUICE_ASSIGN_OR_RETURN(auto source, FileSource::open(std::move(config)));
        return std::unique_ptr<Source>(std::move(source));
    }
    if (definition.kind == "sqlite") {
        SLUICE_ASSIGN_OR_RETURN(SqliteSourceConfig config,
                                sqlite_config_from_json(definition.config));
        SLUICE_ASSIGN_OR_RETURN(auto source, SqliteSource::open(std::move(config)));
        return std::unique_ptr<Source>(std::move(source));
    }
    if (definition.kind == "postgres") {
        SLUICE_ASSIGN_OR_RETURN(PostgresSourceConfig config,
                                postgres_config_from_json(definition.config));
        config.password = secret;
        SLUICE_ASSIGN_OR_RETURN(auto source, PostgresSource::open(std::move(config)));
        return std::unique_ptr<Source>(std::move(source));
    }
    if (definition.kind == "http") {
        SLUICE_ASSIGN_OR_RETURN(auto source, open_push_source(definition, state_dir));
        return std::unique_ptr<Source>(std::move(source));
    }
    return invalid_argument("type '" + definition.kind + "': unknown");
}

Result<std::unique_ptr<PushSource>> open_push_source(const SourceDefinition& definition,
                                                     const fs::path& state_dir) {
    if (definition.kind != "http") {
        return failed_precondition("source '" + definition.name + "' is of type " +
                                   definition.kind + ", not http: it does not take pushes");
    }
    std::error_code ec;
    fs::create_directories(state_dir, ec);
    SLUICE_ASSIGN_OR_RETURN(PushSourceConfig config, push_config_from_json(definition.config));
    config.path = (state_dir / "push.db").string();
    return PushSource::open(std::move(config));
}

namespace {

// Registries written before incarnations were recorded lack the column; their sources keep "".
Status add_incarnation_column(sqlite3* db) {
    SLUICE_ASSIGN_OR_RETURN(Stmt columns, detail::prepare(db, "PRAGMA table_info(sources)"));
    while (sqlite3_step(columns.get()) == SQLITE_ROW) {
        if (detail::column_text(columns.get(), 1) == "incarnation") {
            return Status();
        }
    }
    return detail::exec(db, "ALTER TABLE sources ADD COLUMN incarnation TEXT NOT NULL DEFAULT ''");
}

}  // namespace

bool SourceRegistry::exists(const fs::path& data_dir) {
    std::error_code ec;
    const bool found = fs::exists(data_dir / "sources" / "registry.db", ec);
    return found || static_cast<bool>(ec);  // one that cannot be examined is open()'s to report
}

Result<std::unique_ptr<SourceRegistry>> SourceRegistry::open(const fs::path& data_dir) {
    const fs::path root = data_dir / "sources";
    std::error_code ec;
    // The data directory is the application's to create (owner-only, app/data_dir.h): a
    // mistyped path must not become a new, world-readable one here.
    const fs::file_status data_status = fs::status(data_dir, ec);
    if (data_status.type() == fs::file_type::not_found) {
        return not_found("data directory '" + data_dir.string() + "' does not exist");
    }
    if (data_status.type() == fs::file_type::none) {
        return io_error("data directory '" + data_dir.string() + "': " + ec.message());
    }
    if (!fs::is_directory(data_status)) {
        return failed_precondition("data directory '" + data_dir.string() +
                                   "' exists and is not a directory");
    }
    fs::create_directory(root, ec);
    if (ec) {
        return io_error("creating '" + root.string() + "': " + ec.message());
    }
    fs::permissions(root, fs::perms::owner_all, ec);
    const std::string path = (root / "registry.db").string();
    auto db = std::make_unique<detail::RegistryDb>();
    SLUICE_ASSIGN_OR_RETURN(db->db, detail::open_db(path, /*create=*/true));
    ::chmod(path.c_str(), 0600);
    SLUICE_RETURN_IF_ERROR(detail::exec(
        db->db.get(),
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
        "CREATE TABLE IF NOT EXISTS sources(name TEXT PRIMARY KEY, kind TEXT NOT NULL, "
        "config TEXT NOT NULL, created_at TEXT NOT NULL, "
        "incarnation TEXT NOT NULL DEFAULT '')"));
    SLUICE_RETURN_IF_ERROR(add_incarnation_column(db->db.get()));
    return std::make_unique<SourceRegistry>(root, std::move(db));
}

SourceRegistry::SourceRegistry(fs::path root, std::unique_ptr<detail::RegistryDb> db)
    : root_(std::move(root)), db_(std::move(db)) {}

SourceRegistry::~SourceRegistry() = default;

fs::path SourceRegistry::state_dir(const std::string& name) const { return root_ / name; }

Result<SourceDefinition> SourceRegistry::validate(SourceDefinition definition) const {
    SLUICE_ASSIGN_OR_RETURN(definition, validate_definition(std::move(definition)));
    SLUICE_RETURN_IF_ERROR(check_outside_data_dir(definition, root_.parent_path()));
    return definition;
}

Status SourceRegistry::add(SourceDefinition definition) {
    SLUICE_ASSIGN_OR_RETURN(definition, validate(std::move(definition)));
    definition.created_at = now_iso();
    std::lock_guard lock(mutex_);
    sqlite3* db = db_->db.get();
    {
        SLUICE_ASSIGN_OR_RETURN(Stmt existing,
                                detail::prepare(db, "SELECT 1 FROM sources WHERE name = ?"));
        detail::bind_text(existing.get(), 1, definition.name);
        if (sqlite3_step(existing.get()) == SQLITE_ROW) {
            return Status(StatusCode::kAlreadyExists,
                          "source '" + definition.name + "' already exists");
        }
    }
    // A source removed before may have left its state (remove() could not delete it): a new
    // source of that name must not resume from it.
    const fs::path leftover = state_dir(definition.name);
    std::error_code ec;
    fs::remove_all(leftover, ec);
    if (ec) {
        return io_error("source '" + definition.name + "': cannot delete '" + leftover.string() +
                        "', the state a removed source of that name left: " + ec.message());
    }
    // 128 random bits from SQLite's generator (seeded by the operating system).
    SLUICE_ASSIGN_OR_RETURN(Stmt insert,
                            detail::prepare(db,
                                            "INSERT INTO sources(name, kind, config, "
                                            "created_at, incarnation) VALUES (?, ?, ?, ?, "
                                            "lower(hex(randomblob(16))))"));
    detail::bind_text(insert.get(), 1, definition.name);
    detail::bind_text(insert.get(), 2, definition.kind);
    detail::bind_text(insert.get(), 3, dump_json(definition.config));
    detail::bind_text(insert.get(), 4, definition.created_at);
    if (sqlite3_step(insert.get()) != SQLITE_DONE) {
        if (sqlite3_extended_errcode(db) == SQLITE_CONSTRAINT_PRIMARYKEY) {
            return Status(StatusCode::kAlreadyExists,
                          "source '" + definition.name + "' already exists");
        }
        return detail::sqlite_error(db, "adding source '" + definition.name + "'");
    }
    return Status();
}

namespace {

constexpr std::string_view kSelectDefinitions =
    "SELECT name, kind, config, created_at, incarnation FROM sources ";

Result<SourceDefinition> read_definition(sqlite3_stmt* stmt) {
    SourceDefinition definition;
    definition.name = detail::column_text(stmt, 0);
    definition.kind = detail::column_text(stmt, 1);
    definition.config = json::parse(detail::column_text(stmt, 2), nullptr, false);
    definition.created_at = detail::column_text(stmt, 3);
    definition.incarnation = detail::column_text(stmt, 4);
    if (definition.config.is_discarded()) {
        return data_loss("source registry: configuration of '" + definition.name +
                         "' is corrupt");
    }
    return definition;
}

}  // namespace

Result<std::vector<SourceDefinition>> SourceRegistry::list() {
    std::lock_guard lock(mutex_);
    SLUICE_ASSIGN_OR_RETURN(
        Stmt select,
        detail::prepare(db_->db.get(), std::string(kSelectDefinitions) + "ORDER BY name"));
    std::vector<SourceDefinition> out;
    while (sqlite3_step(select.get()) == SQLITE_ROW) {
        SLUICE_ASSIGN_OR_RETURN(SourceDefinition definition, read_definition(select.get()));
        out.push_back(std::move(definition));
    }
    return out;
}

Result<SourceDefinition> SourceRegistry::get(const std::string& name) {
    std::lock_guard lock(mutex_);
    SLUICE_ASSIGN_OR_RETURN(
        Stmt select,
        detail::prepare(db_->db.get(), std::string(kSelectDefinitions) + "WHERE name = ?"));
    detail::bind_text(select.get(), 1, name);
    if (sqlite3_step(select.get()) != SQLITE_ROW) {
        return not_found("source '" + name + "' does not exist");
    }
    return read_definition(select.get());
}

Status SourceRegistry::remove(const std::string& name) {
    std::lock_guard lock(mutex_);
    sqlite3* db = db_->db.get();
    SLUICE_ASSIGN_OR_RETURN(Stmt erase,
                            detail::prepare(db, "DELETE FROM sources WHERE name = ?"));
    detail::bind_text(erase.get(), 1, name);
    SLUICE_RETURN_IF_ERROR(detail::step_done(db, erase.get(), "removing source '" + name + "'"));
    if (sqlite3_changes(db) == 0) {
        return not_found("source '" + name + "' does not exist");
    }
    std::error_code ec;
    fs::remove_all(state_dir(name), ec);
    if (ec) {
        // The source is gone; add() deletes the leftover before a new source of that name.
        log::warn("connectors", "a removed source's state folder could not be deleted",
                  {{"source", name}, {"path", state_dir(name).string()}, {"error", ec.message()}});
    }
    return Status();
}

}  // namespace sluice::connectors
