#include "connectors/push_source.h"

#include <algorithm>

#include "connectors/detail/file_util.h"
#include "connectors/detail/sqlite_util.h"

namespace sluice::connectors {

using detail::Stmt;
using nlohmann::json;

namespace detail {

struct PushSourceState {
    PushSourceConfig config;
    std::mutex mutex;  // serialises use of db
    Db db;
};

}  // namespace detail

namespace {

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

Result<std::int64_t> parse_seq(std::string_view checkpoint) {
    if (checkpoint.empty()) {
        return std::int64_t{0};
    }
    json value = json::parse(checkpoint, nullptr, false);
    // "v" read as json: value("v", 0) throws when it is not a number.
    if (!value.is_object() || value.value("v", json()) != 1 || !value.contains("seq") ||
        !value["seq"].is_number_integer()) {
        return invalid_argument("push checkpoint '" + std::string(checkpoint.substr(0, 200)) +
                                "': expected {\"v\":1,\"seq\":S}");
    }
    return value["seq"].get<std::int64_t>();
}

std::string format_seq(std::int64_t seq) { return json{{"v", 1}, {"seq", seq}}.dump(); }

Result<std::int64_t> scalar(sqlite3* db, std::string_view sql) {
    SLUICE_ASSIGN_OR_RETURN(Stmt stmt, detail::prepare(db, sql));
    if (sqlite3_step(stmt.get()) != SQLITE_ROW) {
        return detail::sqlite_error(db, "reading the push log");
    }
    return sqlite3_column_int64(stmt.get(), 0);
}

Status validate_idempotency_key(std::string_view key) {
    if (key.empty() || key.size() > 255) {
        return invalid_argument("Idempotency-Key: expected 1 to 255 characters");
    }
    for (char c : key) {
        if (c < 0x21 || c > 0x7e) {
            return invalid_argument("Idempotency-Key: expected printable ASCII without spaces");
        }
    }
    return Status();
}

}  // namespace

Result<PushSourceConfig> push_config_from_json(const json& value) {
    PushSourceConfig config;
    if (value.is_null()) {
        return config;
    }
    if (!value.is_object()) {
        return invalid_argument("http source: expected an object");
    }
    for (const auto& [field, item] : value.items()) {
        if (field == "idempotency_window_s") {
            // A century at most: a larger count read as int64 would wrap negative (or overflow
            // `now - window`), and a negative window expires every key before it is looked up.
            constexpr std::uint64_t kMaxWindowS = std::uint64_t{100} * 366 * 24 * 3600;
            if (!item.is_number_unsigned() || item.get<std::uint64_t>() == 0 ||
                item.get<std::uint64_t>() > kMaxWindowS) {
                return invalid_argument(
                    "idempotency_window_s: expected a positive integer of "
                    "seconds, at most a century (" +
                    std::to_string(kMaxWindowS) + "), found " + item.dump());
            }
            config.idempotency_window =
                std::chrono::seconds(static_cast<std::int64_t>(item.get<std::uint64_t>()));
        } else if (field == "max_events_per_request") {
            if (!item.is_number_unsigned() || item.get<std::uint64_t>() == 0) {
                return invalid_argument("max_events_per_request: expected a positive integer");
            }
            config.max_events_per_request = item.get<std::size_t>();
        } else {
            return invalid_argument(field + ": unknown field");
        }
    }
    return config;
}

json to_json(const PushSourceConfig& config) {
    return json{{"idempotency_window_s", config.idempotency_window.count()},
                {"max_events_per_request", config.max_events_per_request}};
}

Result<std::unique_ptr<PushSource>> PushSource::open(PushSourceConfig config) {
    auto state = std::make_unique<detail::PushSourceState>();
    SLUICE_ASSIGN_OR_RETURN(state->db, detail::open_db(config.path, /*create=*/true));
    sqlite3* db = state->db.get();
    // FULL: every commit is fsynced before ingest() returns, so an answered request survives a
    // crash of the process or the machine.
    SLUICE_RETURN_IF_ERROR(detail::exec(
        db,
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
        "CREATE TABLE IF NOT EXISTS events(seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT "
        "NULL, op TEXT NOT NULL, document TEXT, received_at INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS idempotency(key TEXT PRIMARY KEY, request_hash TEXT NOT "
        "NULL, response TEXT NOT NULL, created_at INTEGER NOT NULL);"
        "CREATE INDEX IF NOT EXISTS idempotency_created ON idempotency(created_at);"
        "CREATE TABLE IF NOT EXISTS state(name TEXT PRIMARY KEY, value INTEGER);"));
    state->config = std::move(config);
    return std::make_unique<PushSource>(std::move(state));
}

PushSource::PushSource(std::unique_ptr<detail::PushSourceState> state)
    : state_(std::move(state)) {}

PushSource::~PushSource() = default;

Result<IngestResult> PushSource::ingest(std::string_view idempotency_key, const json& body) {
    SLUICE_RETURN_IF_ERROR(validate_idempotency_key(idempotency_key));
    if (!body.is_object() || !body.contains("events") || !body["events"].is_array()) {
        return invalid_argument("events: expected an array of change events");
    }
    for (const auto& [field, item] : body.items()) {
        if (field != "events") {
            return invalid_argument(field + ": unknown field");
        }
    }
    const json& items = body["events"];
    if (items.empty()) {
        return invalid_argument("events: expected at least one event");
    }
    if (items.size() > state_->config.max_events_per_request) {
        return Status(StatusCode::kPayloadTooLarge,
                      "events: " + std::to_string(items.size()) + " events, at most " +
                          std::to_string(state_->config.max_events_per_request) +
                          " per request");
    }
    std::vector<ChangeEvent> events;
    events.reserve(items.size());
    for (std::size_t i = 0; i < items.size(); ++i) {
        SLUICE_ASSIGN_OR_RETURN(ChangeEvent event, change_event_from_json(
                                                       items[i], "events[" + std::to_string(i) +
                                                                     "]"));
        events.push_back(std::move(event));
    }
    const std::string request_hash = detail::sha256_hex(dump_json(body));

    std::lock_guard lock(state_->mutex);
    sqlite3* db = state_->db.get();
    SLUICE_ASSIGN_OR_RETURN(auto txn, detail::Transaction::begin(db, "IMMEDIATE"));
    const std::int64_t now = unix_now();
    {
        SLUICE_ASSIGN_OR_RETURN(Stmt expire,
                                detail::prepare(db, "DELETE FROM idempotency WHERE created_at < ?"));
        sqlite3_bind_int64(expire.get(), 1, now - state_->config.idempotency_window.count());
        SLUICE_RETURN_IF_ERROR(detail::step_done(db, expire.get(), "expiring idempotency keys"));
    }
    {
        SLUICE_ASSIGN_OR_RETURN(
            Stmt seen,
            detail::prepare(db, "SELECT request_hash, response FROM idempotency WHERE key = ?"));
        detail::bind_text(seen.get(), 1, idempotency_key);
        if (sqlite3_step(seen.get()) == SQLITE_ROW) {
            if (detail::column_text(seen.get(), 0) != request_hash) {
                return Status(StatusCode::kAlreadyExists,
                              "Idempotency-Key '" + std::string(idempotency_key) +
                                  "' was used with a different request body");
            }
            json response = json::parse(detail::column_text(seen.get(), 1), nullptr, false);
            if (response.is_discarded()) {
                return data_loss("push log: stored answer for an idempotency key is corrupt");
            }
            return IngestResult{std::move(response), true};
        }
    }
    SLUICE_ASSIGN_OR_RETURN(
        Stmt insert, detail::prepare(db, "INSERT INTO events(key, op, document, received_at) "
                                         "VALUES (?, ?, ?, ?)"));
    std::int64_t first = 0;
    std::int64_t last = 0;
    for (const ChangeEvent& event : events) {
        sqlite3_reset(insert.get());
        detail::bind_text(insert.get(), 1, event.key);
        detail::bind_text(insert.get(), 2, op_name(event.op));
        if (event.op == Op::kUpsert) {
            const std::string document = dump_json(json{{"text", event.document.text},
                                                        {"metadata", event.document.metadata},
                                                        {"acl", to_json(event.document.acl)}});
            detail::bind_text(insert.get(), 3, document);
        } else {
            sqlite3_bind_null(insert.get(), 3);
        }
        sqlite3_bind_int64(insert.get(), 4, now);
        SLUICE_RETURN_IF_ERROR(detail::step_done(db, insert.get(), "appending to the push log"));
        last = sqlite3_last_insert_rowid(db);
        if (first == 0) {
            first = last;
        }
    }
    json response{{"accepted", events.size()}, {"first_seq", first}, {"last_seq", last}};
    SLUICE_ASSIGN_OR_RETURN(
        Stmt remember, detail::prepare(db, "INSERT INTO idempotency(key, request_hash, response, "
                                           "created_at) VALUES (?, ?, ?, ?)"));
    detail::bind_text(remember.get(), 1, idempotency_key);
    detail::bind_text(remember.get(), 2, request_hash);
    detail::bind_text(remember.get(), 3, response.dump());
    sqlite3_bind_int64(remember.get(), 4, now);
    SLUICE_RETURN_IF_ERROR(detail::step_done(db, remember.get(), "storing the idempotency key"));
    SLUICE_RETURN_IF_ERROR(txn.commit());
    {
        std::lock_guard wake_lock(wake_mutex_);
        ++wake_generation_;
    }
    wake_cv_.notify_all();
    return IngestResult{std::move(response), false};
}

Result<Batch> PushSource::poll(std::string_view checkpoint, const PollOptions& options) {
    SLUICE_ASSIGN_OR_RETURN(std::int64_t seq, parse_seq(checkpoint));
    std::lock_guard lock(state_->mutex);
    sqlite3* db = state_->db.get();
    SLUICE_ASSIGN_OR_RETURN(auto txn, detail::Transaction::begin(db));
    SLUICE_ASSIGN_OR_RETURN(
        const std::int64_t acknowledged,
        scalar(db, "SELECT coalesce((SELECT value FROM state WHERE name = 'acknowledged'), 0)"));
    if (seq < acknowledged) {
        return failed_precondition("push checkpoint at seq " + std::to_string(seq) +
                                   " is older than the acknowledged seq " +
                                   std::to_string(acknowledged) + "; those events are removed");
    }
    const std::size_t limit = std::max<std::size_t>(options.max_events, 1);
    SLUICE_ASSIGN_OR_RETURN(Stmt select,
                            detail::prepare(db, "SELECT seq, key, op, document FROM events "
                                                "WHERE seq > ? ORDER BY seq LIMIT ?"));
    sqlite3_bind_int64(select.get(), 1, seq);
    sqlite3_bind_int64(select.get(), 2, static_cast<sqlite3_int64>(limit));
    Batch batch;
    int rc = SQLITE_ROW;
    while ((rc = sqlite3_step(select.get())) == SQLITE_ROW) {
        seq = sqlite3_column_int64(select.get(), 0);
        ChangeEvent event;
        event.key = detail::column_text(select.get(), 1);
        event.offset = "seq:" + std::to_string(seq);
        SLUICE_ASSIGN_OR_RETURN(event.op, parse_op(detail::column_text(select.get(), 2)));
        if (event.op == Op::kUpsert) {
            json document = json::parse(detail::column_text(select.get(), 3), nullptr, false);
            auto acl = document.is_object() && document.contains("acl")
                           ? acl_from_json(document["acl"], "acl")
                           : Result<Acl>(data_loss("push log: document without acl"));
            if (!document.is_object() || !document.contains("text") || !acl) {
                return data_loss("push log: stored document at seq " + std::to_string(seq) +
                                 " is corrupt");
            }
            event.document.text = document["text"].get<std::string>();
            event.document.metadata = document.value("metadata", json::object());
            event.document.acl = *acl;
        }
        batch.events.push_back(std::move(event));
    }
    if (rc != SQLITE_DONE) {
        return detail::sqlite_error(db, "reading the push log");
    }
    SLUICE_RETURN_IF_ERROR(txn.commit());
    batch.caught_up = batch.events.size() < limit;
    batch.checkpoint = format_seq(seq);
    return batch;
}

Status PushSource::acknowledge(std::string_view checkpoint) {
    SLUICE_ASSIGN_OR_RETURN(const std::int64_t seq, parse_seq(checkpoint));
    std::lock_guard lock(state_->mutex);
    sqlite3* db = state_->db.get();
    SLUICE_ASSIGN_OR_RETURN(auto txn, detail::Transaction::begin(db, "IMMEDIATE"));
    SLUICE_ASSIGN_OR_RETURN(
        Stmt record, detail::prepare(db, "INSERT INTO state(name, value) VALUES ('acknowledged', "
                                         "?1) ON CONFLICT(name) DO UPDATE SET value = "
                                         "max(value, excluded.value)"));
    sqlite3_bind_int64(record.get(), 1, seq);
    SLUICE_RETURN_IF_ERROR(detail::step_done(db, record.get(), "recording acknowledged seq"));
    SLUICE_ASSIGN_OR_RETURN(Stmt prune, detail::prepare(db, "DELETE FROM events WHERE seq <= ?"));
    sqlite3_bind_int64(prune.get(), 1, seq);
    SLUICE_RETURN_IF_ERROR(detail::step_done(db, prune.get(), "pruning the push log"));
    return txn.commit();
}

Result<bool> PushSource::wait(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    auto last_seq = [&]() -> Result<std::int64_t> {
        std::lock_guard lock(state_->mutex);
        return scalar(state_->db.get(), "SELECT coalesce(max(seq), 0) FROM events");
    };
    SLUICE_ASSIGN_OR_RETURN(const std::int64_t start, last_seq());
    std::unique_lock lock(wake_mutex_);
    const std::uint64_t generation = wake_generation_;
    while (true) {
        // Another process (the CLI, a second server) may append: look at the log as well.
        const auto step = std::min<std::chrono::steady_clock::duration>(
            std::chrono::milliseconds(100),
            std::max(deadline - std::chrono::steady_clock::now(),
                     std::chrono::steady_clock::duration::zero()));
        if (wake_cv_.wait_for(lock, step, [&] { return wake_generation_ != generation; })) {
            return true;
        }
        lock.unlock();
        SLUICE_ASSIGN_OR_RETURN(const std::int64_t now_seq, last_seq());
        lock.lock();
        if (now_seq != start) {
            return true;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            return false;
        }
    }
}

void PushSource::wake() {
    {
        std::lock_guard lock(wake_mutex_);
        ++wake_generation_;
    }
    wake_cv_.notify_all();
}

Result<json> PushSource::status() {
    std::lock_guard lock(state_->mutex);
    sqlite3* db = state_->db.get();
    SLUICE_ASSIGN_OR_RETURN(const std::int64_t pending, scalar(db, "SELECT count(*) FROM events"));
    SLUICE_ASSIGN_OR_RETURN(
        const std::int64_t acknowledged,
        scalar(db, "SELECT coalesce((SELECT value FROM state WHERE name = 'acknowledged'), 0)"));
    SLUICE_ASSIGN_OR_RETURN(const std::int64_t keys, scalar(db, "SELECT count(*) FROM idempotency"));
    return json{{"kind", "http"},
                {"pending_events", pending},
                {"acknowledged_seq", acknowledged},
                {"idempotency_keys", keys}};
}

}  // namespace sluice::connectors
