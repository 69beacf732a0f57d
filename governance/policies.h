#pragma once
// Policies: row filters and column masks on governed tables, and the columns they refer to.
//
// A table's columns are stored in the catalog (set when the table is created with columns, or
// later). A row filter is a condition over the row; a column mask an expression whose value
// replaces the column's for the caller — both in policy_expression.h's language, with
// current_user() and is_account_group_member('g'). They are parsed and checked against the
// table's columns when defined, stored as text, and compiled per caller into parameterised SQL:
//
//   auto select = gov.policies().governed_select(ctx, "main.music.customers", "Customer");
//   // select->sql: SELECT "CustomerId", (CASE WHEN (? = 1) THEN "Email" ELSE ? END) AS "Email",
//   //              ... FROM "Customer" WHERE ("Country" IN (?, ?))
//   // select->params: the values to bind, in order
//
// A SQL tool reads the governed table only through that select (as a subquery or view), so
// that a caller never sees rows the filter removes or values a mask replaces.
//
// Thread safety: thread-safe.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "governance/authorizer.h"
#include "governance/policy_expression.h"
#include "governance/request_context.h"
#include "governance/store.h"

namespace sluice::governance {

namespace detail {
class Database;
}

struct ColumnInfo {
    std::string name;       // [A-Za-z_][A-Za-z0-9_]*, 1-255 characters
    std::string type_name;  // as the source declares it ("INTEGER", "STRING"); informational
};

struct TablePolicy {
    std::string column;  // "" for the row filter
    std::string expression;
    std::string created_by;
    std::int64_t created_at_ms = 0;
};

// Names are 1-255 characters of [A-Za-z0-9_], not starting with a digit, and unique ignoring
// case. kInvalidArgument naming the column otherwise.
Status validate_columns(const std::vector<ColumnInfo>& columns);

class Policies {
public:
    static Result<std::unique_ptr<Policies>> open(const std::filesystem::path& db_path,
                                                  Store& store, Authorizer& authorizer);
    ~Policies();

    // Replaces the table's columns. kInvalidArgument for a bad or repeated name;
    // kFailedPrecondition when a stored policy reads a column that would go.
    Status set_columns(const std::string& table, const std::vector<ColumnInfo>& columns);
    Result<std::vector<ColumnInfo>> columns(const std::string& table);

    // Defines (or replaces) the row filter or a column's mask. kInvalidArgument for an
    // expression that does not parse or check; kFailedPrecondition when the table has no
    // columns stored; kNotFound for an unknown table or column.
    Status set_row_filter(const std::string& table, const std::string& expression,
                          const std::string& created_by);
    Status set_column_mask(const std::string& table, const std::string& column,
                           const std::string& expression, const std::string& created_by);
    // kNotFound when there is none. `column` "" removes the row filter.
    Status remove(const std::string& table, const std::string& column);
    Result<std::vector<TablePolicy>> list(const std::string& table);

    // The table as the caller may read it: every stored column (masked where a mask applies)
    // from `source_table` (the name of the table in the source database), filtered by the row
    // filter. kFailedPrecondition when the table has no columns stored.
    Result<SqlFragment> governed_select(const RequestContext& context, const std::string& table,
                                        const std::string& source_table);

    Policies(std::unique_ptr<detail::Database> db, Store& store, Authorizer& authorizer);

private:
    Result<std::int64_t> table_id(const std::string& table);
    Result<std::vector<ColumnInfo>> columns_locked(std::int64_t id);
    Status store_policy(const std::string& table, const std::string& column,
                        const std::string& expression, const std::string& created_by,
                        PolicyKind kind);

    Store& store_;
    Authorizer& authorizer_;
    std::mutex mutex_;
    std::unique_ptr<detail::Database> db_;  // guarded by mutex_
};

}  // namespace sluice::governance
