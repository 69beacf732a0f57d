#pragma once
// AuditLog: the append-only, hash-chained audit trail in catalog.db.
//
// Each record holds seq (1, 2, 3... with no gaps), its fields, prev_hash (the previous record's
// hash; 32 zero bytes for the first) and hash = SHA-256(prev_hash || canonical JSON of the record
// without its hash). Canonical JSON: the fields of audit_record_json() in key order, no spaces,
// strings escaped as JSON requires. SQLite triggers refuse UPDATE and DELETE of records; only
// archive_audit_log() deletes, after the records are written to a verified archive file.
//
// Every `checkpoint_every` records (and when the log closes) the head (seq, hash) is signed with
// the Ed25519 key in the data directory (`audit_signing.key`, mode 0600, made on first start),
// so that a truncated or rewritten tail is detectable by anyone holding the public key.
//
// Appends use group commit: concurrent append() calls wait while one writer thread commits them
// in a single transaction, and each returns once its record is durable. The writer reads the
// chain's tail inside its write transaction, so that another process appending to the same
// database (the offline `sluice token create`) extends the same chain.
//
// Thread safety: thread-safe.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <iosfwd>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "governance/audit_sink.h"

namespace sluice::governance {

namespace detail {
class Database;
class Ed25519Key;
}  // namespace detail

struct AuditLogOptions {
    std::int64_t checkpoint_every = 1000;  // records between signed checkpoints
};

struct AuditRecord {
    std::int64_t seq = 0;
    AuditEvent event;
    std::string prev_hash;  // raw 32 bytes
    std::string hash;       // raw 32 bytes
};

// The record as one line of JSON: the canonical fields plus "hash" (hex) when `with_hash`.
std::string audit_record_json(const AuditRecord& record, bool with_hash);
// SHA-256(prev_hash || canonical JSON).
std::string audit_record_hash(const AuditRecord& record);

class AuditLog final : public AuditSink {
public:
    // `db_path` is catalog.db after Store::open() has migrated it; `key_path` the signing key.
    static Result<std::unique_ptr<AuditLog>> open(const std::filesystem::path& db_path,
                                                  const std::filesystem::path& key_path,
                                                  AuditLogOptions options = {});
    ~AuditLog() override;  // drains the queue and signs a final checkpoint

    Status append(AuditEvent event) override;
    // Signs the current head now (no-op when it is already signed).
    Status checkpoint();
    // Records committed by this process since open().
    std::int64_t appended() const;

    AuditLog(std::unique_ptr<detail::Database> db, std::unique_ptr<detail::Ed25519Key> key,
             AuditLogOptions options);

private:
    struct Pending {
        AuditEvent event;
        Status result;
        bool done = false;
    };

    void run(std::stop_token stop);
    Status write_batch(std::vector<Pending*>& batch);
    Status checkpoint_locked();

    std::unique_ptr<detail::Database> db_;  // used by the writer thread, or under mutex_ when stopped
    std::unique_ptr<detail::Ed25519Key> key_;
    AuditLogOptions options_;

    mutable std::mutex mutex_;
    std::condition_variable_any wake_;  // writer: work arrived
    std::condition_variable done_;      // appenders: a batch committed
    std::deque<Pending*> queue_;        // guarded by mutex_
    std::int64_t appended_ = 0;         // guarded by mutex_
    std::mutex db_mutex_;               // serialises use of db_ (writer batches, checkpoint())
    std::jthread writer_;
};

struct AuditVerifyReport {
    bool ok = true;
    std::int64_t records = 0;      // records checked
    std::int64_t checkpoints = 0;  // signatures checked
    std::int64_t first_seq = 0;
    std::int64_t last_seq = 0;
    std::int64_t first_bad_seq = 0;  // 0 when ok
    std::string problem;             // what is wrong with first_bad_seq
};

// Recomputes the chain from the start (or from the last archive's anchor) and checks every
// signed checkpoint. Detects a changed, removed, inserted or reordered record and a removed tail
// (a checkpoint past the last record), naming the first bad record. When `trusted_public_key`
// (raw 32 bytes) is given, checkpoints signed by another key are bad too.
Result<AuditVerifyReport> verify_audit_log(const std::filesystem::path& db_path,
                                           std::optional<std::string> trusted_public_key);

// Writes records with seq > after_seq (at most `limit`, 0 for all) as JSON lines.
Result<std::int64_t> export_audit_log(const std::filesystem::path& db_path, std::int64_t after_seq,
                                      std::int64_t limit, std::ostream& out);

struct AuditArchiveReport {
    std::int64_t first_seq = 0;
    std::int64_t last_seq = 0;
    std::int64_t records = 0;
    std::string file_sha256;
};

// Retention: moves records with seq <= up_to_seq into `archive_file` (JSON lines, written
// atomically, then read back and its chain verified), and only then deletes them, recording the
// archive (range, last hash, file digest) so that verification continues from it. Refuses when
// the log does not verify, the file exists, or nothing is old enough.
Result<AuditArchiveReport> archive_audit_log(const std::filesystem::path& db_path,
                                             std::int64_t up_to_seq,
                                             const std::filesystem::path& archive_file);

// The raw public key of the signing key at `key_path`, for verify.
Result<std::string> audit_public_key(const std::filesystem::path& key_path);

}  // namespace sluice::governance
