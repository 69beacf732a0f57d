#include "connectors/detail/pg_util.h"

#include <chrono>
#include <cstdio>

namespace sluice::connectors::detail {

namespace {

std::string trimmed_error(PGconn* conn) {
    std::string message = conn != nullptr ? PQerrorMessage(conn) : "out of memory";
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
        message.pop_back();
    }
    return message;
}

}  // namespace

Result<PgConn> pg_connect(const std::string& conninfo,
                          const std::vector<std::pair<std::string, std::string>>& extra) {
    // expand_dbname: the first "dbname" value is the whole conninfo string or URI; the later
    // parameters override what it says.
    std::vector<const char*> keys{"dbname"};
    std::vector<const char*> values{conninfo.c_str()};
    for (const auto& [key, value] : extra) {
        keys.push_back(key.c_str());
        values.push_back(value.c_str());
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);
    PgConn conn(PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1));
    if (conn == nullptr || PQstatus(conn.get()) != CONNECTION_OK) {
        return unavailable("connecting to postgresql: " + trimmed_error(conn.get()));
    }
    return conn;
}

namespace {

Result<PgResult> check(PGconn* conn, PgResult result, ExecStatusType expected,
                       std::string_view what) {
    if (result != nullptr && PQresultStatus(result.get()) == expected) {
        return result;
    }
    std::string message = std::string(what) + ": ";
    const char* state = result != nullptr ? PQresultErrorField(result.get(), PG_DIAG_SQLSTATE)
                                          : nullptr;
    if (result != nullptr && PQresultErrorMessage(result.get())[0] != '\0') {
        message += PQresultErrorMessage(result.get());
    } else {
        message += trimmed_error(conn);
    }
    while (!message.empty() && message.back() == '\n') {
        message.pop_back();
    }
    if (PQstatus(conn) != CONNECTION_OK || state == nullptr) {
        return unavailable(std::move(message));
    }
    const std::string code(state);
    if (code == "42P01" || code == "42704" || code == "42703") {
        return not_found(std::move(message));
    }
    if (code.starts_with("08") || code.starts_with("57") || code == "55006") {
        return unavailable(std::move(message));  // connection, shutdown, object in use
    }
    if (code == "42710") {
        return Status(StatusCode::kAlreadyExists, std::move(message));
    }
    return invalid_argument(std::move(message));
}

}  // namespace

Result<PgResult> pg_exec(PGconn* conn, const std::string& sql, ExecStatusType expected,
                         std::string_view what) {
    return check(conn, PgResult(PQexec(conn, sql.c_str())), expected, what);
}

Result<PgResult> pg_exec_params(PGconn* conn, const std::string& sql,
                                const std::vector<std::string>& params, ExecStatusType expected,
                                std::string_view what) {
    std::vector<const char*> values;
    for (const std::string& param : params) {
        values.push_back(param.c_str());
    }
    return check(conn,
                 PgResult(PQexecParams(conn, sql.c_str(), static_cast<int>(values.size()),
                                       nullptr, values.data(), nullptr, nullptr, 0)),
                 expected, what);
}

std::string pg_identifier(PGconn* conn, std::string_view name) {
    char* quoted = PQescapeIdentifier(conn, name.data(), name.size());
    if (quoted == nullptr) {
        return "\"\"";
    }
    std::string out(quoted);
    PQfreemem(quoted);
    return out;
}

std::string pg_qualified(PGconn* conn, std::string_view schema, std::string_view table) {
    return pg_identifier(conn, schema) + "." + pg_identifier(conn, table);
}

std::string pg_literal(PGconn* conn, std::string_view text) {
    char* quoted = PQescapeLiteral(conn, text.data(), text.size());
    if (quoted == nullptr) {
        return "''";
    }
    std::string out(quoted);
    PQfreemem(quoted);
    return out;
}

std::string lsn_to_string(std::uint64_t lsn) {
    char buffer[32];
    std::snprintf(buffer, sizeof(buffer), "%X/%X", static_cast<unsigned>(lsn >> 32),
                  static_cast<unsigned>(lsn & 0xFFFFFFFFu));
    return buffer;
}

Result<std::uint64_t> parse_lsn(std::string_view text) {
    unsigned high = 0;
    unsigned low = 0;
    const std::string copy(text);
    int used = 0;
    if (std::sscanf(copy.c_str(), "%X/%X%n", &high, &low, &used) != 2 ||
        static_cast<std::size_t>(used) != copy.size()) {
        return invalid_argument("lsn '" + copy + "': expected H/L in hex");
    }
    return (static_cast<std::uint64_t>(high) << 32) | low;
}

std::int64_t pg_now_micros() {
    // 946684800: seconds from the Unix epoch to 2000-01-01, PostgreSQL's epoch.
    const auto now = std::chrono::duration_cast<std::chrono::microseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    return now - 946684800LL * 1000000LL;
}

std::uint64_t read_u64(std::string_view data, std::size_t& pos) {
    std::uint64_t value = 0;
    for (int i = 0; i < 8; ++i) {
        value = (value << 8) | static_cast<unsigned char>(data[pos++]);
    }
    return value;
}

std::uint32_t read_u32(std::string_view data, std::size_t& pos) {
    std::uint32_t value = 0;
    for (int i = 0; i < 4; ++i) {
        value = (value << 8) | static_cast<unsigned char>(data[pos++]);
    }
    return value;
}

std::uint16_t read_u16(std::string_view data, std::size_t& pos) {
    std::uint16_t value = static_cast<std::uint16_t>(static_cast<unsigned char>(data[pos]) << 8 |
                                                     static_cast<unsigned char>(data[pos + 1]));
    pos += 2;
    return value;
}

void write_u64(std::string& out, std::uint64_t value) {
    for (int i = 7; i >= 0; --i) {
        out += static_cast<char>((value >> (8 * i)) & 0xFF);
    }
}

}  // namespace sluice::connectors::detail
