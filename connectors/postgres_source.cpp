#include "connectors/postgres_source.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <regex>
#include <thread>

#include "common/log.h"
#include "connectors/detail/pg_snapshot.h"
#include "connectors/detail/pg_util.h"
#include "connectors/detail/postgres_state.h"

namespace sluice::connectors {

using detail::lsn_to_string;
using detail::parse_lsn;
using detail::pg_exec;
using detail::pg_exec_params;
using detail::PgResult;
using detail::PgTable;
using nlohmann::json;

namespace detail {

PostgresState::~PostgresState() {
    if (wake_fd >= 0) {
        ::close(wake_fd);
    }
}

Status PostgresState::ensure_sql() {
    if (sql != nullptr && PQstatus(sql.get()) == CONNECTION_OK) {
        return Status();
    }
    snapshot_open = false;
    SLUICE_ASSIGN_OR_RETURN(sql, pg_connect(config.conninfo,
                                                detail::connect_params(config, false)));
    return Status();
}

const PgTable* PostgresState::table_by_name(const std::string& schema,
                                            const std::string& name) const {
    for (const PgTable& table : tables) {
        if (table.schema == schema && table.name == name) {
            return &table;
        }
    }
    return nullptr;
}

Result<std::optional<Row>> PostgresState::reread(const PgTable& table, const std::string& key) {
    SLUICE_RETURN_IF_ERROR(ensure_sql());
    SLUICE_ASSIGN_OR_RETURN(
        PgResult result,
        pg_exec_params(sql.get(),
                       "SELECT * FROM " + table.qualified + " WHERE " +
                           pg_identifier(sql.get(), table.mapping.key) + " = $1::" + table.key_type,
                       {key}, PGRES_TUPLES_OK, "reading " + table.display + " by key"));
    if (PQntuples(result.get()) == 0) {
        return std::optional<Row>();
    }
    return std::optional<Row>(result_row(result.get(), 0));
}

Row result_row(const PGresult* result, int row_number) {
    Row row;
    const int n = PQnfields(result);
    row.columns.reserve(static_cast<std::size_t>(n));
    row.values.reserve(static_cast<std::size_t>(n));
    for (int c = 0; c < n; ++c) {
        row.columns.emplace_back(PQfname(result, c));
        row.values.push_back(
            PQgetisnull(result, row_number, c)
                ? json(nullptr)
                : pg_value_json(PQftype(result, c), PQgetvalue(result, row_number, c)));
    }
    return row;
}

json pg_value_json(std::uint32_t type_oid, const std::string& text) {
    switch (type_oid) {
        case 16: return text == "t";  // bool
        case 20:                       // int8
        case 21:                       // int2
        case 23: {                     // int4
            json number = json::parse(text, nullptr, false);
            return number.is_number() ? number : json(text);
        }
        case 700:     // float4
        case 701:     // float8
        case 1700: {  // numeric; NaN and Infinity stay text
            json number = json::parse(text, nullptr, false);
            return number.is_number() ? number : json(text);
        }
        default: return text;
    }
}

ChangeEvent pg_upsert(const PgTable& table, const Row& row, const std::string& key,
                      std::string offset) {
    ChangeEvent event;
    event.key = table.display + "/" + key;
    event.op = Op::kUpsert;
    event.document = row_document(table.mapping, row, json{{"table", table.display}});
    event.offset = std::move(offset);
    return event;
}

}  // namespace detail

namespace {

struct Position {
    bool start = false;
    bool snapshot = false;
    std::uint64_t lsn = 0;      // snapshot: consistent point; stream: safe position
    std::size_t table = 0;      // snapshot
    std::optional<std::string> after;  // snapshot: last key delivered
    std::uint64_t txn = 0;      // stream: the partly delivered transaction's end, 0 if none
    std::uint32_t n = 0;        // stream: events of it delivered
};

Result<Position> parse_position(std::string_view checkpoint) {
    Position position;
    if (checkpoint.empty()) {
        position.start = true;
        return position;
    }
    json value = json::parse(checkpoint, nullptr, false);
    const auto bad = [&] {
        return invalid_argument("postgres checkpoint '" +
                                std::string(checkpoint.substr(0, 200)) + "': malformed");
    };
    // "v" read as json: value("v", 0) throws when it is not a number.
    if (!value.is_object() || value.value("v", json()) != 1) {
        return bad();
    }
    if (value.contains("snapshot")) {
        if (!value["snapshot"].is_string() || !value.contains("t") ||
            !value["t"].is_number_unsigned()) {
            return bad();
        }
        position.snapshot = true;
        SLUICE_ASSIGN_OR_RETURN(position.lsn, parse_lsn(value["snapshot"].get<std::string>()));
        position.table = value["t"].get<std::size_t>();
        if (value.contains("after") && value["after"].is_string()) {
            position.after = value["after"].get<std::string>();
        }
        return position;
    }
    if (!value.contains("lsn") || !value["lsn"].is_string()) {
        return bad();
    }
    SLUICE_ASSIGN_OR_RETURN(position.lsn, parse_lsn(value["lsn"].get<std::string>()));
    if (value.contains("txn")) {
        if (!value["txn"].is_string() || !value.contains("n") || !value["n"].is_number_unsigned()) {
            return bad();
        }
        SLUICE_ASSIGN_OR_RETURN(position.txn, parse_lsn(value["txn"].get<std::string>()));
        position.n = value["n"].get<std::uint32_t>();
    }
    return position;
}

std::string format_position(const Position& position) {
    json value{{"v", 1}};
    if (position.snapshot) {
        value["snapshot"] = lsn_to_string(position.lsn);
        value["t"] = position.table;
        value["after"] = position.after ? json(*position.after) : json(nullptr);
    } else {
        value["lsn"] = lsn_to_string(position.lsn);
        if (position.txn != 0) {
            value["txn"] = lsn_to_string(position.txn);
            value["n"] = position.n;
        }
    }
    return value.dump(-1, ' ', true, json::error_handler_t::replace);
}

Result<PgTable> resolve_table(PGconn* conn, const PostgresTableConfig& config) {
    PgTable table;
    const std::size_t dot = config.table.find('.');
    table.schema = dot == std::string::npos ? "public" : config.table.substr(0, dot);
    table.name = dot == std::string::npos ? config.table : config.table.substr(dot + 1);
    table.display = table.schema + "." + table.name;
    table.qualified = detail::pg_qualified(conn, table.schema, table.name);
    table.mapping = config.mapping;
    SLUICE_ASSIGN_OR_RETURN(
        PgResult result,
        pg_exec_params(conn,
                       "SELECT a.attname, a.atttypid, format_type(a.atttypid, a.atttypmod), "
                       "coalesce(i.indisprimary, false) FROM pg_attribute a "
                       "JOIN pg_class c ON c.oid = a.attrelid "
                       "JOIN pg_namespace n ON n.oid = c.relnamespace "
                       "LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary "
                       "AND a.attnum = ANY(i.indkey) "
                       "WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 "
                       "AND NOT a.attisdropped ORDER BY a.attnum",
                       {table.schema, table.name}, PGRES_TUPLES_OK,
                       "reading columns of " + table.display));
    const int rows = PQntuples(result.get());
    if (rows == 0) {
        return not_found("postgres table '" + table.display + "' does not exist");
    }
    std::vector<std::string> primary;
    std::map<std::string, std::string> types;
    for (int r = 0; r < rows; ++r) {
        detail::PgColumn column;
        column.name = PQgetvalue(result.get(), r, 0);
        column.type_oid = static_cast<std::uint32_t>(std::stoul(PQgetvalue(result.get(), r, 1)));
        types[column.name] = PQgetvalue(result.get(), r, 2);
        if (PQgetvalue(result.get(), r, 3)[0] == 't') {
            primary.push_back(column.name);
        }
        table.columns.push_back(std::move(column));
    }
    if (table.mapping.key.empty()) {
        if (primary.size() != 1) {
            return invalid_argument("postgres table '" + table.display +
                                    "': no single-column primary key; set 'key'");
        }
        table.mapping.key = primary[0];
    }
    std::vector<std::string> mapped = table.mapping.text;
    mapped.insert(mapped.end(), table.mapping.metadata.begin(), table.mapping.metadata.end());
    mapped.push_back(table.mapping.key);
    for (const std::string& column : {table.mapping.acl_principals, table.mapping.acl_groups}) {
        if (!column.empty()) {
            mapped.push_back(column);
        }
    }
    for (const std::string& column : mapped) {
        if (!types.contains(column)) {
            return not_found("postgres table '" + table.display + "': column '" + column +
                             "' does not exist");
        }
    }
    table.key_type = types[table.mapping.key];
    if (table.mapping.text.empty()) {
        for (const detail::PgColumn& column : table.columns) {
            mapped.push_back(column.name);
        }
    }
    table.mapped = std::move(mapped);
    return table;
}

Status check_name(const std::string& name, std::string_view what) {
    static const std::regex kName("[a-z_][a-z0-9_]{0,62}");
    if (!std::regex_match(name, kName)) {
        return invalid_argument(std::string(what) + " '" + name +
                                "': expected lower-case letters, digits and _ (at most 63)");
    }
    return Status();
}

Status manage_publication(PGconn* conn, const PostgresSourceConfig& config,
                          const std::vector<PgTable>& tables) {
    std::string list;
    for (const PgTable& table : tables) {
        list += (list.empty() ? "" : ", ") + table.qualified;
        if (config.replica_identity_full) {
            SLUICE_RETURN_IF_ERROR(pg_exec(conn, "ALTER TABLE " + table.qualified +
                                                     " REPLICA IDENTITY FULL",
                                           PGRES_COMMAND_OK, "setting replica identity")
                                       .status());
        }
    }
    if (!config.manage_publication) {
        return Status();
    }
    SLUICE_ASSIGN_OR_RETURN(PgResult exists,
                            pg_exec_params(conn, "SELECT 1 FROM pg_publication WHERE pubname = $1",
                                           {config.publication}, PGRES_TUPLES_OK,
                                           "looking up the publication"));
    const std::string name = detail::pg_identifier(conn, config.publication);
    const std::string sql = PQntuples(exists.get()) == 0
                                ? "CREATE PUBLICATION " + name + " FOR TABLE " + list
                                : "ALTER PUBLICATION " + name + " SET TABLE " + list;
    return pg_exec(conn, sql, PGRES_COMMAND_OK, "managing the publication").status();
}

}  // namespace

std::string redact_conninfo(const std::string& conninfo) {
    static const std::regex kUri("^(postgres(?:ql)?://[^:/@]*:)[^@]*@");
    static const std::regex kKeyValue("(password\\s*=\\s*)('(?:[^'\\\\]|\\\\.)*'|\\S+)");
    std::string out = std::regex_replace(conninfo, kUri, "$1***@");
    return std::regex_replace(out, kKeyValue, "$1***");
}

Result<ConninfoServers> conninfo_servers(const std::string& conninfo) {
    char* error = nullptr;
    std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> options(
        PQconninfoParse(conninfo.c_str(), &error), &PQconninfoFree);
    if (!options) {
        std::string message = error != nullptr ? error : "out of memory";
        PQfreemem(error);
        while (!message.empty() && message.back() == '\n') {
            message.pop_back();
        }
        return invalid_argument("conninfo: " + message);
    }
    auto split = [](const char* value) {
        std::vector<std::string> out;
        std::string text = value != nullptr ? value : "";
        std::size_t start = 0;
        while (!text.empty() && start <= text.size()) {
            std::size_t comma = std::min(text.find(',', start), text.size());
            std::string item = text.substr(start, comma - start);
            std::transform(item.begin(), item.end(), item.begin(),
                           [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
            out.push_back(item);
            start = comma + 1;
        }
        return out;
    };
    std::vector<std::string> hosts;
    std::vector<std::string> addresses;
    std::vector<std::string> ports;
    ConninfoServers out;
    for (const PQconninfoOption* option = options.get(); option->keyword != nullptr; ++option) {
        const std::string_view keyword = option->keyword;
        if (keyword == "host") {
            hosts = split(option->val);
        } else if (keyword == "hostaddr") {
            addresses = split(option->val);
        } else if (keyword == "port") {
            ports = split(option->val);
        } else if (keyword == "service") {
            out.service = option->val != nullptr && option->val[0] != '\0';
        }
    }
    // libpq takes one port for every server, or one per server, in order.
    auto port_of = [&](std::size_t i) {
        const std::string& port = ports.size() == 1 ? ports[0] : i < ports.size() ? ports[i] : "";
        return port.empty() ? std::string("5432") : port;
    };
    for (const auto* list : {&hosts, &addresses}) {
        for (std::size_t i = 0; i < list->size(); ++i) {
            out.servers.push_back((*list)[i] + ":" + port_of(i));
        }
    }
    return out;
}

Result<PostgresSourceConfig> postgres_config_from_json(const json& value) {
    if (!value.is_object()) {
        return invalid_argument("postgres source: expected an object");
    }
    PostgresSourceConfig config;
    auto string_field = [&](const char* name, std::string& out) -> Status {
        auto it = value.find(name);
        if (it == value.end() || !it->is_string() || it->get<std::string>().empty()) {
            return invalid_argument(std::string(name) + ": expected a non-empty string");
        }
        out = it->get<std::string>();
        return Status();
    };
    SLUICE_RETURN_IF_ERROR(string_field("conninfo", config.conninfo));
    SLUICE_RETURN_IF_ERROR(string_field("slot", config.slot));
    SLUICE_RETURN_IF_ERROR(string_field("publication", config.publication));
    if (value.contains("connection")) {
        SLUICE_RETURN_IF_ERROR(string_field("connection", config.connection));
    }
    SLUICE_ASSIGN_OR_RETURN(config.tables, table_mappings_from_json(value));
    for (const auto& [field, item] : value.items()) {
        if (field == "manage_publication" || field == "replica_identity_full") {
            if (!item.is_boolean()) {
                return invalid_argument(field + ": expected true or false");
            }
            (field == "manage_publication" ? config.manage_publication
                                           : config.replica_identity_full) = item.get<bool>();
        } else if (field == "heartbeat_ms") {
            if (!item.is_number_integer() || item.get<std::int64_t>() <= 0) {
                return invalid_argument("heartbeat_ms: expected a positive integer");
            }
            config.heartbeat_interval = std::chrono::milliseconds(item.get<std::int64_t>());
        } else if (field == "on_error") {
            SLUICE_ASSIGN_OR_RETURN(config.on_error, error_policy_from_json(item));
        } else if (field != "conninfo" && field != "slot" && field != "publication" &&
                   field != "tables" && field != "connection") {
            return invalid_argument(field + ": unknown field");
        }
    }
    SLUICE_RETURN_IF_ERROR(check_name(config.slot, "slot"));
    SLUICE_RETURN_IF_ERROR(check_name(config.publication, "publication"));
    return config;
}

json to_json(const PostgresSourceConfig& config, bool with_secrets) {
    json tables = json::array();
    for (const PostgresTableConfig& table : config.tables) {
        json item = to_json(table.mapping);
        item["table"] = table.table;
        tables.push_back(std::move(item));
    }
    json out{{"conninfo", with_secrets ? config.conninfo : redact_conninfo(config.conninfo)},
             {"slot", config.slot},
             {"publication", config.publication},
             {"tables", tables},
             {"manage_publication", config.manage_publication},
             {"replica_identity_full", config.replica_identity_full},
             {"heartbeat_ms", config.heartbeat_interval.count()},
             {"on_error", error_policy_name(config.on_error)}};
    if (!config.connection.empty()) {
        out["connection"] = config.connection;
    }
    return out;
}

Result<std::unique_ptr<PostgresSource>> PostgresSource::open(PostgresSourceConfig config) {
    SLUICE_RETURN_IF_ERROR(check_name(config.slot, "slot"));
    SLUICE_RETURN_IF_ERROR(check_name(config.publication, "publication"));
    if (config.tables.empty()) {
        return invalid_argument("postgres source: no tables");
    }
    auto state = std::make_unique<detail::PostgresState>();
    state->config = std::move(config);
    SLUICE_RETURN_IF_ERROR(state->ensure_sql());
    for (const PostgresTableConfig& table : state->config.tables) {
        SLUICE_ASSIGN_OR_RETURN(PgTable resolved, resolve_table(state->sql.get(), table));
        state->tables.push_back(std::move(resolved));
    }
    SLUICE_RETURN_IF_ERROR(manage_publication(state->sql.get(), state->config, state->tables));
    state->wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (state->wake_fd < 0) {
        return io_error(std::string("eventfd: ") + std::strerror(errno));
    }
    return std::make_unique<PostgresSource>(std::move(state));
}

PostgresSource::PostgresSource(std::unique_ptr<detail::PostgresState> state)
    : state_(std::move(state)) {}

PostgresSource::~PostgresSource() {
    if (state_ != nullptr) {
        detail::end_snapshot(*state_);
    }
}

namespace {

// Makes sure the stream can serve events after `from`: running, and started at or before it.
Status ensure_stream(detail::PostgresState& state, std::uint64_t from) {
    if (state.streaming && from >= state.floor) {
        return Status();
    }
    SLUICE_ASSIGN_OR_RETURN(auto slot, detail::slot_position(state));
    if (!slot) {
        return failed_precondition("replication slot '" + state.config.slot +
                                   "' does not exist; start again from \"\"");
    }
    if (from < *slot) {
        return failed_precondition("postgres checkpoint " + lsn_to_string(from) +
                                   " is older than the slot's confirmed position " +
                                   lsn_to_string(*slot) + "; start again from \"\"");
    }
    // Never report a flush position below what the slot has confirmed: it would move back.
    state.acknowledged = std::max(state.acknowledged, *slot);
    return state.start_stream(from);
}

}  // namespace

Result<Batch> PostgresSource::poll(std::string_view checkpoint, const PollOptions& options) {
    SLUICE_ASSIGN_OR_RETURN(Position position, parse_position(checkpoint));
    detail::PostgresState& state = *state_;
    const std::size_t limit = std::max<std::size_t>(options.max_events, 1);
    Batch batch;
    if (position.start) {
        SLUICE_ASSIGN_OR_RETURN(const std::uint64_t lsn, detail::begin_snapshot(state));
        position = Position();
        position.snapshot = true;
        position.lsn = lsn;
    }
    if (position.snapshot) {
        detail::SnapshotCursor cursor{position.lsn, position.table, position.after};
        SLUICE_RETURN_IF_ERROR(detail::read_snapshot(state, cursor, limit, batch));
        if (cursor.done) {
            position = Position();
            position.lsn = cursor.lsn;
        } else {
            position.table = cursor.table;
            position.after = cursor.after;
        }
        batch.checkpoint = format_position(position);
        return batch;
    }
    SLUICE_RETURN_IF_ERROR(ensure_stream(state, position.lsn));
    SLUICE_RETURN_IF_ERROR(state.pump());
    if (std::chrono::steady_clock::now() - state.last_status >= state.config.heartbeat_interval) {
        SLUICE_RETURN_IF_ERROR(state.send_status(/*reply_requested=*/true));
    }
    std::size_t taken = 0;
    bool more = false;
    for (const detail::BufferedEvent& buffered : state.buffer) {
        if (buffered.txn_end <= position.lsn ||
            (buffered.txn_end == position.txn && buffered.index < position.n)) {
            continue;
        }
        if (taken == limit) {
            more = true;
            break;
        }
        ++taken;
        if (buffered.is_error) {
            batch.errors.push_back(buffered.error);
            if (state.config.on_error == ErrorPolicy::kPause) {
                // Stop before it: the position stays where it is, so the next poll reports it
                // again until the mapping (or the source's start) changes.
                batch.paused = true;
                break;
            }
        } else {
            batch.events.push_back(buffered.event);
        }
        if (buffered.last) {
            position.lsn = buffered.txn_end;
            position.txn = 0;
            position.n = 0;
        } else {
            position.txn = buffered.txn_end;
            position.n = buffered.index + 1;
        }
    }
    batch.caught_up = !more && !batch.paused;
    if (taken == 0 && !state.in_txn && position.txn == 0) {
        // Idle: nothing undelivered before the server's last reported position.
        position.lsn = std::max(position.lsn, state.progress);
    }
    batch.checkpoint = format_position(position);
    return batch;
}

Status PostgresSource::acknowledge(std::string_view checkpoint) {
    SLUICE_ASSIGN_OR_RETURN(Position position, parse_position(checkpoint));
    detail::PostgresState& state = *state_;
    if (position.start || position.snapshot || position.lsn <= state.acknowledged) {
        return Status();  // the slot already sits at the snapshot's consistent point
    }
    state.acknowledged = position.lsn;
    while (!state.buffer.empty() && state.buffer.front().txn_end <= position.lsn) {
        state.buffer.pop_front();
    }
    state.floor = std::max(state.floor, position.lsn);
    if (state.streaming) {
        return state.send_status(false);
    }
    // No stream in this process (a tool, or after a lost connection): move the slot directly.
    SLUICE_RETURN_IF_ERROR(state.ensure_sql());
    return pg_exec_params(state.sql.get(),
                          "SELECT pg_replication_slot_advance($1, $2::pg_lsn)",
                          {state.config.slot, lsn_to_string(position.lsn)}, PGRES_TUPLES_OK,
                          "advancing the replication slot")
        .status();
}

namespace {

// A replication connection that breaks during wait() is poll's to report and repair (it
// reconnects from the checkpoint it is given), so wait() only says "poll now".
bool stream_broke_while_waiting(const detail::PostgresState& state, const Status& why) {
    log::warn("connectors.postgres", "replication stream broke while waiting",
              {{"slot", state.config.slot}, {"error", why.to_string()}});
    return true;
}

}  // namespace

Result<bool> PostgresSource::wait(std::chrono::milliseconds timeout) {
    detail::PostgresState& state = *state_;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const std::size_t before = state.buffer.size();
    while (true) {
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) {
            return false;
        }
        auto step = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
        if (state.streaming) {
            const auto heartbeat = state.last_status + state.config.heartbeat_interval;
            if (heartbeat <= now) {
                if (Status sent = state.send_status(/*reply_requested=*/true); !sent.ok()) {
                    return stream_broke_while_waiting(state, sent);
                }
                continue;
            }
            step = std::min(step, std::chrono::duration_cast<std::chrono::milliseconds>(
                                      heartbeat - now) + std::chrono::milliseconds(1));
        }
        pollfd fds[2] = {{state.wake_fd, POLLIN, 0},
                         {state.streaming ? PQsocket(state.repl.get()) : -1, POLLIN, 0}};
        const int ready = ::poll(fds, state.streaming ? 2 : 1, static_cast<int>(step.count()));
        if (ready < 0 && errno != EINTR) {
            return io_error(std::string("waiting for postgresql: ") + std::strerror(errno));
        }
        if (fds[0].revents & POLLIN) {
            std::uint64_t value = 0;
            [[maybe_unused]] ssize_t n = ::read(state.wake_fd, &value, sizeof(value));
            return false;
        }
        if (state.streaming && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            if (Status pumped = state.pump(); !pumped.ok()) {
                return stream_broke_while_waiting(state, pumped);
            }
            if (state.buffer.size() != before) {
                return true;
            }
        }
    }
}

void PostgresSource::wake() {
    const std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(state_->wake_fd, &one, sizeof(one));
}

Result<json> PostgresSource::status() {
    detail::PostgresState& state = *state_;
    SLUICE_RETURN_IF_ERROR(state.ensure_sql());
    json tables = json::array();
    for (const PgTable& table : state.tables) {
        tables.push_back(table.display);
    }
    json out{{"kind", "postgres"},
             {"slot", state.config.slot},
             {"publication", state.config.publication},
             {"tables", tables},
             {"streaming", state.streaming},
             {"buffered_events", state.buffer.size()}};
    SLUICE_ASSIGN_OR_RETURN(
        PgResult slot,
        pg_exec_params(state.sql.get(),
                       "SELECT confirmed_flush_lsn::text, pg_current_wal_lsn()::text, "
                       "pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint, "
                       "active FROM pg_replication_slots WHERE slot_name = $1",
                       {state.config.slot}, PGRES_TUPLES_OK, "reading the replication slot"));
    if (PQntuples(slot.get()) == 1) {
        out["confirmed_flush_lsn"] = PQgetvalue(slot.get(), 0, 0);
        out["current_wal_lsn"] = PQgetvalue(slot.get(), 0, 1);
        out["lag_bytes"] = std::stoll(PQgetvalue(slot.get(), 0, 2));
        out["slot_active"] = PQgetvalue(slot.get(), 0, 3)[0] == 't';
    } else {
        out["confirmed_flush_lsn"] = nullptr;
    }
    return out;
}

Status PostgresSource::drop_slot() {
    detail::PostgresState& state = *state_;
    state.stop_stream();
    detail::end_snapshot(state);
    return detail::drop_slot_if_exists(state);
}

}  // namespace sluice::connectors
