#include "governance/audit_log.h"

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
    Pending pending;
    pending.companion = std::move(companion);
    if (event.deferred_ticket != 0) {
        std::lock_guard lock(mutex_);
        auto held = deferred_.find(event.deferred_ticket);
        if (held != deferred_.end()) {
            pending.events = std::move(held->second);
            deferred_.erase(held);
        }
    }
    pending.events.push_back(std::move(event));
    return commit(pending);
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
    Pending pending;
    {
        std::lock_guard lock(mutex_);
        auto held = deferred_.find(ticket);
        if (held == deferred_.end()) {
            return Status();
        }
        pending.events = std::move(held->second);
        deferred_.erase(held);
    }
    return commit(pending);
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

Status AuditLog::commit(Pending& pending) {
    // The most records one transaction takes, so that a leader's wait stays bounded under load.
    constexpr std::size_t kMaxBatch = 512;
    std::unique_lock lock(mutex_);
    queue_.push_back(&pending);
    turn_.wait(lock, [&] { return pending.done || queue_.front() == &pending; });
    if (pending.done) {
        return pending.result;  // a leader committed it
    }
    // This append leads: it commits itself and whatever queued behind it.
    std::vector<Pending*> batch;
    for (auto it = queue_.begin(); it != queue_.end() && batch.size() < kMaxBatch; ++it) {
        batch.push_back(*it);
    }
    lock.unlock();
    Status written;
    {
        std::lock_guard db_lock(db_mutex_);
        written = write_batch(batch);
    }
    if (!written.ok()) {
        log::error("audit", "cannot write audit records",
                   {{"appends", batch.size()}, {"error", written.message()}});
    }
    lock.lock();
    for (Pending* member : batch) {
        SLUICE_CHECK(queue_.front() == member, "audit queue order changed during a commit");
        queue_.pop_front();
        if (!written.ok()) {
            member->result = written;
        }
        if (member->result.ok()) {
            appended_ += static_cast<std::int64_t>(member->events.size());
        }
        member->done = true;
    }
    turn_.notify_all();
    return pending.result;
}

Status AuditLog::write_batch(const std::vector<Pending*>& batch) {
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
    for (Pending* pending : batch) {
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
