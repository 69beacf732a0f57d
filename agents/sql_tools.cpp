#include "agents/sql_tools.h"

#include <algorithm>
#include <cctype>
#include <regex>
#include <set>

#include "agents/detail/sqlite.h"
#include "common/log.h"

namespace sluice::agents {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// What the discovery pass saw.
struct Discovery {
    std::set<std::string> source_tables;  // every table and view of the source, lower case
    std::set<std::string> tables;         // source tables the statement reads, as written
    std::string refused;                  // first action refused, for the message
};

std::string lower(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

int discover(void* data, int action, const char* table, const char*, const char* database,
             const char*) {
    auto* seen = static_cast<Discovery*>(data);
    switch (action) {
        case SQLITE_SELECT:
        case SQLITE_FUNCTION:
        case SQLITE_RECURSIVE:
            return SQLITE_OK;
        case SQLITE_READ:
            // SQLite names no database for some reads (COUNT(*), CTEs), so a name counts as the
            // source's whenever the source has such a table; CTE names it lacks are the
            // statement's own.
            if (table != nullptr &&
                (database == nullptr || std::string_view(database) == "src") &&
                (seen->source_tables.count(lower(table)) != 0 ||
                 lower(table).rfind("sqlite_", 0) == 0)) {
                seen->tables.insert(table);
            }
            return SQLITE_OK;
        default:
            if (seen->refused.empty()) {
                seen->refused = "action " + std::to_string(action);
            }
            return SQLITE_DENY;
    }
}

// The run pass: the source is detached by now, so reads can only reach the governed copies;
// this refuses everything that is not reading (ATTACH above all).
int reads_only(void*, int action, const char*, const char*, const char*, const char*) {
    switch (action) {
        case SQLITE_SELECT:
        case SQLITE_FUNCTION:
        case SQLITE_RECURSIVE:
        case SQLITE_READ:
            return SQLITE_OK;
        default:
            return SQLITE_DENY;
    }
}

int check_deadline(void* data) {
    auto* deadline = static_cast<Clock::time_point*>(data);
    return Clock::now() > *deadline ? 1 : 0;
}


std::string quote_identifier(const std::string& name) {
    std::string out = "\"";
    for (char c : name) {
        out += c == '"' ? std::string("\"\"") : std::string(1, c);
    }
    return out + "\"";
}

bool only_space(const char* text) {
    for (; text != nullptr && *text != '\0'; ++text) {
        if (!std::isspace(static_cast<unsigned char>(*text)) && *text != ';') {
            return false;
        }
    }
    return true;
}

// The catalog table of `schema` that stands for `source_table`.
Result<std::string> governed_table(governance::Governance& gov, const std::string& schema,
                                   const std::string& source_table) {
    SLUICE_ASSIGN_OR_RETURN(auto tables, gov.store().list_securables(
                                             governance::SecurableType::kTable, schema));
    for (const auto& table : tables) {
        auto tag = table.tags.find("source_table");
        std::string stands_for = tag != table.tags.end() ? tag->second : table.name;
        if (lower(stands_for) == lower(source_table)) {
            return table.full_name;
        }
    }
    return Status(StatusCode::kPermissionDenied,
                  "table '" + source_table + "' is not a governed table of schema '" + schema + "'");
}

Status bind_value(sqlite3_stmt* stmt, int index, const governance::SqlValue& value) {
    if (std::holds_alternative<std::nullptr_t>(value)) {
        sqlite3_bind_null(stmt, index);
    } else if (const auto* integer = std::get_if<std::int64_t>(&value)) {
        sqlite3_bind_int64(stmt, index, *integer);
    } else if (const auto* real = std::get_if<double>(&value)) {
        sqlite3_bind_double(stmt, index, *real);
    } else {
        detail::bind_text(stmt, index, std::get<std::string>(value));
    }
    return Status();
}

Status bind_json(sqlite3_stmt* stmt, int index, const json& value) {
    if (value.is_null()) {
        sqlite3_bind_null(stmt, index);
    } else if (value.is_boolean()) {
        sqlite3_bind_int(stmt, index, value.get<bool>() ? 1 : 0);
    } else if (value.is_number_integer()) {
        sqlite3_bind_int64(stmt, index, value.get<std::int64_t>());
    } else if (value.is_number()) {
        sqlite3_bind_double(stmt, index, value.get<double>());
    } else if (value.is_string()) {
        detail::bind_text(stmt, index, value.get<std::string>());
    } else {
        return invalid_argument("parameter " + std::to_string(index) +
                                ": arrays and objects cannot be bound");
    }
    return Status();
}

json column_value(sqlite3_stmt* stmt, int column) {
    switch (sqlite3_column_type(stmt, column)) {
        case SQLITE_INTEGER: return sqlite3_column_int64(stmt, column);
        case SQLITE_FLOAT: return sqlite3_column_double(stmt, column);
        case SQLITE_NULL: return nullptr;
        case SQLITE_BLOB: return "<blob of " + std::to_string(sqlite3_column_bytes(stmt, column)) +
                                 " bytes>";
        default: return detail::column_text(stmt, column);
    }
}

Status copy_governed(governance::Governance& gov, const ToolContext& context, sqlite3* db,
                     const std::string& catalog_table, const std::string& source_table) {
    SLUICE_ASSIGN_OR_RETURN(governance::SqlFragment select,
                            gov.policies().governed_select(context.request, catalog_table,
                                                           source_table));
    // Unqualified names in the fragment resolve to the attached source table: the copy of the
    // same name in "main" does not exist yet while it is being created.
    std::string create = "CREATE TABLE main." + quote_identifier(source_table) + " AS " +
                         select.sql;
    SLUICE_ASSIGN_OR_RETURN(detail::StmtPtr stmt, detail::prepare(db, create));
    for (size_t i = 0; i < select.params.size(); ++i) {
        SLUICE_RETURN_IF_ERROR(bind_value(stmt.get(), static_cast<int>(i + 1), select.params[i]));
    }
    int rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_INTERRUPT) {
        return Status(StatusCode::kDeadlineExceeded, "reading table '" + catalog_table +
                                                         "' ran past the query's time limit");
    }
    if (rc != SQLITE_DONE) {
        return detail::sqlite_error(db, "governed copy of '" + catalog_table + "'");
    }
    return Status();
}

Status bind_named(sqlite3_stmt* stmt, const json& binds) {
    int count = sqlite3_bind_parameter_count(stmt);
    for (int index = 1; index <= count; ++index) {
        const char* name = sqlite3_bind_parameter_name(stmt, index);
        if (name == nullptr || (name[0] != ':' && name[0] != '@' && name[0] != '$')) {
            return invalid_argument("parameter " + std::to_string(index) +
                                    ": only :named parameters can be bound");
        }
        std::string key = name + 1;
        if (!binds.is_object() || !binds.contains(key)) {
            sqlite3_bind_null(stmt, index);
            continue;
        }
        SLUICE_RETURN_IF_ERROR(bind_json(stmt, index, binds[key]));
    }
    return Status();
}

}  // namespace

Result<json> run_governed_sql(governance::Governance& gov, const ToolContext& context,
                              const SqlSource& source, const std::string& sql, const json& binds,
                              const SqlLimits& limits) {
    if (sql.empty()) {
        return invalid_argument("query: empty");
    }
    if (sql.size() > limits.max_sql_bytes) {
        return invalid_argument("query: " + std::to_string(sql.size()) + " bytes, at most " +
                                std::to_string(limits.max_sql_bytes));
    }
    Clock::time_point deadline =
        std::min(context.deadline, Clock::now() + std::chrono::milliseconds(limits.timeout_ms));
    // The statement runs in a private in-memory database that holds only the governed copies;
    // the source is attached read-only while they are made, and detached before it runs.
    SLUICE_ASSIGN_OR_RETURN(detail::DbPtr owned,
                            detail::open_db(":memory:", SQLITE_OPEN_READWRITE |
                                                            SQLITE_OPEN_CREATE | SQLITE_OPEN_URI));
    sqlite3* db = owned.get();
    sqlite3_progress_handler(db, 1000, check_deadline, &deadline);
    // No extension may load, whatever the statement says.
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, nullptr);
    {
        SLUICE_ASSIGN_OR_RETURN(detail::StmtPtr attach,
                                detail::prepare(db, "ATTACH DATABASE ? AS src"));
        detail::bind_text(attach.get(), 1, "file:" + source.path.string() + "?mode=ro");
        if (sqlite3_step(attach.get()) != SQLITE_DONE) {
            return detail::sqlite_error(db, "source of schema '" + source.schema + "'");
        }
    }

    Discovery seen;
    {
        SLUICE_ASSIGN_OR_RETURN(detail::StmtPtr names,
                                detail::prepare(db, "SELECT name FROM src.sqlite_master WHERE "
                                                    "type IN ('table', 'view')"));
        while (sqlite3_step(names.get()) == SQLITE_ROW) {
            seen.source_tables.insert(lower(detail::column_text(names.get(), 0)));
        }
    }
    sqlite3_set_authorizer(db, discover, &seen);
    const char* tail = nullptr;
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db, sql.c_str(), static_cast<int>(sql.size()), &raw, &tail);
    detail::StmtPtr probe(raw);
    sqlite3_set_authorizer(db, nullptr, nullptr);
    if (rc != SQLITE_OK || probe == nullptr) {
        if (!seen.refused.empty()) {
            return invalid_argument("only a single SELECT statement may run (refused " +
                                    seen.refused + ")");
        }
        return invalid_argument(std::string("query: ") + sqlite3_errmsg(db));
    }
    if (!only_space(tail)) {
        return invalid_argument("query: one statement only; found more after the first");
    }
    if (sqlite3_stmt_readonly(probe.get()) == 0) {
        return invalid_argument("query: only read-only SELECT statements may run");
    }
    probe.reset();

    for (const std::string& table : seen.tables) {
        if (lower(table).rfind("sqlite_", 0) == 0) {
            return Status(StatusCode::kPermissionDenied,
                          "table '" + table + "' is internal to SQLite and cannot be read");
        }
        SLUICE_ASSIGN_OR_RETURN(std::string catalog_table,
                                governed_table(gov, source.schema, table));
        SLUICE_RETURN_IF_ERROR(gov.authorizer().require(context.request,
                                                        governance::Privilege::kSelect,
                                                        governance::SecurableType::kTable,
                                                        catalog_table));
        SLUICE_RETURN_IF_ERROR(copy_governed(gov, context, db, catalog_table, table));
    }
    SLUICE_RETURN_IF_ERROR(detail::exec(db, "DETACH DATABASE src"));

    sqlite3_set_authorizer(db, reads_only, nullptr);
    auto prepared = detail::prepare(db, sql);
    sqlite3_set_authorizer(db, nullptr, nullptr);
    if (!prepared.ok()) {
        return invalid_argument("query: " + prepared.status().message());
    }
    detail::StmtPtr stmt = std::move(*prepared);
    SLUICE_RETURN_IF_ERROR(bind_named(stmt.get(), binds));

    json columns = json::array();
    int n_columns = sqlite3_column_count(stmt.get());
    for (int column = 0; column < n_columns; ++column) {
        const char* name = sqlite3_column_name(stmt.get(), column);
        columns.push_back(name ? name : "");
    }
    json rows = json::array();
    bool truncated = false;
    while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
        if (static_cast<int>(rows.size()) >= limits.max_rows) {
            truncated = true;
            break;
        }
        json row = json::array();
        for (int column = 0; column < n_columns; ++column) {
            row.push_back(column_value(stmt.get(), column));
        }
        rows.push_back(std::move(row));
    }
    if (rc == SQLITE_INTERRUPT) {
        return Status(StatusCode::kDeadlineExceeded,
                      "query ran past its time limit of " + std::to_string(limits.timeout_ms) +
                          " ms");
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        return detail::sqlite_error(db, "query");
    }
    size_t row_count = rows.size();
    return json{{"columns", columns},
                {"rows", std::move(rows)},
                {"row_count", row_count},
                {"truncated", truncated}};
}

SqlQueryTool::SqlQueryTool(std::string function_name, std::string description, SqlSource source,
                           SqlLimits limits, governance::Governance& gov)
    : Tool(std::move(function_name), std::move(description),
           json({{"type", "object"},
                 {"properties",
                  {{"query",
                    {{"type", "string"},
                     {"description", "one SQLite SELECT statement over the governed tables"},
                     {"minLength", 1}}}}},
                 {"required", {"query"}},
                 {"additionalProperties", false}})),
      source_(std::move(source)),
      limits_(limits),
      gov_(gov) {}

Result<json> SqlQueryTool::invoke(const ToolContext& context, const json& arguments) {
    return run_governed_sql(gov_, context, source_, arguments.at("query").get<std::string>(),
                            json::object(), limits_);
}

Result<std::unique_ptr<SqlTemplateTool>> SqlTemplateTool::make(
    std::string function_name, std::string description, std::string sql_template,
    json parameters, SqlSource source, SqlLimits limits, governance::Governance& gov) {
    // Compared as JSON, not through value(), which throws when "type" is not a string.
    if (!parameters.is_object() || !parameters.contains("type") ||
        parameters["type"] != json("object")) {
        return invalid_argument("tool '" + function_name +
                                "': parameters must be a JSON Schema of type object");
    }
    const json properties =
        parameters.contains("properties") ? parameters["properties"] : json::object();
    if (!properties.is_object()) {
        return invalid_argument("tool '" + function_name +
                                "': parameters.properties must be an "
                                "object, found " +
                                std::string(properties.type_name()));
    }
    static const std::regex kNamed(R"([:@$]([A-Za-z_][A-Za-z0-9_]*))");
    for (auto it = std::sregex_iterator(sql_template.begin(), sql_template.end(), kNamed);
         it != std::sregex_iterator(); ++it) {
        if (!properties.contains((*it)[1].str())) {
            return invalid_argument("tool '" + function_name + "': template parameter :" +
                                    (*it)[1].str() + " has no property in the schema");
        }
    }
    return std::make_unique<SqlTemplateTool>(std::move(function_name), std::move(description),
                                             std::move(sql_template), std::move(parameters),
                                             std::move(source), limits, gov);
}

SqlTemplateTool::SqlTemplateTool(std::string function_name, std::string description,
                                 std::string sql_template, json parameters, SqlSource source,
                                 SqlLimits limits, governance::Governance& gov)
    : Tool(std::move(function_name), std::move(description), std::move(parameters)),
      template_(std::move(sql_template)),
      source_(std::move(source)),
      limits_(limits),
      gov_(gov) {}

Result<json> SqlTemplateTool::invoke(const ToolContext& context, const json& arguments) {
    return run_governed_sql(gov_, context, source_, template_, arguments, limits_);
}

}  // namespace sluice::agents
