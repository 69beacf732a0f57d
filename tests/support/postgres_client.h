#pragma once
// A test's own connection to the PostgreSQL server it started (connectors/postgres_cluster.h):
// connect, run a statement, read its rows as text; any failure fails the test with the server's
// message.

#include <libpq-fe.h>

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

namespace sluice::testing {

using PgConn = std::unique_ptr<PGconn, decltype(&PQfinish)>;

inline PgConn pg_connect(const std::string& conninfo) {
    PgConn conn(PQconnectdb(conninfo.c_str()), &PQfinish);
    REQUIRE_MESSAGE(PQstatus(conn.get()) == CONNECTION_OK, PQerrorMessage(conn.get()));
    return conn;
}

// Runs `sql`; returns the rows of the result (as text).
inline std::vector<std::vector<std::string>> pg_query(PGconn* conn, const std::string& sql) {
    std::unique_ptr<PGresult, decltype(&PQclear)> result(PQexec(conn, sql.c_str()), &PQclear);
    const auto status = PQresultStatus(result.get());
    REQUIRE_MESSAGE((status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK),
                    sql << ": " << PQerrorMessage(conn));
    std::vector<std::vector<std::string>> rows;
    for (int r = 0; r < PQntuples(result.get()); ++r) {
        std::vector<std::string> row;
        for (int c = 0; c < PQnfields(result.get()); ++c) {
            row.emplace_back(PQgetvalue(result.get(), r, c));
        }
        rows.push_back(std::move(row));
    }
    return rows;
}

}  // namespace sluice::testing
