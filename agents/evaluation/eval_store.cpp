#include "agents/evaluation/eval_store.h"

#include "agents/detail/known_fields.h"
#include "agents/detail/sqlite.h"
#include "agents/trace.h"

namespace sluice::agents::evaluation {

using nlohmann::json;

struct EvalStore::Impl {
    std::mutex mutex;
    detail::DbPtr db;  // guarded by mutex
};

namespace {

std::int64_t now_ms() { return now_us() / 1000; }

Status step_done(sqlite3* db, sqlite3_stmt* stmt, const std::string& what) {
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        return detail::sqlite_error(db, what);
    }
    return Status();
}

EvalSetVersion version_from(sqlite3_stmt* stmt) {
    return {detail::column_text(stmt, 0), sqlite3_column_int(stmt, 1), sqlite3_column_int(stmt, 2),
            sqlite3_column_int64(stmt, 3), detail::column_text(stmt, 4)};
}

}  // namespace

std::string new_run_id() { return "run_" + new_trace_id().substr(0, 16); }

std::optional<bool> Feedback::label() const {
    if (rating.is_string()) {
        return rating == "up";
    }
    int value = rating.get<int>();
    if (value == 3) {
        return std::nullopt;
    }
    return value > 3;
}

Result<Feedback> feedback_from_json(const json& body) {
    if (!body.is_object()) {
        return invalid_argument("feedback: expected a JSON object");
    }
    SLUICE_RETURN_IF_ERROR(detail::refuse_unknown_fields(
        body, "feedback", {"trace_id", "rating", "correction", "comment"}));
    Feedback feedback;
    if (!body.contains("trace_id") || !body["trace_id"].is_string()) {
        return invalid_argument("trace_id: required string");
    }
    feedback.trace_id = body["trace_id"];
    bool hex = feedback.trace_id.size() == 32;
    for (char c : feedback.trace_id) {
        hex = hex && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
    }
    if (!hex) {
        return invalid_argument("trace_id: expected 32 lower-case hex digits");
    }
    if (!body.contains("rating")) {
        return invalid_argument("rating: required (1 to 5, or \"up\" / \"down\")");
    }
    const json& rating = body["rating"];
    // Compared as a 64-bit number: read as int, 4294967297 became 1 and was stored as a "no".
    bool valid = (rating.is_number_integer() && rating.get<std::int64_t>() >= 1 &&
                  rating.get<std::int64_t>() <= 5) ||
                 (rating.is_string() && (rating == "up" || rating == "down"));
    if (!valid) {
        return invalid_argument("rating: expected an integer 1 to 5, or \"up\" / \"down\", found " +
                                rating.dump());
    }
    feedback.rating = rating;
    for (const char* field : {"correction", "comment"}) {
        if (!body.contains(field) || body[field].is_null()) {
            continue;
        }
        if (!body[field].is_string()) {
            return invalid_argument(std::string(field) + ": expected a string");
        }
        (std::string(field) == "correction" ? feedback.correction : feedback.comment) =
            body[field].get<std::string>();
    }
    if (feedback.correction && feedback.correction->empty()) {
        return invalid_argument("correction: expected a non-empty string");
    }
    return feedback;
}

json feedback_to_json(const Feedback& feedback) {
    json out = {{"id", feedback.id},
                {"trace_id", feedback.trace_id},
                {"principal", feedback.principal},
                {"rating", feedback.rating},
                {"created_at", feedback.created_at_ms}};
    out["correction"] = feedback.correction ? json(*feedback.correction) : json(nullptr);
    out["comment"] = feedback.comment ? json(*feedback.comment) : json(nullptr);
    auto label = feedback.label();
    out["label"] = label ? json(*label ? "yes" : "no") : json(nullptr);
    return out;
}

EvalStore::EvalStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EvalStore::~EvalStore() = default;

Result<std::unique_ptr<EvalStore>> EvalStore::open(const std::filesystem::path& db_path) {
    SLUICE_ASSIGN_OR_RETURN(detail::DbPtr db,
                            detail::open_db(db_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE));
    SLUICE_RETURN_IF_ERROR(detail::exec(db.get(), R"sql(
        CREATE TABLE IF NOT EXISTS eval_set_versions (
            name TEXT NOT NULL, version INTEGER NOT NULL, n_rows INTEGER NOT NULL,
            created_at_ms INTEGER NOT NULL, created_by TEXT NOT NULL, rows TEXT NOT NULL,
            PRIMARY KEY (name, version));
        CREATE TABLE IF NOT EXISTS eval_runs (
            id TEXT PRIMARY KEY, agent TEXT NOT NULL, set_name TEXT NOT NULL,
            set_version INTEGER NOT NULL, principal TEXT NOT NULL,
            created_at_ms INTEGER NOT NULL, status TEXT NOT NULL, body TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS eval_feedback (
            id INTEGER PRIMARY KEY AUTOINCREMENT, trace_id TEXT NOT NULL,
            principal TEXT NOT NULL, rating TEXT NOT NULL, correction TEXT, comment TEXT,
            created_at_ms INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS eval_feedback_by_trace ON eval_feedback(trace_id);
        CREATE TABLE IF NOT EXISTS eval_monitor_settings (
            key TEXT PRIMARY KEY, body TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS eval_monitor_verdicts (
            trace_id TEXT NOT NULL, judge TEXT NOT NULL, verdict TEXT NOT NULL,
            rationale TEXT NOT NULL, created_at_ms INTEGER NOT NULL,
            PRIMARY KEY (trace_id, judge));
    )sql"));
    auto impl = std::make_unique<Impl>();
    impl->db = std::move(db);
    return std::make_unique<EvalStore>(std::move(impl));
}

Result<EvalSetVersion> EvalStore::add_version(const std::string& name,
                                              const std::vector<EvalRow>& rows,
                                              const std::string& created_by) {
    std::lock_guard lock(impl_->mutex);
    sqlite3* db = impl_->db.get();
    detail::Transaction transaction(db);
    SLUICE_RETURN_IF_ERROR(transaction.begin());
    SLUICE_ASSIGN_OR_RETURN(auto latest, detail::prepare(db,
        "SELECT COALESCE(MAX(version), 0) FROM eval_set_versions WHERE name = ?"));
    detail::bind_text(latest.get(), 1, name);
    if (sqlite3_step(latest.get()) != SQLITE_ROW) {
        return detail::sqlite_error(db, "reading the latest version of '" + name + "'");
    }
    EvalSetVersion out{name, sqlite3_column_int(latest.get(), 0) + 1,
                       static_cast<int>(rows.size()), now_ms(), created_by};
    SLUICE_ASSIGN_OR_RETURN(auto insert, detail::prepare(db,
        "INSERT INTO eval_set_versions (name, version, n_rows, created_at_ms, created_by, rows) "
        "VALUES (?, ?, ?, ?, ?, ?)"));
    detail::bind_text(insert.get(), 1, name);
    sqlite3_bind_int(insert.get(), 2, out.version);
    sqlite3_bind_int(insert.get(), 3, out.n_rows);
    sqlite3_bind_int64(insert.get(), 4, out.created_at_ms);
    detail::bind_text(insert.get(), 5, created_by);
    detail::bind_text(insert.get(), 6, eval_rows_to_jsonl(rows));
    SLUICE_RETURN_IF_ERROR(step_done(db, insert.get(), "storing an evaluation set version"));
    SLUICE_RETURN_IF_ERROR(transaction.commit());
    return out;
}

Result<int> EvalStore::remove_set(const std::string& name) {
    std::lock_guard lock(impl_->mutex);
    sqlite3* db = impl_->db.get();
    SLUICE_ASSIGN_OR_RETURN(auto erase,
                            detail::prepare(db, "DELETE FROM eval_set_versions WHERE name = ?"));
    detail::bind_text(erase.get(), 1, name);
    SLUICE_RETURN_IF_ERROR(step_done(db, erase.get(), "deleting evaluation set '" + name + "'"));
    return sqlite3_changes(db);
}

Result<std::vector<EvalSetVersion>> EvalStore::list_sets() {
    std::lock_guard lock(impl_->mutex);
    sqlite3* db = impl_->db.get();
    SLUICE_ASSIGN_OR_RETURN(auto stmt, detail::prepare(db,
        "SELECT v.name, v.version, v.n_rows, v.created_at_ms, v.created_by "
        "FROM eval_set_versions v WHERE v.version = "
        "(SELECT MAX(version) FROM eval_set_versions w WHERE w.name = v.name) ORDER BY v.name"));
    std::vector<EvalSetVersion> out;
    while (sqlite3_step(stmt.get()) == SQLITE_ROW) {
        out.push_back(version_from(stmt.get()));
    }
    return out;
}

Result<std::vector<EvalSetVersion>> EvalStore::versions(const std::string& name) {
    std::lock_guard lock(impl_->mutex);
    sqlite3* db = impl_->db.get();
    SLUICE_ASSIGN_OR_RETURN(auto stmt, detail::prepare(db,
        "SELECT name, version, n_rows, created_at_ms, created_by FROM eval_set_versions "
        "WHERE name = ? ORDER BY version"));
    detail::bind_text(stmt.get(), 1, name);
    std::vector<EvalSetVersion> out;
    while (sqlite3_step(stmt.get()) == SQLITE_ROW) {
        out.push_back(version_from(stmt.get()));
    }
    if (out.empty()) {
        return not_found("evaluation set '" + name + "' does not exist");
    }
    return out;
}

Result<std::vector<EvalRow>> EvalStore::rows(const std::string& name, int version,
                                             EvalSetVersion* resolved) {
    std::string text;
    EvalSetVersion found;
    {
        std::lock_guard lock(impl_->mutex);
        sqlite3* db = impl_->db.get();
        SLUICE_ASSIGN_OR_RETURN(auto stmt, detail::prepare(db,
            "SELECT name, version, n_rows, created_at_ms, created_by, rows FROM eval_set_versions "
            "WHERE name = ? AND (version = ? OR (? = 0 AND version = "
            "(SELECT MAX(version) FROM eval_set_versions WHERE name = ?)))"));
        detail::bind_text(stmt.get(), 1, name);
        sqlite3_bind_int(stmt.get(), 2, version);
        sqlite3_bind_int(stmt.get(), 3, version);
        detail::bind_text(stmt.get(), 4, name);
        if (sqlite3_step(stmt.get()) != SQLITE_ROW) {
            return not_found(version == 0 ? "evaluation set '" + name + "' does not exist"
                                          : "evaluation set '" + name + "' has no version " +
                                                std::to_string(version));
        }
        found = version_from(stmt.get());
        text = detail::column_text(stmt.get(), 5);
    }
    if (resolved != nullptr) {
        *resolved = found;
    }
    return parse_eval_jsonl(text);
}

Status EvalStore::save_run(const RunSummary& summary, const json& run) {
    std::lock_guard lock(impl_->mutex);
    sqlite3* db = impl_->db.get();
    SLUICE_ASSIGN_OR_RETURN(auto stmt, detail::prepare(db,
        "INSERT OR REPLACE INTO eval_runs (id, agent, set_name, set_version, principal, "
        "created_at_ms, status, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"));
    detail::bind_text(stmt.get(), 1, summary.id);
    detail::bind_text(stmt.get(), 2, summary.agent);
    detail::bind_text(stmt.get(), 3, summary.set);
    sqlite3_bind_int(stmt.get(), 4, summary.set_version);
    detail::bind_text(stmt.get(), 5, summary.principal);
    sqlite3_bind_int64(stmt.get(), 6, summary.created_at_ms);
    detail::bind_text(stmt.get(), 7, summary.status);
    detail::bind_text(stmt.get(), 8, dump_safe(run));
    // One statement: SQLite makes it atomic on its own.
    return step_done(db, stmt.get(), "storing evaluation run '" + summary.id + "'");
}

Result<json> EvalStore::run(const std::string& id) {
    std::lock_guard lock(impl_->mutex);
    sqlite3* db = impl_->db.get();
    SLUICE_ASSIGN_OR_RETURN(auto stmt, detail::prepare(db, "SELECT body FROM eval_runs WHERE id = ?"));
    detail::bind_text(stmt.get(), 1, id);
    if (sqlite3_step(stmt.get()) != SQLITE_ROW) {
        return not_found("evaluation run '" + id + "' does not exist");
    }
    json body = json::parse(detail::column_text(stmt.get(), 0), nullptr, false);
    if (body.is_discarded()) {
        return internal_error("evaluation run '" + id + "': the stored body is not JSON");
    }
    return body;
}

Result<std::vector<std::pair<RunSummary, json>>> EvalStore::list_runs() {
    std::lock_guard lock(impl_->mutex);
    sqlite3* db = impl_->db.get();
    SLUICE_ASSIGN_OR_RETURN(auto stmt, detail::prepare(db,
        "SELECT id, agent, set_name, set_version, principal, created_at_ms, status, body "
        "FROM eval_runs ORDER BY created_at_ms, id"));
    std::vector<std::pair<RunSummary, json>> out;
    while (sqlite3_step(stmt.get()) == SQLITE_ROW) {
        RunSummary s{detail::column_text(stmt.get(), 0), detail::column_text(stmt.get(), 1),
                     detail::column_text(stmt.get(), 2), sqlite3_column_int(stmt.get(), 3),
                     detail::column_text(stmt.get(), 4), sqlite3_column_int64(stmt.get(), 5),
                     detail::column_text(stmt.get(), 6)};
        out.emplace_back(std::move(s),
                         json::parse(detail::column_text(stmt.get(), 7), nullptr, false));
    }
    return out;
}

Result<std::int64_t> EvalStore::add_feedback(const Feedback& feedback) {
    std::lock_guard lock(impl_->mutex);
    sqlite3* db = impl_->db.get();
    SLUICE_ASSIGN_OR_RETURN(auto stmt, detail::prepare(db,
        "INSERT INTO eval_feedback (trace_id, principal, rating, correction, comment, "
        "created_at_ms) VALUES (?, ?, ?, ?, ?, ?)"));
    detail::bind_text(stmt.get(), 1, feedback.trace_id);
    detail::bind_text(stmt.get(), 2, feedback.principal);
    detail::bind_text(stmt.get(), 3, feedback.rating.dump());
    if (feedback.correction) {
        detail::bind_text(stmt.get(), 4, *feedback.correction);
    }
    if (feedback.comment) {
        detail::bind_text(stmt.get(), 5, *feedback.comment);
    }
    sqlite3_bind_int64(stmt.get(), 6, feedback.created_at_ms ? feedback.created_at_ms : now_ms());
    SLUICE_RETURN_IF_ERROR(step_done(db, stmt.get(), "storing feedback"));
    return sqlite3_last_insert_rowid(db);
}

Result<std::vector<Feedback>> EvalStore::feedback(const std::string& trace_id) {
    std::lock_guard lock(impl_->mutex);
    sqlite3* db = impl_->db.get();
    SLUICE_ASSIGN_OR_RETURN(auto stmt, detail::prepare(db,
        "SELECT id, trace_id, principal, rating, correction, comment, created_at_ms "
        "FROM eval_feedback WHERE ? = '' OR trace_id = ? ORDER BY id"));
    detail::bind_text(stmt.get(), 1, trace_id);
    detail::bind_text(stmt.get(), 2, trace_id);
    std::vector<Feedback> out;
    while (sqlite3_step(stmt.get()) == SQLITE_ROW) {
        Feedback f;
        f.id = sqlite3_column_int64(stmt.get(), 0);
        f.trace_id = detail::column_text(stmt.get(), 1);
        f.principal = detail::column_text(stmt.get(), 2);
        f.rating = json::parse(detail::column_text(stmt.get(), 3));
        if (sqlite3_column_type(stmt.get(), 4) != SQLITE_NULL) {
            f.correction = detail::column_text(stmt.get(), 4);
        }
        if (sqlite3_column_type(stmt.get(), 5) != SQLITE_NULL) {
            f.comment = detail::column_text(stmt.get(), 5);
        }
        f.created_at_ms = sqlite3_column_int64(stmt.get(), 6);
        out.push_back(std::move(f));
    }
    return out;
}

Status EvalStore::put_monitor_settings(const json& settings) {
    std::lock_guard lock(impl_->mutex);
    sqlite3* db = impl_->db.get();
    SLUICE_ASSIGN_OR_RETURN(auto stmt, detail::prepare(db,
        "INSERT OR REPLACE INTO eval_monitor_settings (key, body) VALUES ('settings', ?)"));
    detail::bind_text(stmt.get(), 1, settings.dump());
    return step_done(db, stmt.get(), "storing the monitor settings");
}

Result<json> EvalStore::monitor_settings() {
    std::lock_guard lock(impl_->mutex);
    sqlite3* db = impl_->db.get();
    SLUICE_ASSIGN_OR_RETURN(auto stmt, detail::prepare(db,
        "SELECT body FROM eval_monitor_settings WHERE key = 'settings'"));
    if (sqlite3_step(stmt.get()) != SQLITE_ROW) {
        return json(nullptr);
    }
    return json::parse(detail::column_text(stmt.get(), 0), nullptr, false);
}

Status EvalStore::add_monitor_verdicts(const std::vector<MonitorVerdict>& verdicts) {
    std::lock_guard lock(impl_->mutex);
    sqlite3* db = impl_->db.get();
    detail::Transaction transaction(db);
    SLUICE_RETURN_IF_ERROR(transaction.begin());
    SLUICE_ASSIGN_OR_RETURN(auto stmt, detail::prepare(db,
        "INSERT OR REPLACE INTO eval_monitor_verdicts (trace_id, judge, verdict, rationale, "
        "created_at_ms) VALUES (?, ?, ?, ?, ?)"));
    for (const auto& v : verdicts) {
        sqlite3_reset(stmt.get());
        detail::bind_text(stmt.get(), 1, v.trace_id);
        detail::bind_text(stmt.get(), 2, v.judge);
        detail::bind_text(stmt.get(), 3, v.yes ? "yes" : "no");
        detail::bind_text(stmt.get(), 4, v.rationale);
        sqlite3_bind_int64(stmt.get(), 5, v.created_at_ms ? v.created_at_ms : now_ms());
        SLUICE_RETURN_IF_ERROR(step_done(db, stmt.get(), "storing monitor verdicts"));
    }
    return transaction.commit();
}

Result<std::vector<MonitorVerdict>> EvalStore::monitor_verdicts(size_t limit) {
    std::lock_guard lock(impl_->mutex);
    sqlite3* db = impl_->db.get();
    SLUICE_ASSIGN_OR_RETURN(auto stmt, detail::prepare(db,
        "SELECT trace_id, judge, verdict, rationale, created_at_ms FROM eval_monitor_verdicts "
        "ORDER BY created_at_ms DESC, trace_id, judge LIMIT ?"));
    sqlite3_bind_int64(stmt.get(), 1, static_cast<sqlite3_int64>(limit));
    std::vector<MonitorVerdict> out;
    while (sqlite3_step(stmt.get()) == SQLITE_ROW) {
        out.push_back({detail::column_text(stmt.get(), 0), detail::column_text(stmt.get(), 1),
                       detail::column_text(stmt.get(), 2) == "yes",
                       detail::column_text(stmt.get(), 3), sqlite3_column_int64(stmt.get(), 4)});
    }
    return out;
}

}  // namespace sluice::agents::evaluation
