#include "governance/audit_log.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "common/check.h"
#include "common/log.h"
#include "governance/detail/audit_format.h"
#include "governance/detail/crypto.h"
#include "governance/detail/sqlite.h"

namespace sluice::governance {
namespace {

void append_json_string(std::string& out, std::string_view text) {
    out += '"';
    for (char c : text) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char escaped[8];
                    std::snprintf(escaped, sizeof(escaped), "\\u%04x", c);
                    out += escaped;
                } else {
                    out += c;
                }
        }
    }
    out += '"';
}

std::int64_t now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace

std::string audit_record_json(const AuditRecord& record, bool with_hash) {
    const AuditEvent& e = record.event;
    std::string out = "{";
    auto field = [&out](std::string_view key, std::string_view value) {
        append_json_string(out, key);
        out += ':';
        append_json_string(out, value);
        out += ',';
    };
    field("action", e.action);
    field("client", e.client);
    field("decided_by", e.decided_by);
    field("details", e.details);
    if (with_hash) {
        field("hash", detail::to_hex(record.hash));
    }
    field("prev_hash", detail::to_hex(record.prev_hash));
    field("principal", e.principal);
    field("request_id", e.request_id);
    field("result", e.result);
    field("securable", e.securable);
    out += "\"seq\":" + std::to_string(record.seq) + ",";
    out += "\"time_us\":" + std::to_string(e.time_us) + ",";
    field("token_id", e.token_id);
    out.back() = '}';
    return out;
}

std::string audit_record_hash(const AuditRecord& record) {
    return detail::sha256(record.prev_hash + audit_record_json(record, false));
}

Result<std::string> audit_public_key(const std::filesystem::path& key_path) {
    SLUICE_ASSIGN_OR_RETURN(auto key, detail::Ed25519Key::load_or_create(key_path));
    return key->public_key();
}

AuditLog::AuditLog(std::unique_ptr<detail::Database> db, std::unique_ptr<detail::Ed25519Key> key,
                   AuditLogOptions options, std::unique_ptr<detail::Database> checkpoint_db)
    : db_(std::move(db)), key_(std::move(key)), options_(options),
      checkpoint_db_(std::move(checkpoint_db)) {
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
        for (const auto& [ticket, events] : deferred_) {
            tickets.push_back(ticket);
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
    if (options.checkpoint_every < 1) {
        return invalid_argument("audit checkpoint interval must be at least 1 record, found " +
                                std::to_string(options.checkpoint_every));
    }
    if (options.queue_capacity < 1) {
        return invalid_argument("audit queue capacity must be at least 1 record");
    }
    SLUICE_ASSIGN_OR_RETURN(auto db, detail::Database::open(db_path.string()));
    SLUICE_RETURN_IF_ERROR(db->exec("PRAGMA wal_autocheckpoint=0"));
    SLUICE_ASSIGN_OR_RETURN(auto checkpoint_db, detail::Database::open(db_path.string()));
    SLUICE_ASSIGN_OR_RETURN(auto key, detail::Ed25519Key::load_or_create(key_path));
    return std::make_unique<AuditLog>(std::move(db), std::move(key), options,
                                      std::move(checkpoint_db));
}

Status AuditLog::append(AuditEvent event) { return append(std::move(event), nullptr); }

Status AuditLog::append(AuditEvent event, AuditCompanion companion) {
    if (event.time_us == 0) {
        event.time_us = now_us();
    }
    auto pending = std::make_shared<Pending>();
    pending->waited = companion != nullptr || options_.acknowledge == AuditAcknowledge::kDurable;
    pending->companion = std::move(companion);
    if (event.deferred_ticket != 0) {
        std::lock_guard lock(mutex_);
        auto held = deferred_.find(event.deferred_ticket);
        if (held != deferred_.end()) {
            pending->events = std::move(held->second);
            deferred_.erase(held);
        }
    }
    pending->events.push_back(std::move(event));
    return submit(std::move(pending));
}

std::uint64_t AuditLog::defer(AuditEvent event) {
    if (event.time_us == 0) {
        event.time_us = now_us();
    }
    std::lock_guard lock(mutex_);
    std::uint64_t ticket = next_ticket_++;
    deferred_[ticket].push_back(std::move(event));
    return ticket;
}

Status AuditLog::flush(std::uint64_t ticket) {
    auto pending = std::make_shared<Pending>();
    pending->waited = options_.acknowledge == AuditAcknowledge::kDurable;
    {
        std::lock_guard lock(mutex_);
        auto held = deferred_.find(ticket);
        if (held == deferred_.end()) {
            return Status();
        }
        pending->events = std::move(held->second);
        deferred_.erase(held);
    }
    return submit(std::move(pending));
}

std::size_t AuditLog::deferred_count() const {
    std::lock_guard lock(mutex_);
    std::size_t count = 0;
    for (const auto& [ticket, events] : deferred_) {
        count += events.size();
    }
    return count;
}

std::int64_t AuditLog::appended() const {
    std::lock_guard lock(mutex_);
    return appended_;
}

std::size_t AuditLog::queued() const {
    std::lock_guard lock(mutex_);
    return queued_records_ + writing_records_;
}

Status AuditLog::submit(PendingPtr pending) {
    const std::size_t records = pending->events.size();
    std::unique_lock lock(mutex_);
    // Block, never drop: a full queue holds the appender until the writer makes room. A bundle
    // larger than the whole queue goes in alone.
    progress_.wait(lock, [&] {
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
    pending->index = ++submitted_;
    queued_records_ += records;
    queue_.push_back(pending);
    // Wake the writer only when it must act now; a record nobody waits for joins the batch
    // being gathered without a context switch.
    if (pending->waited) {
        ++urgent_;
    }
    if (idle_ || pending->waited || queued_records_ >= kMaxBatch) {
        work_.notify_one();
    }
    if (!pending->waited) {
        return Status();
    }
    progress_.wait(lock, [&] { return pending->done; });
    return pending->result;
}

Status AuditLog::sync() {
    std::unique_lock lock(mutex_);
    const std::uint64_t target = submitted_;
    if (committed_through_ >= target) {
        return failure_.ok() ? Status() : unavailable("the audit log cannot be written: " + failure_.message());
    }
    ++urgent_;
    work_.notify_one();
    progress_.wait(lock, [&] { return committed_through_ >= target || !failure_.ok(); });
    --urgent_;
    if (!failure_.ok()) {
        return unavailable("the audit log cannot be written: " + failure_.message());
    }
    return Status();
}

void AuditLog::write_loop() {
    constexpr auto kFirstPause = std::chrono::milliseconds(10);
    constexpr auto kLongestPause = std::chrono::seconds(1);
    std::vector<PendingPtr> batch;
    std::uint64_t batch_last = 0;
    auto pause = std::chrono::milliseconds(kFirstPause);
    std::unique_lock lock(mutex_);
    for (;;) {
        if (batch.empty()) {
            idle_ = true;
            work_.wait(lock, [&] { return !queue_.empty() || closing_; });
            idle_ = false;
            if (queue_.empty()) {
                return;  // closing, and everything is written
            }
            // Gather: records nobody waits for are committed together, a few milliseconds late.
            work_.wait_for(lock, options_.gather, [&] {
                return closing_ || urgent_ > 0 || queued_records_ >= kMaxBatch;
            });
            std::size_t records = 0;
            while (!queue_.empty() && batch.size() < kMaxBatch) {
                records += queue_.front()->events.size();
                if (queue_.front()->waited) {
                    --urgent_;
                }
                batch.push_back(std::move(queue_.front()));
                queue_.pop_front();
            }
            queued_records_ -= records;
            writing_records_ = records;
            batch_last = batch.back()->index;
            progress_.notify_all();  // room in the queue
        }
        lock.unlock();
        Status written;
        {
            std::lock_guard db_lock(db_mutex_);
            written = write_batch(batch);
        }
        lock.lock();
        if (written.ok()) {
            for (const PendingPtr& member : batch) {
                if (member->result.ok()) {
                    appended_ += static_cast<std::int64_t>(member->events.size());
                }
                member->done = true;
            }
            committed_through_ = batch_last;
            writing_records_ = 0;
            failure_ = Status();
            pause = kFirstPause;
            batch.clear();
            progress_.notify_all();
            continue;
        }
        if (failure_.ok()) {
            log::error("audit", "cannot write audit records; refusing new ones and retrying",
                       {{"appends", batch.size()}, {"error", written.message()}});
        }
        failure_ = written;
        // An appender that waits hears of the failure and fails its request; records whose
        // appenders have gone on are kept, in order, and retried.
        std::erase_if(batch, [&](const PendingPtr& member) {
            if (!member->waited) {
                return false;
            }
            member->result = written;
            member->done = true;
            writing_records_ -= member->events.size();
            return true;
        });
        progress_.notify_all();
        if (batch.empty()) {
            // Nothing left that nobody heard of: the next append tries the storage again.
            committed_through_ = batch_last;
            failure_ = Status();
            continue;
        }
        if (closing_) {
            log::error("audit", "audit records lost at close: they cannot be written",
                       {{"records", writing_records_},
                        {"first_request_id", batch.front()->events.front().request_id},
                        {"error", written.message()}});
            writing_records_ = 0;
            batch.clear();
            continue;
        }
        work_.wait_for(lock, pause, [&] { return closing_; });
        pause = std::min<std::chrono::milliseconds>(pause * 2, kLongestPause);
    }
}

Status AuditLog::write_batch(const std::vector<PendingPtr>& batch) {
    SLUICE_ASSIGN_OR_RETURN(auto transaction, detail::Transaction::begin(*db_));
    // The tail: the last record, else the last archive's anchor, else the genesis.
    SLUICE_ASSIGN_OR_RETURN(
        auto* tail,
        db_->cached("SELECT seq, hash FROM (SELECT seq, hash FROM audit_log ORDER BY seq DESC "
                    "LIMIT 1) UNION ALL SELECT * FROM (SELECT last_seq, last_hash FROM "
                    "audit_archives ORDER BY last_seq DESC LIMIT 1) ORDER BY 1 DESC LIMIT 1"));
    SLUICE_ASSIGN_OR_RETURN(bool has_tail, tail->step());
    std::int64_t seq = has_tail ? tail->column_int(0) : 0;
    std::string prev = has_tail ? tail->column_blob(1) : std::string(32, '\0');
    tail->reset();

    SLUICE_ASSIGN_OR_RETURN(
        auto* insert,
        db_->cached("INSERT INTO audit_log (seq, time_us, principal, action, securable, result, "
                    "request_id, client, token_id, decided_by, details, prev_hash, hash) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
    bool crossed_checkpoint = false;
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
        for (const AuditEvent& event : pending->events) {
            AuditRecord record{++seq, event, prev, ""};
            record.hash = audit_record_hash(record);
            const AuditEvent& e = record.event;
            insert->reset();
            SLUICE_RETURN_IF_ERROR(
                insert->bind(1, record.seq)
                    .bind(2, e.time_us)
                    .bind(3, e.principal)
                    .bind(4, e.action)
                    .bind(5, e.securable)
                    .bind(6, e.result)
                    .bind(7, e.request_id)
                    .bind(8, e.client)
                    .bind(9, e.token_id)
                    .bind(10, e.decided_by)
                    .bind(11, e.details)
                    .bind_blob(12, record.prev_hash.data(), record.prev_hash.size())
                    .bind_blob(13, record.hash.data(), record.hash.size())
                    .run());
            prev = record.hash;
            crossed_checkpoint = crossed_checkpoint || seq % options_.checkpoint_every == 0;
        }
    }
    SLUICE_RETURN_IF_ERROR(transaction->commit());
    if (crossed_checkpoint) {
        SLUICE_RETURN_IF_ERROR(checkpoint_locked());
    }
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
    SLUICE_ASSIGN_OR_RETURN(std::string signature, key_->sign(detail::audit_checkpoint_message(seq, hash)));
    SLUICE_ASSIGN_OR_RETURN(auto insert, db_->prepare("INSERT INTO audit_checkpoints (seq, hash, "
                                                      "time_us, public_key, signature) VALUES "
                                                      "(?, ?, ?, ?, ?)"));
    const std::string& public_key = key_->public_key();
    SLUICE_RETURN_IF_ERROR(insert.bind(1, seq)
                               .bind_blob(2, hash.data(), hash.size())
                               .bind(3, now_us())
                               .bind_blob(4, public_key.data(), public_key.size())
                               .bind_blob(5, signature.data(), signature.size())
                               .run());
    return transaction->commit();
}

}  // namespace sluice::governance

namespace sluice::governance::detail {
std::string audit_checkpoint_message(std::int64_t seq, std::string_view hash) {
    return "sluice-audit-checkpoint-v1\n" + std::to_string(seq) + "\n" + to_hex(hash);
}
}  // namespace sluice::governance::detail
