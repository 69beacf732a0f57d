#pragma once
// AuditLog: the append-only, hash-chained audit trail in catalog.db.
//
// Each record holds seq (1, 2, 3... with no gaps), its fields, prev_hash (the previous record's
// hash; 32 zero bytes for the first) and hash = SHA-256(prev_hash || canonical JSON of the record
// without its hash). Canonical JSON: the fields of audit_record_json() in key order, no spaces,
// strings escaped as JSON requires. SQLite triggers refuse UPDATE and DELETE of records; only
// archive_audit_log() deletes, after the records are written to a verified archive file.
//
// Signed checkpoints: (seq, hash, checkpoint_every) signed with the Ed25519 key in the data
// directory (`audit_signing.key`, mode 0600, made on first start), so that a truncated or
// rewritten tail is detectable by anyone holding the public key. The log signs every record whose
// seq is a multiple of `checkpoint_every` and the first record it writes (so that a changed
// interval is on record from its first use), each in the transaction that writes the record:
// no committed state lacks a checkpoint it should have, even after a crash. It also signs the
// head at open and at close when the head is not signed yet. So, in a log nobody tampered with,
// the records after a checkpoint are fewer than the interval that checkpoint signed before the
// next checkpoint comes, which verify_audit_log() checks (docs/governance.md, "Audit log").
//
// Appends go through a bounded queue (group commit): an append takes its place in the queue,
// which fixes its order in the chain, and one committer at a time takes up to 512 appends from
// its front and commits them in one transaction, chaining the records in queue order. Records
// nobody waits for are committed by a writer thread; an appender that waits for its commit and
// finds nobody committing commits the front of the queue itself (leader/follower group commit,
// as databases do: it takes along whatever queued before it, and those who queue meanwhile wait
// for the next leader), which saves a hand-off to the writer and back. The committer reads the
// chain's tail inside its write transaction, so that another process appending to the same
// database (the offline `sluice token create`) extends the same chain.
//
// When an append returns is AuditLogOptions::acknowledge's choice:
// - kDurable: once its record is committed (in the WAL: it survives a crash of the process).
// - kQueued: once its record is queued. The caller goes on while the writer commits; a crash of
//   the process loses the records queued and not yet committed: at most `queue_capacity`
//   records plus the batch being written, in practice those of the last `gather` interval
//   (10 ms) and one commit.
//   sync() waits for everything queued before it (readers of the log call it first).
// Appends with a companion always wait for their commit, whatever the choice.
//
// A full queue blocks the appender until a committer makes room: no record is dropped. When a
// write fails (disk full, I/O error), appends that wait get the error; queued records whose
// appenders have gone on are kept, in order, and retried with a growing pause; meanwhile new
// appends are refused (kUnavailable), so that no request proceeds that cannot be recorded. The
// destructor writes what is queued and signs the head.
//
// WAL checkpoints (copying the log into the database file, with two fsyncs) run on a background
// thread every 100 ms through a connection of their own, never on the writer: the appending
// connection has automatic checkpoints turned off.
//
// A request's first records (its authentication) can be deferred: they are held in memory and
// queued together with the request's next record, or by flush() before the response leaves, so
// that a request's records stay together in the chain. A record may bring a companion (a usage
// row) that is written in the same transaction: both or neither.
//
// What a request thread does per record is kept small (docs/governance.md): a deferred record
// waits in the append its next record joins, in a numbered slot its ticket names (no map node);
// written appends go back to request threads for reuse, with the room for their records, rather
// than being freed and allocated again.
//
// Thread safety: thread-safe.

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
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
class AuditRowWriter;
class Database;
class Ed25519Key;
class Sha256;
}  // namespace detail

// When an append returns (see above).
enum class AuditAcknowledge { kDurable, kQueued };

struct AuditLogOptions {
    // Records between signed checkpoints. 0: the interval that the log's last checkpoint signed
    // (1000 when none did), for offline tools writing beside a server configured otherwise.
    std::int64_t checkpoint_every = 1000;
    AuditAcknowledge acknowledge = AuditAcknowledge::kDurable;
    std::size_t queue_capacity = 4096;  // records queued before appenders block
    // How long the writer gathers records nobody waits for before committing them: fewer, larger
    // transactions. A waiting append or sync() does not wait for it: it commits the queue itself.
    // 10 ms: each commit costs a write transaction (file locks, the last page written to the WAL
    // again) and empties the page cache of every other connection to catalog.db, whose next
    // reads then go to the file. Gathering 10 ms instead of 2 cut the extra CPU of an audited
    // request from about 27 to 21 µs (docs/benchmarks.md); the price is the longer crash window
    // of `queued` above.
    std::chrono::microseconds gather{10000};
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

// Rows written in the same transaction as an audit record (a usage row beside the record of the
// model call it bills). Runs on whichever thread commits the batch, inside a savepoint: when it
// fails, it and its records are undone and only that append fails. It is destroyed by a later
// commit, on that commit's thread: what it captures must not need releasing when append returns.
using AuditCompanion = std::function<Status(detail::Database&)>;

class AuditLog final : public AuditSink {
public:
    // `db_path` is catalog.db after Store::open() has migrated it; `key_path` the signing key.
    static Result<std::unique_ptr<AuditLog>> open(const std::filesystem::path& db_path,
                                                  const std::filesystem::path& key_path,
                                                  AuditLogOptions options = {});
    ~AuditLog() override;  // writes deferred records and signs a final checkpoint

    // Records `event` (and the records deferred under event.deferred_ticket), returning as
    // options.acknowledge says.
    Status append(AuditEvent event) override;
    // Records `event` and runs `companion` in the same transaction; returns once both are
    // committed (or the companion failed and neither was written).
    Status append(AuditEvent event, AuditCompanion companion);
    // Holds `event` back and returns a ticket (never 0). The held records are written with the
    // next append() whose event carries the ticket, or by flush(ticket); the destructor writes
    // whatever is left.
    std::uint64_t defer(AuditEvent event);
    // Queues the records still held under `ticket`, if any; returns as append() does.
    Status flush(std::uint64_t ticket);
    // Waits until every record queued before the call is committed. The write's error when
    // they cannot be written now.
    Status sync();
    // Records held back now (for tests and metrics).
    std::size_t deferred_count() const;
    // Signs the current head now (no-op when it is already signed).
    Status checkpoint();
    // Records committed by this process since open().
    std::int64_t appended() const;
    // Records queued and not yet committed (for tests and metrics).
    std::size_t queued() const;
    // Records between signed checkpoints, as resolved by open().
    std::int64_t checkpoint_every() const { return options_.checkpoint_every; }

    // With `checkpoint_db`, a background thread checkpoints the WAL through it.
    AuditLog(std::unique_ptr<detail::Database> db, std::unique_ptr<detail::Ed25519Key> key,
             AuditLogOptions options, std::unique_ptr<detail::Database> checkpoint_db = nullptr);

private:
    struct Pending {
        std::vector<AuditEvent> events;
        AuditCompanion companion;
        bool waited = false;  // its appender waits for the commit
        std::uint64_t index = 0;  // its place among all appends, from 1
        Status result;        // set by the committer; read by the appender once done
        bool done = false;    // guarded by mutex_: committed, or failed back to a waiting appender
    };
    using PendingPtr = std::shared_ptr<Pending>;
    // The most appends one transaction takes, so that a commit and its waiters' wait stay short.
    static constexpr std::size_t kMaxBatch = 512;
    // Written appends kept for reuse: two batches' worth covers a steady load; more would only
    // hold memory after a burst.
    static constexpr std::size_t kMaxSpare = 2 * kMaxBatch;
    // A ticket is (serial << kSlotBits) | slot: the slot finds the held records at once, the
    // serial tells a stale ticket (its records already queued, the slot reused) from the current
    // one. 2^24 requests holding records at the same time is far beyond any thread pool.
    static constexpr unsigned kSlotBits = 24;
    // Records held back for one request, in the append they will be queued with.
    struct DeferredSlot {
        std::uint64_t ticket = 0;  // 0: free
        PendingPtr pending;
    };

    // Queues the records held under `ticket` and then `event` (null for none; it is moved from)
    // as one append, blocking while the queue is full, and, when it is waited for, returns the
    // outcome of its commit.
    Status submit(std::uint64_t ticket, AuditEvent* event, bool waited, AuditCompanion companion);
    // The slot holding `ticket`'s records, or null. Under mutex_.
    DeferredSlot* find_deferred_locked(std::uint64_t ticket);
    // An empty append: a spare one when there is one. Under mutex_.
    PendingPtr take_pending_locked();
    // Empties the appends of the batch written before (outside mutex_; their records' strings
    // are freed here rather than under the lock), keeping at most `room` for reuse.
    void clear_retired(std::size_t room);
    // Takes up to kMaxBatch appends from the front of the queue and commits them with `lock`
    // released; settles them. Precondition: `lock` holds mutex_, nobody is committing, the
    // queue is not empty. Returns the write's status.
    Status commit_front(std::unique_lock<std::mutex>& lock);
    // Settles `batch_` after its write: marks it done, or after a failure hands the error to the
    // appenders that wait and puts the others back at the front of the queue. Under mutex_.
    void settle_batch_locked(const Status& written);
    void write_loop();
    Status write_batch(const std::vector<PendingPtr>& batch);
    // The chain's tail (seq 0 and 32 zero bytes before the first record). Under db_mutex_,
    // inside the write transaction.
    struct Tail {
        std::int64_t seq = 0;
        std::array<unsigned char, 32> hash{};
    };
    Result<Tail> read_tail();
    // Signs the head unless it is signed already, in a transaction of its own. Under db_mutex_.
    Status checkpoint_locked();
    // Signs (seq, hash) and inserts the checkpoint, inside the caller's transaction. Under
    // db_mutex_.
    Status insert_checkpoint(std::int64_t seq, std::string_view hash);

    std::unique_ptr<detail::Database> db_;  // guarded by db_mutex_
    std::unique_ptr<detail::Ed25519Key> key_;
    AuditLogOptions options_;

    mutable std::mutex mutex_;
    std::condition_variable work_;      // records nobody waits for, or closing: wakes the writer
    std::condition_variable progress_;  // committed, failed, or room in the queue
    std::deque<PendingPtr> queue_;      // guarded by mutex_; in chain order
    std::size_t queued_records_ = 0;    // guarded by mutex_; records in queue_
    std::size_t writing_records_ = 0;   // guarded by mutex_; records of the batch being written
    std::size_t unwaited_ = 0;          // guarded by mutex_; appends in queue_ nobody waits for
    // Guarded by mutex_: a batch is being written (by the writer or by a waiting appender). One
    // batch at a time keeps the chain in queue order.
    bool committing_ = false;
    std::vector<PendingPtr> batch_;     // the batch being written; owned by whoever set committing_
    std::vector<PendingPtr> retired_;   // the last batch written, emptied by the next; likewise
    std::uint64_t batch_last_ = 0;      // index of batch_'s last append; likewise
    bool idle_ = false;                 // guarded by mutex_; the writer waits for work
    bool writer_woken_ = false;         // guarded by mutex_; notified since it went idle
    std::uint64_t submitted_ = 0;       // guarded by mutex_; appends queued since open
    std::uint64_t committed_through_ = 0;  // guarded by mutex_; appends up to it are settled
    Status failure_;                    // guarded by mutex_; the last write's error, until one succeeds
    bool closing_ = false;              // guarded by mutex_
    std::int64_t appended_ = 0;         // guarded by mutex_
    std::uint64_t next_ticket_ = 1;         // guarded by mutex_; the next ticket's serial
    std::vector<DeferredSlot> deferred_;    // guarded by mutex_; indexed by a ticket's slot
    std::vector<std::uint32_t> free_slots_;  // guarded by mutex_; free entries of deferred_
    std::vector<PendingPtr> spare_;          // guarded by mutex_; emptied appends for reuse
    std::string hash_scratch_;  // guarded by db_mutex_; the bytes each record's hash covers
    std::unique_ptr<detail::Sha256> hasher_;  // guarded by db_mutex_
    std::unique_ptr<detail::AuditRowWriter> row_writer_;  // guarded by db_mutex_; inserts rows
    // Guarded by db_mutex_: records of the batch being written that get a checkpoint.
    std::vector<std::pair<std::int64_t, std::array<unsigned char, 32>>> due_checkpoints_;
    bool wrote_first_ = false;  // guarded by db_mutex_; a batch of this log has committed
    std::mutex db_mutex_;  // serialises use of db_ (batches, checkpoint())

    void checkpoint_wal(std::stop_token stop);
    std::unique_ptr<detail::Database> checkpoint_db_;  // used by checkpointer_ only
    std::mutex checkpoint_mutex_;
    std::condition_variable_any checkpoint_wake_;
    std::jthread checkpointer_;
    std::thread writer_;  // started by the constructor, joined by the destructor
};

struct AuditVerifyOptions {
    // The raw 32-byte public key the checkpoints must be signed with; nullopt: any key.
    std::optional<std::string> trusted_public_key;
    // The interval assumed after a last checkpoint that does not record its own (signed before
    // intervals were recorded): the writer's `checkpoint_every`.
    std::int64_t checkpoint_every = 1000;
    // Where archive files are looked for, by file name; empty: where the archive recorded them.
    std::filesystem::path archive_dir;
    // A missing archive file is counted in archives_unverified, and verification goes on from the
    // archive's recorded anchor, instead of failing (archives kept offline). Files that exist are
    // checked either way.
    bool allow_missing_archives = false;
    // A checkpoint seq the caller saw before (an earlier report's last_checkpoint_seq); the log
    // must still hold it. Detects a log cut back to an earlier signed state. 0: none.
    std::int64_t expect_checkpoint_seq = 0;
};

struct AuditVerifyReport {
    bool ok = true;
    std::int64_t records = 0;      // records checked in the table
    std::int64_t checkpoints = 0;  // signatures checked
    std::int64_t first_seq = 0;    // the table's first and last records
    std::int64_t last_seq = 0;
    std::int64_t last_checkpoint_seq = 0;  // the newest signed checkpoint; keep it to compare later
    std::int64_t archives = 0;             // archive files read and checked
    std::int64_t archived_records = 0;     // records checked in them
    std::int64_t archives_unverified = 0;  // missing archive files (allow_missing_archives)
    std::int64_t key_rotations = 0;        // signing key rotations in the chain
    std::int64_t first_bad_seq = 0;  // 0 when ok
    std::string problem;             // what is wrong with first_bad_seq
};

// Recomputes the chain from the genesis, through the archive files (each must match the SHA-256
// recorded for it) and the table, and checks every signed checkpoint against its record. Detects
// a changed, removed, inserted or reordered record, a removed tail (a checkpoint past the last
// record), removed checkpoints (the log signs one at least every `checkpoint_every` records, as
// its checkpoints say, so one missing where it is due, or as many records after the last one as
// its interval, fails) and a missing, changed or made-up archive. What it cannot detect
// (docs/governance.md): a log cut back to one of its signed checkpoints with fewer than that
// checkpoint's interval of records after it; expect_checkpoint_seq detects the cut against a
// seq kept from before. Reads only: kNotFound when `db_path` does not exist.
Result<AuditVerifyReport> verify_audit_log(const std::filesystem::path& db_path,
                                           const AuditVerifyOptions& options);
// The same with only a trusted key.
Result<AuditVerifyReport> verify_audit_log(const std::filesystem::path& db_path,
                                           std::optional<std::string> trusted_public_key);

// Writes records with seq > after_seq (at most `limit`, 0 for all) as JSON lines. Reads only:
// kNotFound when `db_path` does not exist.
Result<std::int64_t> export_audit_log(const std::filesystem::path& db_path, std::int64_t after_seq,
                                      std::int64_t limit, std::ostream& out);

struct AuditArchiveReport {
    std::int64_t first_seq = 0;
    std::int64_t last_seq = 0;
    std::int64_t records = 0;
    std::string file_sha256;
};

// Retention: moves records with seq <= up_to_seq into `archive_file` (JSON lines, written
// atomically, then read back and compared), and only then deletes them, recording the archive
// (first and last seq, last hash, the file's absolute path and SHA-256) so that verification
// reads the file and continues the chain from it. Refuses when the log does not verify, the file
// exists, or nothing is old enough.
Result<AuditArchiveReport> archive_audit_log(const std::filesystem::path& db_path,
                                             std::int64_t up_to_seq,
                                             const std::filesystem::path& archive_file);
// The same, and records `event` through `log` in the transaction that deletes the archived
// records (its details filled in with the archive's range, file and SHA-256): the deletion is
// never unaudited. `log` must be open on `db_path`.
Result<AuditArchiveReport> archive_audit_log(const std::filesystem::path& db_path,
                                             std::int64_t up_to_seq,
                                             const std::filesystem::path& archive_file,
                                             AuditLog& log, AuditEvent event);

// The raw public key of the signing key at `key_path`, for verify. Only reads: kNotFound when
// there is no key there (a verifier that made one would trust whatever it then signed).
Result<std::string> audit_public_key(const std::filesystem::path& key_path);

// Whether the log in `db_path` holds nothing a signing key could vouch for: no record, no
// signed checkpoint and no archive. A data directory without its signing key can then still be
// reported on. Errors: kNotFound when `db_path` does not exist; those of reading it.
Result<bool> audit_log_is_empty(const std::filesystem::path& db_path);

}  // namespace sluice::governance
