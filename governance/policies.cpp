#include "governance/policies.h"

#include <algorithm>
#include <set>

#include "governance/detail/sqlite.h"

namespace sluice::governance {
namespace {

Status validate_column_name(const std::string& name) {
    bool ok = !name.empty() && name.size() <= 255 &&
              (std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_');
    for (char c : name) {
        ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
    }
    if (!ok) {
        return invalid_argument("column name '" + name +
                                "' must be 1-255 characters of letters, digits and '_', not "
                                "starting with a digit");
    }
    return Status();
}

std::vector<std::string> names_of(const std::vector<ColumnInfo>& columns) {
    std::vector<std::string> out;
    for (const ColumnInfo& c : columns) {
        out.push_back(c.name);
    }
    return out;
}

}  // namespace

Policies::Policies(std::unique_ptr<detail::Database> db, Store& store, Authorizer& authorizer)
    : store_(store), authorizer_(authorizer), db_(std::move(db)) {}

Policies::~Policies() = default;

Result<std::unique_ptr<Policies>> Policies::open(const std::filesystem::path& db_path,
                                                 Store& store, Authorizer& authorizer) {
    SLUICE_ASSIGN_OR_RETURN(auto db, detail::Database::open(db_path.string()));
    return std::make_unique<Policies>(std::move(db), store, authorizer);
}

Result<std::int64_t> Policies::table_id(const std::string& table) {
    SLUICE_ASSIGN_OR_RETURN(Securable securable, store_.securable(SecurableType::kTable, table));
    return securable.id;
}

Result<std::vector<ColumnInfo>> Policies::columns_locked(std::int64_t id) {
    SLUICE_ASSIGN_OR_RETURN(auto select, db_->prepare("SELECT name, type_name FROM table_columns "
                                                      "WHERE securable_id = ? ORDER BY position"));
    select.bind(1, id);
    std::vector<ColumnInfo> out;
    while (true) {
        SLUICE_ASSIGN_OR_RETURN(bool row, select.step());
        if (!row) {
            break;
        }
        out.push_back(ColumnInfo{select.column_text(0), select.column_text(1)});
    }
    return out;
}

Status validate_columns(const std::vector<ColumnInfo>& columns) {
    std::set<std::string> seen;
    for (const ColumnInfo& c : columns) {
        SLUICE_RETURN_IF_ERROR(validate_column_name(c.name));
        std::string lowered = c.name;
        std::transform(lowered.begin(), lowered.end(), lowered.begin(),
                       [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
        if (!seen.insert(lowered).second) {
            return invalid_argument("column '" + c.name + "' appears twice");
        }
    }
    return Status();
}

Status Policies::set_columns(const std::string& table, const std::vector<ColumnInfo>& columns) {
    SLUICE_RETURN_IF_ERROR(validate_columns(columns));
    SLUICE_ASSIGN_OR_RETURN(std::int64_t id, table_id(table));
    std::lock_guard lock(mutex_);
    SLUICE_ASSIGN_OR_RETURN(auto transaction, detail::Transaction::begin(*db_));
    // Every stored policy must still check against the new columns.
    SLUICE_ASSIGN_OR_RETURN(auto policies, db_->prepare("SELECT column_name, expression FROM "
                                                        "table_policies WHERE securable_id = ?"));
    policies.bind(1, id);
    const std::vector<std::string> names = names_of(columns);
    while (true) {
        SLUICE_ASSIGN_OR_RETURN(bool row, policies.step());
        if (!row) {
            break;
        }
        std::string column = policies.column_text(0);
        auto parsed = PolicyExpression::parse(
            policies.column_text(1), names,
            column.empty() ? PolicyKind::kRowFilter : PolicyKind::kColumnMask);
        bool column_kept = column.empty() ||
                           std::find(names.begin(), names.end(), column) != names.end();
        if (!parsed.ok() || !column_kept) {
            return failed_precondition(
                "the " + (column.empty() ? std::string("row filter") : "mask of '" + column + "'") +
                " of table '" + table + "' would no longer hold: " +
                (parsed.ok() ? "its column goes" : parsed.status().message()));
        }
    }
    policies.reset();
    SLUICE_ASSIGN_OR_RETURN(auto erase,
                            db_->prepare("DELETE FROM table_columns WHERE securable_id = ?"));
    SLUICE_RETURN_IF_ERROR(erase.bind(1, id).run());
    SLUICE_ASSIGN_OR_RETURN(auto insert,
                            db_->prepare("INSERT INTO table_columns VALUES (?, ?, ?, ?)"));
    for (std::size_t i = 0; i < columns.size(); ++i) {
        insert.reset();
        SLUICE_RETURN_IF_ERROR(insert.bind(1, id)
                                   .bind(2, static_cast<std::int64_t>(i))
                                   .bind(3, columns[i].name)
                                   .bind(4, columns[i].type_name)
                                   .run());
    }
    return transaction->commit();
}

Result<std::vector<ColumnInfo>> Policies::columns(const std::string& table) {
    SLUICE_ASSIGN_OR_RETURN(std::int64_t id, table_id(table));
    std::lock_guard lock(mutex_);
    return columns_locked(id);
}

Status Policies::store_policy(const std::string& table, const std::string& column,
                              const std::string& expression, const std::string& created_by,
                              PolicyKind kind) {
    SLUICE_ASSIGN_OR_RETURN(std::int64_t id, table_id(table));
    std::lock_guard lock(mutex_);
    SLUICE_ASSIGN_OR_RETURN(std::vector<ColumnInfo> columns, columns_locked(id));
    if (columns.empty()) {
        return failed_precondition("table '" + table +
                                   "' has no columns in the catalog; set them first");
    }
    std::vector<std::string> names = names_of(columns);
    if (kind == PolicyKind::kColumnMask &&
        std::find(names.begin(), names.end(), column) == names.end()) {
        return not_found("table '" + table + "' has no column '" + column + "'");
    }
    SLUICE_RETURN_IF_ERROR(PolicyExpression::parse(expression, names, kind).status());
    SLUICE_ASSIGN_OR_RETURN(
        auto upsert,
        db_->prepare("INSERT INTO table_policies VALUES (?, ?, ?, ?, ?) ON CONFLICT "
                     "(securable_id, column_name) DO UPDATE SET expression = excluded.expression, "
                     "created_by = excluded.created_by, created_at_ms = excluded.created_at_ms"));
    return upsert.bind(1, id)
        .bind(2, column)
        .bind(3, expression)
        .bind(4, created_by)
        .bind(5, now_ms())
        .run();
}

Status Policies::set_row_filter(const std::string& table, const std::string& expression,
                                const std::string& created_by) {
    return store_policy(table, "", expression, created_by, PolicyKind::kRowFilter);
}

Status Policies::set_column_mask(const std::string& table, const std::string& column,
                                 const std::string& expression, const std::string& created_by) {
    SLUICE_RETURN_IF_ERROR(validate_column_name(column));
    return store_policy(table, column, expression, created_by, PolicyKind::kColumnMask);
}

Status Policies::remove(const std::string& table, const std::string& column) {
    SLUICE_ASSIGN_OR_RETURN(std::int64_t id, table_id(table));
    std::lock_guard lock(mutex_);
    SLUICE_ASSIGN_OR_RETURN(auto erase, db_->prepare("DELETE FROM table_policies WHERE "
                                                     "securable_id = ? AND column_name = ?"));
    SLUICE_RETURN_IF_ERROR(erase.bind(1, id).bind(2, column).run());
    if (db_->changes() == 0) {
        return not_found(column.empty() ? "table '" + table + "' has no row filter"
                                        : "column '" + column + "' of table '" + table +
                                              "' has no mask");
    }
    return Status();
}

Result<std::vector<TablePolicy>> Policies::list(const std::string& table) {
    SLUICE_ASSIGN_OR_RETURN(std::int64_t id, table_id(table));
    std::lock_guard lock(mutex_);
    SLUICE_ASSIGN_OR_RETURN(auto select,
                            db_->prepare("SELECT column_name, expression, created_by, "
                                         "created_at_ms FROM table_policies WHERE securable_id = "
                                         "? ORDER BY column_name"));
    select.bind(1, id);
    std::vector<TablePolicy> out;
    while (true) {
        SLUICE_ASSIGN_OR_RETURN(bool row, select.step());
        if (!row) {
            break;
        }
        out.push_back(TablePolicy{select.column_text(0), select.column_text(1),
                                  select.column_text(2), select.column_int(3)});
    }
    return out;
}

Result<SqlFragment> Policies::governed_select(const RequestContext& context,
                                              const std::string& table,
                                              const std::string& source_table) {
    SLUICE_ASSIGN_OR_RETURN(std::vector<ColumnInfo> columns, this->columns(table));
    if (columns.empty()) {
        return failed_precondition("table '" + table +
                                   "' has no columns in the catalog; a governed read needs them");
    }
    SLUICE_ASSIGN_OR_RETURN(std::vector<TablePolicy> policies, list(table));
    PolicySubject subject;
    subject.user = context.principal;
    SLUICE_ASSIGN_OR_RETURN(subject.groups, authorizer_.groups_of(context.principal_id));
    const std::vector<std::string> names = names_of(columns);
    SqlFragment out;
    out.sql = "SELECT ";
    std::optional<SqlFragment> filter;
    for (std::size_t i = 0; i < columns.size(); ++i) {
        out.sql += i > 0 ? ", " : "";
        auto mask = std::find_if(policies.begin(), policies.end(), [&](const TablePolicy& p) {
            return p.column == columns[i].name;
        });
        if (mask == policies.end()) {
            out.sql += quote_identifier(columns[i].name);
            continue;
        }
        SLUICE_ASSIGN_OR_RETURN(auto parsed, PolicyExpression::parse(mask->expression, names,
                                                                     PolicyKind::kColumnMask));
        SqlFragment masked = parsed.compile(subject);
        out.sql += masked.sql + " AS " + quote_identifier(columns[i].name);
        out.params.insert(out.params.end(), masked.params.begin(), masked.params.end());
    }
    out.sql += " FROM " + quote_identifier(source_table);
    for (const TablePolicy& p : policies) {
        if (p.column.empty()) {
            SLUICE_ASSIGN_OR_RETURN(auto parsed, PolicyExpression::parse(p.expression, names,
                                                                         PolicyKind::kRowFilter));
            SqlFragment where = parsed.compile(subject);
            out.sql += " WHERE " + where.sql;
            out.params.insert(out.params.end(), where.params.begin(), where.params.end());
        }
    }
    return out;
}

}  // namespace sluice::governance
