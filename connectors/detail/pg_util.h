#pragma once
// RAII handles over libpq, LSN text forms, and the big-endian integers of the replication
// protocol.
//
// Thread safety: a Conn is used by one thread at a time.

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace sluice::connectors::detail {

struct PgConnCloser {
    void operator()(PGconn* conn) const { PQfinish(conn); }
};
struct PgResultClearer {
    void operator()(PGresult* result) const { PQclear(result); }
};
using PgConn = std::unique_ptr<PGconn, PgConnCloser>;
using PgResult = std::unique_ptr<PGresult, PgResultClearer>;

// Connects with `conninfo` (key=value or a URI) plus `extra` parameters (e.g. replication).
// Errors: kUnavailable with libpq's message, which never contains the password.
Result<PgConn> pg_connect(const std::string& conninfo,
                          const std::vector<std::pair<std::string, std::string>>& extra = {});

// Runs a command and expects `expected` (PGRES_COMMAND_OK or PGRES_TUPLES_OK).
// Errors: kUnavailable when the connection is gone, kNotFound for undefined tables/objects,
// kInvalidArgument for other SQL errors, all naming `what`.
Result<PgResult> pg_exec(PGconn* conn, const std::string& sql, ExecStatusType expected,
                         std::string_view what);
Result<PgResult> pg_exec_params(PGconn* conn, const std::string& sql,
                                const std::vector<std::string>& params, ExecStatusType expected,
                                std::string_view what);

// Quoted identifier ("public"."Tickets"), through libpq's escaping.
std::string pg_identifier(PGconn* conn, std::string_view name);
// Quoted qualified name for "schema.table" or "table" (schema public).
std::string pg_qualified(PGconn* conn, std::string_view schema, std::string_view table);
// A string literal ('it''s').
std::string pg_literal(PGconn* conn, std::string_view text);

std::string lsn_to_string(std::uint64_t lsn);  // "16/B374D848"
Result<std::uint64_t> parse_lsn(std::string_view text);

// Microseconds since 2000-01-01, the replication protocol's clock.
std::int64_t pg_now_micros();

// Big-endian integers at `pos`, advancing it. Callers check the length first.
std::uint64_t read_u64(std::string_view data, std::size_t& pos);
std::uint32_t read_u32(std::string_view data, std::size_t& pos);
std::uint16_t read_u16(std::string_view data, std::size_t& pos);
void write_u64(std::string& out, std::uint64_t value);

}  // namespace sluice::connectors::detail
