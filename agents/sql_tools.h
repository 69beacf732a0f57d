#pragma once
// SQL tools over governed tables: `sql_query` (the model writes a SELECT) and user-defined SQL
// template tools (the tool's author writes the SELECT with :named parameters; the model fills
// them). Both read through run_governed_sql():
//
//  1. A private in-memory database attaches the source (a SQLite file standing behind one
//     catalog schema) read-only. The statement is prepared once under an authoriser that
//     admits only SELECT, reads, functions and recursive CTEs, and records every source table
//     it reads.
//  2. Each table read must be a catalog table of that schema (matched by its `source_table` tag
//     or by name, ignoring case) on which the caller holds SELECT (governance audits the check).
//  3. For each, the rows the caller may see — row filter applied, masks in place — are copied
//     into a table of the same name in the in-memory database (Policies::governed_select).
//  4. The source is detached, and the statement prepared again under an authoriser that admits
//     reading only: nothing but the governed copies is left to read, and no ATTACH, PRAGMA or
//     write can run.
//  5. Rows are read up to max_rows; a progress handler stops copying or reading at the deadline.
//
// Thread safety: each call opens its own connection; the tools are thread-safe.

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "agents/tool.h"
#include "governance/governance.h"

namespace sluice::agents {

struct SqlSource {
    std::string schema;           // the catalog schema its tables are governed under
    std::filesystem::path path;   // the SQLite database file
};

struct SqlLimits {
    int max_rows = 200;
    int timeout_ms = 2000;
    size_t max_sql_bytes = 16 * 1024;
};

// {"columns": [...], "rows": [[...], ...], "row_count": n, "truncated": bool}.
// kInvalidArgument for a statement that is not one SELECT; kPermissionDenied naming the table
// the caller may not read; kDeadlineExceeded past the time limit; kIoError for SQLite failures.
// `binds`: values for :named parameters (an object, may be empty).
Result<nlohmann::json> run_governed_sql(governance::Governance& gov, const ToolContext& context,
                                        const SqlSource& source, const std::string& sql,
                                        const nlohmann::json& binds, const SqlLimits& limits);

class SqlQueryTool final : public Tool {
public:
    SqlQueryTool(std::string function_name, std::string description, SqlSource source,
                 SqlLimits limits, governance::Governance& gov);
    Result<nlohmann::json> invoke(const ToolContext& context,
                                  const nlohmann::json& arguments) override;

private:
    SqlSource source_;
    SqlLimits limits_;
    governance::Governance& gov_;
};

// A SELECT written by the tool's author with :named parameters; `parameters` is the JSON Schema
// of the arguments, whose properties name those parameters.
class SqlTemplateTool final : public Tool {
public:
    // kInvalidArgument when the schema is not an object schema or a :name in the template has
    // no property in it.
    static Result<std::unique_ptr<SqlTemplateTool>> make(std::string function_name,
                                                         std::string description,
                                                         std::string sql_template,
                                                         nlohmann::json parameters,
                                                         SqlSource source, SqlLimits limits,
                                                         governance::Governance& gov);
    SqlTemplateTool(std::string function_name, std::string description, std::string sql_template,
                    nlohmann::json parameters, SqlSource source, SqlLimits limits,
                    governance::Governance& gov);
    Result<nlohmann::json> invoke(const ToolContext& context,
                                  const nlohmann::json& arguments) override;

private:
    std::string template_;
    SqlSource source_;
    SqlLimits limits_;
    governance::Governance& gov_;
};

}  // namespace sluice::agents
