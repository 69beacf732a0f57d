#include "governance/audit_log.h"

#include <algorithm>
#include <array>
#include <chrono>

#include "common/check.h"
#include "common/log.h"
#include "governance/detail/audit_format.h"
#include "governance/detail/audit_json.h"
#include "governance/detail/audit_rows.h"
#include "governance/detail/crypto.h"
#include "governance/detail/sqlite.h"

namespace sluice::governance {
namespace {

std::int64_t now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// SHA-256(prev_hash || canonical JSON), built in `scratch` (reused between records).
detail::Sha256::Digest record_hash(detail::Sha256& hasher, std::string& scratch, std::int64_t seq,
                                   const AuditEvent& event, std::string_view prev_hash) {
    scratch.assign(prev_hash);
    detail::append_record_json(scratch, seq, event, prev_hash, nullptr);
    return hasher.digest(scratch);
}

std::string_view bytes_of(const detail::Sha256::Digest& digest) {
    return {reinterpret_cast<const char*>(digest.data()), digest.size()};
}

// A key made for a log that holds records would sign on as though it had signed them, and
// verify would then fail every checkpoint before it: a lost key is replaced only through a
// rotation, which records the change in the log (audit_key_rotation.h).
Status refuse_missing_key(const std::filesystem::path& db_path,
                          const std::filesystem::path& key_path) {
    std::error_code ec;
    if (std::filesystem::exists(key_path, ec) || ec) {
        return Status();  // loading it reports what is wrong with it
    }
    SLUICE_ASSIGN_OR_RETURN(bool empty, audit_log_is_empty(db_path));
    if (empty) {
        return Status();
    }
    return failed_precondition(
        "audit signing key '" + key_path.string() + "' does not exist, but the audit log in '" +
        db_path.string() +
        "' holds records signed with a key: restore the key from the data "
        "directory's backup, or, if it is lost for good, stop every server on this data "
        "directory and run `sluice audit rotate-key --data-dir " +
        key_path.parent_path().string() +
        " --previous-key-lost`, which records the new key in the log");
}

}  // namespace

std::string audit_record_json(const AuditRecord& record, bool with_hash) {
    std::string out;
    out.reserve(512);
    detail::append_record_json(out, record.seq, record.event, record.prev_hash,
                               with_hash ? &record.hash : nullptr);
    return out;
}

std::string audit_record_hash(const AuditRecord& record) {
    detail::Sha256 hasher;
    std::string scratch;
    return std::string(bytes_of(record_hash(hasher, scratch, record.seq, record.event,
                                            record.prev_hash)));
}

Result<std::string> audit_public_key(const std::filesystem::path& key_path) {
    SLUICE_ASSIGN_OR_RETURN(auto key, detail::Ed25519Key::load(key_path));
    return key->public_key();
}

AuditLog::AuditLog(std::unique_ptr<detail::Database> db, std::unique_ptr<detail::Ed25519Key> key,
                   AuditLogOptions options, std::unique_ptr<detail::Database> checkpoint_db)
    : db_(std::move(db)), key_(std::move(key)), options_(options),
      hasher_(std::make_unique<detail::Sha256>()),
      row_writer_(std::make_unique<detail::AuditRowWriter>(*db_)),
      checkpoint_db_(std::move(checkpoint_db)) {
    spare_.reserve(kMaxSpare);  // so that returning appends to it never allocates under mutex_
    if (checkpoint_db_) {
        checkpointer_ = std::jthread([this](std::stop_token stop) { checkpoint_wal(stop); });
    }
    writer_ = std::thread([this] { write_loop(); });
}

void AuditLog::checkpoint_wal(std::stop_token stop) {
    // Often enough that the WAL stays small (a commit appends at least one 4 KiB page), rarely
    // enough that its fsyncs cost little.
    constexpr auto kInterval = std::chrono::milliseconds(100);
    bool warned = false;
    while (!stop.stop_requested()) {
        {
            std::unique_lock lock(checkpoint_mutex_);
            checkpoint_wake_.wait_for(lock, stop, kInterval, [] { return false; });
        }
        if (stop.stop_requested()) {
            return;
        }
        // PASSIVE: copies what no reader still needs, without blocking writers or readers.
        Status done = checkpoint_db_->exec("PRAGMA wal_checkpoint(PASSIVE)");
        if (!done.ok() && !warned) {
            log::warn("audit", "background WAL checkpoint failed; retrying",
                      {{"error", done.message()}});
            warned = true;
        }
    }
}

AuditLog::~AuditLog() {
    checkpointer_.request_stop();
    checkpoint_wake_.notify_all();
    if (checkpointer_.joinable()) {
        checkpointer_.join();
    }
    std::vector<std::uint64_t> tickets;
    {
        std::lock_guard lock(mutex_);
        for (const DeferredSlot& slot : deferred_) {
            if (slot.ticket != 0) {
                tickets.push_back(slot.ticket);
            }
        }
    }
    for (std::uint64_t ticket : tickets) {
        Status flushed = flush(ticket);
        if (!flushed.ok()) {
            log::error("audit", "cannot write deferred audit records at close",
                       {{"error", flushed.message()}});
        }
    }
    {
        std::lock_guard lock(mutex_);
        closing_ = true;
    }
    work_.notify_all();
    progress_.notify_all();
    writer_.join();  // writes everything still queued
    std::lock_guard db_lock(db_mutex_);
    Status signed_head = checkpoint_locked();
    if (!signed_head.ok()) {
        log::error("audit", "cannot sign the final audit checkpoint",
                   {{"error", signed_head.message()}});
    }
}

Result<std::unique_ptr<AuditLog>> AuditLog::open(const std::filesystem::path& db_path,
                                                 const std::filesystem::path& key_path,
                                                 AuditLogOptions options) {
    if (options.checkpoint_every < 0) {
        return invalid_argument("audit checkpoint interval must be at least 1 record (or 0: "
                                "the log's own), found " +
                                std::to_string(options.checkpoint_every));
    }
    if (options.queue_capacity < 1) {
        return invalid_argument("audit queue capacity must be at least 1 record");
    }
    SLUICE_ASSIGN_OR_RETURN(auto db, detail::Database::open(db_path.string()));
    SLUICE_RETURN_IF_ERROR(db->exec("PRAGMA wal_autocheckpoint=0"));
    SLUICE_ASSIGN_OR_RETURN(auto checkpoint_db, detail::Database::open(db_path.string()));
    SLUICE_RETURN_IF_ERROR(refuse_missing_key(db_path, key_path));
    SLUICE_ASSIGN_OR_RETURN(auto key, detail::Ed25519Key::load_or_create(key_path));
    if (options.checkpoint_every == 0) {
        SLUICE_ASSIGN_OR_RETURN(options.checkpoint_every,
                                detail::inherited_checkpoint_every(*db, key->public_key()));
    }
    auto audit = std::make_unique<AuditLog>(std::move(db), std::move(key), options,
                                            std::move(checkpoint_db));
    // A head left unsigned (the last writer was killed before its next checkpoint) is signed
    // now, so that a log with records always holds a checkpoint recent enough for verify. When
    // that fails (another writer holds the lock too long), the log still opens: the first record
    // it writes is signed, and with it the head before it.
    Status signed_head = audit->checkpoint();
    if (!signed_head.ok()) {
        log::warn("audit", "cannot sign the audit log's head at open; its next record will be",
                  {{"error", signed_head.message()}});
    }
    return audit;
}

Status AuditLog::append(AuditEvent event) { return append(std::move(event), nullptr); }

Status AuditLog::append(AuditEvent event, AuditCompanion companion) {
    if (event.time_us == 0) {
        event.time_us = now_us();
    }
    const bool waited =
        companion != nullptr || options_.acknowledge == AuditAcknowledge::kDurable;
    return submit(event.deferred_ticket, &event, waited, std::move(companion));
}

std::uint64_t AuditLog::defer(AuditEvent event) {
    if (event.time_us == 0) {
        event.time_us = now_us();
    }
    std::lock_guard lock(mutex_);
    std::uint32_t slot = 0;
    if (free_slots_.empty()) {
        SLUICE_CHECK(deferred_.size() < (std::size_t{1} << kSlotBits),
                     "more than 2^24 requests hold deferred audit records");
        slot = static_cast<std::uint32_t>(deferred_.size());
        deferred_.emplace_back();
    } else {
        slot = free_slots_.back();
        free_slots_.pop_back();
    }
    DeferredSlot& held = deferred_[slot];
    held.ticket = (next_ticket_++ << kSlotBits) | slot;
    // The append the request's next record joins (submit() queues it as it is).
    held.pending = take_pending_locked();
    held.pending->events.push_back(std::move(event));
    return held.ticket;
}

Status AuditLog::flush(std::uint64_t ticket) {
    // Most requests have nothing left to flush (their next record took the held ones); submit()
    // answers them at once.
    return submit(ticket, nullptr, options_.acknowledge == AuditAcknowledge::kDurable, nullptr);
}

std::size_t AuditLog::deferred_count() const {
    std::lock_guard lock(mutex_);
    std::size_t count = 0;
    for (const DeferredSlot& slot : deferred_) {
        if (slot.ticket != 0) {
            count += slot.pending->events.size();
        }
    }
    return count;
}

AuditLog::DeferredSlot* AuditLog::find_deferred_locked(std::uint64_t ticket) {
    if (ticket == 0) {
        return nullptr;
    }
    const std::size_t slot = ticket & ((std::uint64_t{1} << kSlotBits) - 1);
    if (slot >= deferred_.size() || deferred_[slot].ticket != ticket) {
        return nullptr;  // already queued (its slot may hold another request's records now)
    }
    return &deferred_[slot];
}

AuditLog::PendingPtr AuditLog::take_pending_locked() {
    if (spare_.empty()) {
        auto pending = std::make_shared<Pending>();
        // A request's records: its authentication and the record that takes it along.
        pending->events.reserve(2);
        return pending;
    }
    PendingPtr pending = std::move(spare_.back());
    spare_.pop_back();
    return pending;
}

void AuditLog::clear_retired(std::size_t room) {
    std::size_t kept = 0;
    for (PendingPtr& pending : retired_) {
        // Reused only when nobody else holds it: an appender that waited may not have read its
        // result yet.
        if (kept == room || pending.use_count() != 1) {
            pending.reset();
            continue;
        }
        pending->events.clear();  // keeps the vector's room
        pending->companion = nullptr;
        pending->result = Status();
        pending->waited = false;
        pending->done = false;
        pending->index = 0;
        ++kept;
    }
}

std::int64_t AuditLog::appended() const {
    std::lock_guard lock(mutex_);
    return appended_;
}

std::size_t AuditLog::queued() const {
    std::lock_guard lock(mutex_);
    return queued_records_ + writing_records_;
}

Status AuditLog::submit(std::uint64_t ticket, AuditEvent* event, bool waited,
                        AuditCompanion companion) {
    std::unique_lock lock(mutex_);
    auto held_records = [&]() -> std::size_t {
        const DeferredSlot* held = find_deferred_locked(ticket);
        return held == nullptr ? 0 : held->pending->events.size();
    };
    std::size_t records = 0;
    // Block, never drop: a full queue holds the appender until the writer makes room. A bundle
    // larger than the whole queue goes in alone.
    progress_.wait(lock, [&] {
        records = (event != nullptr ? 1 : 0) + held_records();
        return closing_ || !failure_.ok() || queued_records_ == 0 ||
               queued_records_ + records <= options_.queue_capacity;
    });
    if (closing_) {
        return unavailable("the audit log is closed");
    }
    if (!failure_.ok()) {
        // Fail closed: what cannot be recorded must not happen.
        return unavailable("the audit log cannot be written: " + failure_.message());
    }
    PendingPtr pending;
    if (DeferredSlot* held = find_deferred_locked(ticket); held != nullptr) {
        // The request's held records go first, in the order they were deferred.
        pending = std::move(held->pending);
        held->ticket = 0;
        free_slots_.push_back(static_cast<std::uint32_t>(held - deferred_.data()));
    } else if (event == nullptr) {
        return Status();  // a flush with nothing held (its records went with a later one)
    } else {
        pending = take_pending_locked();
    }
    if (event != nullptr) {
        pending->events.push_back(std::move(*event));
    }
    pending->waited = waited;
    pending->companion = std::move(companion);
    pending->index = ++submitted_;
    queued_records_ += pending->events.size();
    queue_.push_back(pending);
    if (!pending->waited) {
        // The writer's work. Wake it only when it sleeps and nobody woke it yet, or to end its
        // gathering early when a full batch waits: most records join the batch being gathered
        // without a system call.
        ++unwaited_;
        if ((idle_ && !writer_woken_) || queued_records_ >= kMaxBatch) {
            writer_woken_ = true;
            work_.notify_one();
        }
        return Status();
    }
    // Leader/follower: while nobody commits, this appender commits the front of the queue
    // itself (its own append included, unless more than a batch queued before it); otherwise it
    // waits for the committer, and leads the next batch if its append is still queued then.
    // After a failed write that left records nobody waits for, the writer retries them first.
    while (!pending->done) {
        if (!committing_ && failure_.ok() && !closing_) {
            (void)commit_front(lock);
            continue;
        }
        progress_.wait(lock);
    }
    return pending->result;
}

Status AuditLog::sync() {
    std::unique_lock lock(mutex_);
    const std::uint64_t target = submitted_;
    for (;;) {
        if (!failure_.ok()) {
            return unavailable("the audit log cannot be written: " + failure_.message());
        }
        if (committed_through_ >= target || (closing_ && queue_.empty() && !committing_)) {
            return Status();
        }
        // Like a waiting appender: commit what is queued rather than wake the writer for it.
        if (!committing_ && !queue_.empty()) {
            (void)commit_front(lock);
            continue;
        }
        progress_.wait(lock);
    }
}

Status AuditLog::commit_front(std::unique_lock<std::mutex>& lock) {
    SLUICE_CHECK(!committing_ && !queue_.empty() && batch_.empty(),
                 "audit commit started while another is in progress or with nothing queued");
    committing_ = true;
    std::size_t records = 0;
    while (!queue_.empty() && batch_.size() < kMaxBatch) {
        PendingPtr& front = queue_.front();
        records += front->events.size();
        if (!front->waited) {
            --unwaited_;
        }
        batch_.push_back(std::move(front));
        queue_.pop_front();
    }
    queued_records_ -= records;
    writing_records_ = records;
    batch_last_ = batch_.back()->index;
    progress_.notify_all();  // room in the queue
    // Only this committer adds to spare_, so the room counted now is still there below.
    const std::size_t room = kMaxSpare - std::min(kMaxSpare, spare_.size());
    lock.unlock();
    clear_retired(room);
    Status written;
    {
        std::lock_guard db_lock(db_mutex_);
        written = write_batch(batch_);
    }
    lock.lock();
    for (PendingPtr& pending : retired_) {
        if (pending != nullptr) {
            spare_.push_back(std::move(pending));
        }
    }
    retired_.clear();
    settle_batch_locked(written);
    committing_ = false;
    progress_.notify_all();
    if (unwaited_ > 0 || closing_) {
        work_.notify_one();  // the writer may have waited for this commit to end
    }
    return written;
}

void AuditLog::settle_batch_locked(const Status& written) {
    writing_records_ = 0;
    if (written.ok()) {
        for (const PendingPtr& member : batch_) {
            if (member->result.ok()) {
                appended_ += static_cast<std::int64_t>(member->events.size());
            }
            member->done = true;
        }
        committed_through_ = batch_last_;
        failure_ = Status();
        std::swap(batch_, retired_);  // batch_ is now empty; the next commit empties retired_
        return;
    }
    if (failure_.ok()) {
        log::error("audit", "cannot write audit records; refusing new ones and retrying",
                   {{"appends", batch_.size()}, {"error", written.message()}});
    }
    // An appender that waits hears of the failure and fails its request; records whose
    // appenders have gone on are kept, in order, at the front of the queue, and retried by the
    // writer (nothing was committed, so their place in the chain is unchanged).
    std::size_t kept = 0;
    for (auto member = batch_.rbegin(); member != batch_.rend(); ++member) {
        if ((*member)->waited) {
            (*member)->result = written;
            (*member)->done = true;
            continue;
        }
        queued_records_ += (*member)->events.size();
        ++unwaited_;
        ++kept;
        queue_.push_front(std::move(*member));
    }
    batch_.clear();
    if (kept == 0) {
        // Nothing left that nobody heard of: the next append tries the storage again.
        committed_through_ = batch_last_;
        failure_ = Status();
        return;
    }
    failure_ = written;
}

void AuditLog::write_loop() {
    constexpr auto kFirstPause = std::chrono::milliseconds(10);
    constexpr auto kLongestPause = std::chrono::seconds(1);
    auto pause = std::chrono::milliseconds(kFirstPause);
    std::unique_lock lock(mutex_);
    for (;;) {
        // writer_woken_ is cleared each time the writer goes (back) to sleep, not only when it
        // leaves the wait: woken for a record that a waiting appender or sync() then committed,
        // it finds nothing to do and sleeps again, and the next queued record must wake it.
        // Cleared only on leaving, it stayed set, submit() took the writer for awake, and queued
        // records waited, with no time bound, for a waiter or a full batch.
        idle_ = true;
        while (committing_ || (unwaited_ == 0 && !closing_)) {
            writer_woken_ = false;
            work_.wait(lock);
        }
        idle_ = false;
        writer_woken_ = false;
        if (closing_ && queue_.empty()) {
            return;  // everything is written
        }
        if (!failure_.ok() && !closing_) {
            // Kept records: give the storage a growing pause before the next try.
            work_.wait_for(lock, pause, [&] { return closing_; });
            pause = std::min<std::chrono::milliseconds>(pause * 2, kLongestPause);
        } else if (!closing_) {
            // Gather: records nobody waits for are committed together, a few milliseconds late.
            // A waiting appender does not end the gathering: it commits the queue itself. Should
            // its write fail and leave these records behind, the retries with their pauses take
            // over at once rather than after the gathering.
            work_.wait_for(lock, options_.gather, [&] {
                return closing_ || queued_records_ >= kMaxBatch || !failure_.ok();
            });
            if (!failure_.ok() && !closing_) {
                continue;
            }
        }
        if (committing_ || queue_.empty()) {
            continue;  // a waiting appender or sync() took the queue meanwhile
        }
        Status written = commit_front(lock);
        if (written.ok()) {
            pause = kFirstPause;
            continue;
        }
        if (closing_ && !queue_.empty()) {
            // Storage fails at close: what is left cannot be written; say so, loudly.
            std::size_t lost = 0;
            for (const PendingPtr& member : queue_) {
                if (member->waited) {
                    member->result = written;
                    member->done = true;
                    continue;
                }
                lost += member->events.size();
            }
            log::error("audit", "audit records lost at close: they cannot be written",
                       {{"records", lost},
                        {"first_request_id", queue_.front()->events.front().request_id},
                        {"error", written.message()}});
            queue_.clear();
            queued_records_ = 0;
            unwaited_ = 0;
            progress_.notify_all();
            return;
        }
    }
}

Result<AuditLog::Tail> AuditLog::read_tail() {
    // The last record, else the last archive's anchor (retention removed every record), else
    // the genesis. Two statements that each seek one end of a table: the last record, when
    // there is one, is always newer than any archive.
    SLUICE_ASSIGN_OR_RETURN(auto* last,
                            db_->cached("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"));
    SLUICE_ASSIGN_OR_RETURN(bool has_last, last->step());
    detail::Statement* found = last;
    if (!has_last) {
        SLUICE_ASSIGN_OR_RETURN(found, db_->cached("SELECT last_seq, last_hash FROM audit_archives "
                                                   "ORDER BY last_seq DESC LIMIT 1"));
        SLUICE_ASSIGN_OR_RETURN(bool has_anchor, found->step());
        if (!has_anchor) {
            return Tail{};
        }
    }
    Tail tail;
    tail.seq = found->column_int(0);
    const std::string hash = found->column_blob(1);
    found->reset();
    if (hash.size() != tail.hash.size()) {
        return data_loss("audit record " + std::to_string(tail.seq) + ": hash of " +
                         std::to_string(hash.size()) + " bytes, expected 32");
    }
    std::copy(hash.begin(), hash.end(), tail.hash.begin());
    return tail;
}

Status AuditLog::write_batch(const std::vector<PendingPtr>& batch) {
    SLUICE_ASSIGN_OR_RETURN(auto transaction, detail::Transaction::begin(*db_));
    SLUICE_ASSIGN_OR_RETURN(Tail tail, read_tail());
    std::int64_t seq = tail.seq;
    detail::Sha256::Digest prev = tail.hash;

    // The rows go in many to a statement (detail/audit_rows.h); a failure anywhere returns
    // before the commit, and the transaction's rollback takes back every row of the batch.
    row_writer_->clear();
    due_checkpoints_.clear();
    for (const PendingPtr& pending : batch) {
        pending->result = Status();
        if (pending->companion) {
            // A failing companion takes back only itself: its records are not written yet.
            SLUICE_RETURN_IF_ERROR(db_->exec("SAVEPOINT companion"));
            Status companion = pending->companion(*db_);
            if (!companion.ok()) {
                SLUICE_RETURN_IF_ERROR(db_->exec("ROLLBACK TO companion"));
                SLUICE_RETURN_IF_ERROR(db_->exec("RELEASE companion"));
                pending->result = companion;
                continue;
            }
            SLUICE_RETURN_IF_ERROR(db_->exec("RELEASE companion"));
        }
        for (const AuditEvent& e : pending->events) {
            ++seq;
            const detail::Sha256::Digest hash =
                record_hash(*hasher_, hash_scratch_, seq, e, bytes_of(prev));
            SLUICE_RETURN_IF_ERROR(row_writer_->add(seq, e, prev, hash));
            prev = hash;
            // The multiples of the interval, and this log's first record (which puts a changed
            // interval on record before a record that relies on it).
            if (seq % options_.checkpoint_every == 0 || (!wrote_first_ && seq == tail.seq + 1)) {
                due_checkpoints_.emplace_back(seq, hash);
            }
        }
    }
    SLUICE_RETURN_IF_ERROR(row_writer_->flush());
    // In the records' transaction: a commit never leaves a multiple of the interval unsigned, so
    // verify may call a missing checkpoint removed.
    for (const auto& [checkpoint_seq, hash] : due_checkpoints_) {
        SLUICE_RETURN_IF_ERROR(insert_checkpoint(checkpoint_seq, bytes_of(hash)));
    }
    SLUICE_RETURN_IF_ERROR(transaction->commit());
    wrote_first_ = wrote_first_ || seq > tail.seq;
    return Status();
}

Status AuditLog::checkpoint() {
    std::lock_guard db_lock(db_mutex_);
    return checkpoint_locked();
}

Status AuditLog::checkpoint_locked() {
    SLUICE_ASSIGN_OR_RETURN(auto transaction, detail::Transaction::begin(*db_));
    SLUICE_ASSIGN_OR_RETURN(
        auto head, db_->prepare("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"));
    SLUICE_ASSIGN_OR_RETURN(bool has_head, head.step());
    if (!has_head) {
        return Status();
    }
    std::int64_t seq = head.column_int(0);
    std::string hash = head.column_blob(1);
    head.reset();
    SLUICE_ASSIGN_OR_RETURN(auto last,
                            db_->prepare("SELECT COALESCE(MAX(seq), 0) FROM audit_checkpoints"));
    SLUICE_ASSIGN_OR_RETURN(bool has_last, last.step());
    if (has_last && last.column_int(0) >= seq) {
        return Status();  // the head is already signed
    }
    last.reset();
    SLUICE_RETURN_IF_ERROR(insert_checkpoint(seq, hash));
    return transaction->commit();
}

Status AuditLog::insert_checkpoint(std::int64_t seq, std::string_view hash) {
    SLUICE_ASSIGN_OR_RETURN(
        std::string signature,
        key_->sign(detail::audit_checkpoint_message(seq, hash, options_.checkpoint_every)));
    SLUICE_ASSIGN_OR_RETURN(auto* insert,
                            db_->cached("INSERT INTO audit_checkpoints (seq, hash, time_us, "
                                        "public_key, signature, checkpoint_every) VALUES "
                                        "(?, ?, ?, ?, ?, ?)"));
    const std::string& public_key = key_->public_key();
    return insert->bind(1, seq)
        .bind_blob(2, hash.data(), hash.size())
        .bind(3, now_us())
        .bind_blob(4, public_key.data(), public_key.size())
        .bind_blob(5, signature.data(), signature.size())
        .bind(6, options_.checkpoint_every)
        .run();
}

}  // namespace sluice::governance

namespace sluice::governance::detail {
Result<std::int64_t> inherited_checkpoint_every(Database& db, std::string_view public_key) {
    const std::int64_t fallback = AuditLogOptions{}.checkpoint_every;
    SLUICE_ASSIGN_OR_RETURN(auto last, db.prepare("SELECT seq, hash, checkpoint_every, signature "
                                                  "FROM audit_checkpoints WHERE checkpoint_every "
                                                  "IS NOT NULL ORDER BY seq DESC LIMIT 1"));
    SLUICE_ASSIGN_OR_RETURN(bool found, last.step());
    if (!found) {
        return fallback;
    }
    const std::int64_t every = last.column_int(2);
    const std::string message =
        audit_checkpoint_message(last.column_int(0), last.column_blob(1), every);
    if (every < 1 || !ed25519_verify(public_key, message, last.column_blob(3))) {
        log::warn("audit", "the last audit checkpoint does not verify; using the default interval",
                  {{"seq", last.column_int(0)}, {"checkpoint_every", fallback}});
        return fallback;
    }
    return every;
}

std::string audit_checkpoint_message(std::int64_t seq, std::string_view hash,
                                     std::int64_t checkpoint_every) {
    std::string message = checkpoint_every == 0 ? "sluice-audit-checkpoint-v1\n"
                                                : "sluice-audit-checkpoint-v2\n";
    message += std::to_string(seq);
    message += '\n';
    message += to_hex(hash);
    if (checkpoint_every != 0) {
        message += '\n';
        message += std::to_string(checkpoint_every);
    }
    return message;
}
}  // namespace sluice::governance::detail
