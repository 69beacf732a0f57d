#include "governance/policies.h"

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <cstdlib>

#include "governance/governance.h"
#include "test_dir.h"

using namespace sluice::governance;
using sluice::Status;
using sluice::StatusCode;
using sluice::testing::TempDir;

namespace {

const std::vector<std::string> kCustomerColumns = {
    "CustomerId", "FirstName", "LastName", "Company", "Address", "City", "State",
    "Country", "PostalCode", "Phone", "Fax", "Email", "SupportRepId"};

PolicySubject alice{"alice", {"emea"}};

Status parse_error(std::string_view text, PolicyKind kind = PolicyKind::kRowFilter) {
    return PolicyExpression::parse(text, kCustomerColumns, kind).status();
}

// Runs a compiled fragment against a SQLite database and returns the rows as strings.
std::vector<std::vector<std::string>> run(sqlite3* db, const SqlFragment& query) {
    sqlite3_stmt* statement = nullptr;
    REQUIRE_MESSAGE(sqlite3_prepare_v2(db, query.sql.c_str(), -1, &statement, nullptr) ==
                        SQLITE_OK,
                    query.sql);
    for (std::size_t i = 0; i < query.params.size(); ++i) {
        int index = static_cast<int>(i) + 1;
        const SqlValue& v = query.params[i];
        if (auto* n = std::get_if<std::int64_t>(&v)) {
            sqlite3_bind_int64(statement, index, *n);
        } else if (auto* d = std::get_if<double>(&v)) {
            sqlite3_bind_double(statement, index, *d);
        } else if (auto* s = std::get_if<std::string>(&v)) {
            sqlite3_bind_text(statement, index, s->c_str(), -1, SQLITE_TRANSIENT);
        } else {
            sqlite3_bind_null(statement, index);
        }
    }
    std::vector<std::vector<std::string>> rows;
    while (sqlite3_step(statement) == SQLITE_ROW) {
        std::vector<std::string> row;
        for (int c = 0; c < sqlite3_column_count(statement); ++c) {
            const unsigned char* text = sqlite3_column_text(statement, c);
            row.emplace_back(text ? reinterpret_cast<const char*>(text) : "NULL");
        }
        rows.push_back(std::move(row));
    }
    sqlite3_finalize(statement);
    return rows;
}

std::int64_t count(sqlite3* db, const std::string& sql) {
    auto rows = run(db, SqlFragment{sql, {}});
    REQUIRE(rows.size() == 1);
    return std::stoll(rows[0][0]);
}

std::filesystem::path chinook() {
    const char* shared = std::getenv("SLUICE_SHARED_DIR");
    // ctest sets SLUICE_SHARED_DIR; run by hand, the shared folder beside the checkout.
    return std::filesystem::path(shared ? shared : SLUICE_SOURCE_DIR "/../shared") / "data" / "chinook" /
           "Chinook_Sqlite.sqlite";
}

}  // namespace

TEST_CASE("expressions parse to parameterised SQL; user text never reaches the SQL") {
    auto filter = PolicyExpression::parse(
        "country IN ('USA', 'Canada') OR (is_account_group_member('emea') AND NOT Country = "
        "'Brazil') OR Email = current_user()",
        kCustomerColumns, PolicyKind::kRowFilter);
    REQUIRE(filter.ok());
    SqlFragment sql = filter->compile(alice);
    CHECK(sql.sql ==
          R"(((("Country" IN (?, ?)) OR ((? = 1) AND (NOT ("Country" = ?)))) OR ("Email" = ?)))");
    REQUIRE(sql.params.size() == 5);
    CHECK(std::get<std::string>(sql.params[0]) == "USA");
    CHECK(std::get<std::int64_t>(sql.params[2]) == 1);  // alice is in emea
    CHECK(std::get<std::string>(sql.params[4]) == "alice");
    CHECK(filter->columns_used() == std::vector<std::string>{"Country", "Email"});

    // A quote in a literal stays inside the bound value.
    auto quoted = PolicyExpression::parse("LastName = 'O''Brien'' OR ''1''=''1'", kCustomerColumns,
                                          PolicyKind::kRowFilter);
    REQUIRE(quoted.ok());
    SqlFragment q = quoted->compile(alice);
    CHECK(q.sql == R"(("LastName" = ?))");
    CHECK(std::get<std::string>(q.params[0]) == "O'Brien' OR '1'='1");
}

TEST_CASE("definition-time checks refuse what is outside the grammar") {
    CHECK(parse_error("Country = 'x'; DROP TABLE Customer").message().find("';'") !=
          std::string::npos);
    CHECK(parse_error("Salary > 10").message().find("'Salary' is not a column") !=
          std::string::npos);
    CHECK(parse_error("lower(Country) = 'usa'").message().find("not allowed") !=
          std::string::npos);
    CHECK(parse_error("Country").message().find("must be a condition") != std::string::npos);
    CHECK_FALSE(parse_error("Country = ").ok());
    CHECK_FALSE(parse_error("Country = 'x' AND").ok());
    CHECK_FALSE(parse_error("Country IN ()").ok());
    CHECK_FALSE(parse_error("'unterminated").ok());
    CHECK_FALSE(parse_error("is_account_group_member(Country)").ok());
    CHECK_FALSE(parse_error("(SELECT 1) = 1").ok());
    CHECK_FALSE(parse_error("Country = 'a' OR 1").ok());  // OR needs conditions
    CHECK_FALSE(parse_error("").ok());
    std::string deep(200, '(');
    CHECK_FALSE(parse_error(deep + "TRUE" + std::string(200, ')')).ok());
    CHECK(parse_error("CASE WHEN TRUE THEN Email END", PolicyKind::kColumnMask).ok());
    CHECK_FALSE(parse_error("CASE WHEN Email THEN 1 END", PolicyKind::kColumnMask).ok());
    CHECK(quote_identifier("a\"b") == "\"a\"\"b\"");
}

TEST_CASE("row filters and column masks over the Chinook database, per caller") {
    if (!std::filesystem::exists(chinook())) {
        MESSAGE("skipped: " << chinook() << " is not here");
        return;
    }
    TempDir dir("policies");
    std::filesystem::copy_file(chinook(), dir.path / "chinook.sqlite");
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open((dir.path / "chinook.sqlite").c_str(), &db) == SQLITE_OK);

    auto gov = std::move(*Governance::open(dir.path));
    Store& s = gov->store();
    Principal owner = *s.create_principal("owner", PrincipalKind::kUser, false);
    Principal rep = *s.create_principal("jane@chinookcorp.com", PrincipalKind::kUser, false);
    Principal support_user = *s.create_principal("sam", PrincipalKind::kUser, false);
    REQUIRE(s.create_principal("support", PrincipalKind::kGroup, false).ok());
    REQUIRE(s.add_member("support", "sam").ok());
    REQUIRE(s.create_securable(SecurableType::kCatalog, "music", owner.id, "", {}).ok());
    REQUIRE(s.create_securable(SecurableType::kSchema, "music.sales", owner.id, "", {}).ok());
    REQUIRE(s.create_securable(SecurableType::kTable, "music.sales.customers", owner.id, "", {})
                .ok());
    Policies& policies = gov->policies();
    const std::string table = "music.sales.customers";
    CHECK(policies.set_row_filter(table, "Country = 'USA'", "owner").code() ==
          StatusCode::kFailedPrecondition);  // no columns yet
    std::vector<ColumnInfo> columns;
    for (const auto& name : kCustomerColumns) {
        columns.push_back(ColumnInfo{name, name == "CustomerId" ? "INTEGER" : "NVARCHAR"});
    }
    REQUIRE(policies.set_columns(table, columns).ok());

    // Support sees every customer; everyone else only customers of their own support rep
    // (looked up by the rep's e-mail) or in Canada.
    REQUIRE(policies
                .set_row_filter(table,
                                "is_account_group_member('support') OR Country = 'Canada' OR "
                                "SupportRepId IN (3)",
                                "owner")
                .ok());
    REQUIRE(policies
                .set_column_mask(table, "Email",
                                 "CASE WHEN is_account_group_member('support') THEN Email "
                                 "ELSE 'hidden' END",
                                 "owner")
                .ok());
    REQUIRE(policies.set_column_mask(table, "Phone", "NULL", "owner").ok());
    CHECK(policies.set_column_mask(table, "Salary", "NULL", "owner").code() ==
          StatusCode::kNotFound);
    CHECK(policies.set_row_filter(table, "Salary > 3", "owner").code() ==
          StatusCode::kInvalidArgument);
    CHECK(policies.list(table)->size() == 3);

    RequestContext as_rep{rep.id, rep.name, "req_1", "", ""};
    RequestContext as_support{support_user.id, "sam", "req_2", "", ""};
    auto for_rep = policies.governed_select(as_rep, table, "Customer");
    REQUIRE(for_rep.ok());
    auto rows = run(db, *for_rep);
    CHECK(static_cast<std::int64_t>(rows.size()) ==
          count(db, "SELECT COUNT(*) FROM Customer WHERE Country = 'Canada' OR SupportRepId = 3"));
    for (const auto& row : rows) {
        CHECK(row[11] == "hidden");
        CHECK(row[9] == "NULL");
        CHECK((row[7] == "Canada" || row[12] == "3"));
    }
    auto for_support = policies.governed_select(as_support, table, "Customer");
    REQUIRE(for_support.ok());
    auto all = run(db, *for_support);
    CHECK(static_cast<std::int64_t>(all.size()) == count(db, "SELECT COUNT(*) FROM Customer"));
    CHECK(all[0][11].find('@') != std::string::npos);
    CHECK(all[0][9] == "NULL");

    // A column a policy reads cannot be dropped from the catalog; the filter can be removed.
    std::vector<ColumnInfo> fewer(columns.begin(), columns.end() - 1);  // without SupportRepId
    CHECK(policies.set_columns(table, fewer).code() == StatusCode::kFailedPrecondition);
    REQUIRE(policies.remove(table, "").ok());
    CHECK(policies.remove(table, "").code() == StatusCode::kNotFound);
    auto unfiltered = policies.governed_select(as_rep, table, "Customer");
    REQUIRE(unfiltered.ok());
    CHECK(static_cast<std::int64_t>(run(db, *unfiltered).size()) ==
          count(db, "SELECT COUNT(*) FROM Customer"));
    sqlite3_close(db);
}
