#include "governance/store.h"

#include <chrono>

#include "governance/detail/sqlite.h"

namespace sluice::governance {
namespace {

// Versioned migrations: entry i brings the schema from version i to i + 1. Append only; never
// edit a migration that has shipped.
const std::vector<std::string_view>& migrations() {
    static const std::vector<std::string_view> list = {
        R"sql(
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta (key, value) VALUES ('generation', 1);

CREATE TABLE principals (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL CHECK (kind IN ('user', 'service_principal', 'group')),
  is_admin INTEGER NOT NULL DEFAULT 0,
  created_at_ms INTEGER NOT NULL
);
CREATE TABLE group_members (
  group_id INTEGER NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
  member_id INTEGER NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
  PRIMARY KEY (group_id, member_id)
);
CREATE INDEX group_members_member ON group_members(member_id);

CREATE TABLE securables (
  id INTEGER PRIMARY KEY,
  type TEXT NOT NULL,
  name TEXT NOT NULL,
  full_name TEXT NOT NULL,
  parent_id INTEGER REFERENCES securables(id),
  owner_id INTEGER REFERENCES principals(id),
  comment TEXT NOT NULL DEFAULT '',
  created_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL,
  UNIQUE (type, full_name)
);
CREATE INDEX securables_parent ON securables(parent_id);
INSERT INTO securables (id, type, name, full_name, parent_id, owner_id, created_at_ms,
                        updated_at_ms)
  VALUES (1, 'metastore', 'metastore', '', NULL, NULL, 0, 0);

CREATE TABLE tags (
  securable_id INTEGER NOT NULL REFERENCES securables(id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (securable_id, key)
);

CREATE TABLE grants (
  securable_id INTEGER NOT NULL REFERENCES securables(id) ON DELETE CASCADE,
  principal_id INTEGER NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
  privilege TEXT NOT NULL,
  granted_by INTEGER,
  granted_at_ms INTEGER NOT NULL,
  PRIMARY KEY (securable_id, principal_id, privilege)
);

CREATE TABLE tokens (
  id TEXT PRIMARY KEY,
  principal_id INTEGER NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
  hash BLOB NOT NULL UNIQUE,
  comment TEXT NOT NULL DEFAULT '',
  created_at_ms INTEGER NOT NULL,
  expires_at_ms INTEGER,
  revoked_at_ms INTEGER,
  last_used_at_ms INTEGER
);

CREATE TABLE audit_log (
  seq INTEGER PRIMARY KEY,
  time_us INTEGER NOT NULL,
  principal TEXT NOT NULL,
  action TEXT NOT NULL,
  securable TEXT NOT NULL,
  result TEXT NOT NULL,
  request_id TEXT NOT NULL,
  client TEXT NOT NULL,
  token_id TEXT NOT NULL,
  decided_by TEXT NOT NULL,
  details TEXT NOT NULL,
  prev_hash BLOB NOT NULL,
  hash BLOB NOT NULL
);
-- Retention opens this gate inside its own transaction and closes it before commit.
CREATE TABLE audit_purge_gate (up_to_seq INTEGER NOT NULL);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit log is append-only: update refused'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
WHEN NOT EXISTS (SELECT 1 FROM audit_purge_gate WHERE OLD.seq <= up_to_seq)
BEGIN SELECT RAISE(ABORT, 'audit log is append-only: delete refused'); END;

CREATE TABLE audit_checkpoints (
  seq INTEGER PRIMARY KEY,
  hash BLOB NOT NULL,
  time_us INTEGER NOT NULL,
  public_key BLOB NOT NULL,
  signature BLOB NOT NULL
);
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;

CREATE TABLE audit_archives (
  id INTEGER PRIMARY KEY,
  first_seq INTEGER NOT NULL,
  last_seq INTEGER NOT NULL,
  last_hash BLOB NOT NULL,
  file TEXT NOT NULL,
  file_sha256 TEXT NOT NULL,
  archived_at_ms INTEGER NOT NULL
);
)sql",
        // 2: model endpoints (prices, guardrail policy), rate limits and token budgets, usage,
        // lineage, table columns, row filters and column masks.
        R"sql(
CREATE TABLE endpoints (
  name TEXT PRIMARY KEY,
  input_per_million REAL NOT NULL DEFAULT 0,
  output_per_million REAL NOT NULL DEFAULT 0,
  cached_input_per_million REAL NOT NULL DEFAULT 0,
  input_pii TEXT NOT NULL DEFAULT 'none' CHECK (input_pii IN ('none', 'mask', 'block')),
  output_pii TEXT NOT NULL DEFAULT 'none' CHECK (output_pii IN ('none', 'mask', 'block')),
  pii_types TEXT NOT NULL DEFAULT '',
  updated_by TEXT NOT NULL DEFAULT '',
  updated_at_ms INTEGER NOT NULL
);

CREATE TABLE rate_limits (
  id INTEGER PRIMARY KEY,
  principal_id INTEGER REFERENCES principals(id) ON DELETE CASCADE,
  endpoint TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('requests/min', 'tokens/min', 'tokens/day')),
  max_value INTEGER NOT NULL CHECK (max_value >= 0),
  created_by TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL
);
CREATE UNIQUE INDEX rate_limits_scope ON rate_limits (COALESCE(principal_id, 0), endpoint, kind);

CREATE TABLE usage (
  id INTEGER PRIMARY KEY,
  time_us INTEGER NOT NULL,
  request_id TEXT NOT NULL,
  principal_id INTEGER NOT NULL,
  principal TEXT NOT NULL,
  endpoint TEXT NOT NULL,
  agent TEXT NOT NULL,
  input_tokens INTEGER NOT NULL,
  output_tokens INTEGER NOT NULL,
  cached_tokens INTEGER NOT NULL,
  latency_ms REAL NOT NULL,
  cost_usd REAL NOT NULL,
  status TEXT NOT NULL
);
CREATE INDEX usage_time ON usage (time_us);
CREATE INDEX usage_principal_time ON usage (principal, time_us);

CREATE TABLE lineage_nodes (
  id INTEGER PRIMARY KEY,
  type TEXT NOT NULL,
  name TEXT NOT NULL,
  governed_type TEXT NOT NULL DEFAULT '',
  governed_name TEXT NOT NULL DEFAULT '',
  owner_id INTEGER NOT NULL DEFAULT 0,
  first_seen_ms INTEGER NOT NULL,
  UNIQUE (type, name)
);
CREATE TABLE lineage_edges (
  source_id INTEGER NOT NULL REFERENCES lineage_nodes(id),
  target_id INTEGER NOT NULL REFERENCES lineage_nodes(id),
  first_seen_ms INTEGER NOT NULL,
  last_seen_ms INTEGER NOT NULL,
  last_request_id TEXT NOT NULL,
  times INTEGER NOT NULL,
  PRIMARY KEY (source_id, target_id)
);
CREATE INDEX lineage_edges_target ON lineage_edges (target_id);

CREATE TABLE table_columns (
  securable_id INTEGER NOT NULL REFERENCES securables(id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  name TEXT NOT NULL,
  type_name TEXT NOT NULL,
  PRIMARY KEY (securable_id, name)
);
-- column_name '' holds the table's row filter; any other, that column's mask.
CREATE TABLE table_policies (
  securable_id INTEGER NOT NULL REFERENCES securables(id) ON DELETE CASCADE,
  column_name TEXT NOT NULL,
  expression TEXT NOT NULL,
  created_by TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  PRIMARY KEY (securable_id, column_name)
);
)sql",
        // 3: signed checkpoints record the writer's interval (NULL: signed before it was
        // recorded, message version 1), and cannot be deleted, as records cannot: a log whose
        // checkpoints were removed is one whose tail can be rewritten unseen. IF NOT EXISTS:
        // an operator may have added the trigger by hand.
        R"sql(
ALTER TABLE audit_checkpoints ADD COLUMN checkpoint_every INTEGER;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only: delete refused'); END;
)sql",
    };
    return list;
}

}  // namespace

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

Store::Store(std::filesystem::path path, std::unique_ptr<detail::Database> db)
    : path_(std::move(path)), db_(std::move(db)) {}

Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::open(const std::filesystem::path& path) {
    SLUICE_ASSIGN_OR_RETURN(auto db, detail::Database::open(path.string()));
    auto store = std::make_unique<Store>(path, std::move(db));
    SLUICE_RETURN_IF_ERROR(store->migrate().with_context("migrating '" + path.string() + "'"));
    std::lock_guard lock(store->mutex_);
    SLUICE_RETURN_IF_ERROR(store->publish_generation_locked());
    return store;
}

Status Store::migrate() {
    std::lock_guard lock(mutex_);
    SLUICE_RETURN_IF_ERROR(db_->exec("CREATE TABLE IF NOT EXISTS schema_migrations ("
                                     "version INTEGER PRIMARY KEY, applied_at_ms INTEGER)"));
    SLUICE_ASSIGN_OR_RETURN(auto current,
                            db_->prepare("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"));
    SLUICE_ASSIGN_OR_RETURN(bool row, current.step());
    int version = row ? static_cast<int>(current.column_int(0)) : 0;
    const auto& list = migrations();
    if (version > static_cast<int>(list.size())) {
        return failed_precondition("catalog schema version " + std::to_string(version) +
                                   " is newer than this build's " +
                                   std::to_string(list.size()) + ": use a newer sluice");
    }
    for (int next = version; next < static_cast<int>(list.size()); ++next) {
        SLUICE_ASSIGN_OR_RETURN(auto transaction, detail::Transaction::begin(*db_));
        SLUICE_RETURN_IF_ERROR(db_->exec(list[static_cast<std::size_t>(next)])
                                   .with_context("migration " + std::to_string(next + 1)));
        SLUICE_ASSIGN_OR_RETURN(auto record,
                                db_->prepare("INSERT INTO schema_migrations VALUES (?, ?)"));
        SLUICE_RETURN_IF_ERROR(record.bind(1, next + 1).bind(2, now_ms()).run());
        SLUICE_RETURN_IF_ERROR(transaction->commit());
    }
    schema_version_ = static_cast<int>(list.size());
    return Status();
}

Status Store::bump_generation_locked() {
    SLUICE_ASSIGN_OR_RETURN(auto* bump, db_->cached("UPDATE meta SET value = value + 1 "
                                                    "WHERE key = 'generation'"));
    return bump->run();
}

Status Store::publish_generation_locked() {
    SLUICE_ASSIGN_OR_RETURN(auto* read,
                            db_->cached("SELECT value FROM meta WHERE key = 'generation'"));
    SLUICE_ASSIGN_OR_RETURN(bool row, read->step());
    if (!row) {
        return data_loss("catalog database has no generation counter");
    }
    auto stored = static_cast<std::uint64_t>(read->column_int(0));
    read->reset();
    generation_.store(stored, std::memory_order_release);
    return Status();
}

}  // namespace sluice::governance
