#include "retrieval/sync.h"

#include <algorithm>
#include <map>

#include "common/log.h"

namespace sluice::retrieval {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

double unix_now() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Tabs and newlines separate fields and records, so they are escaped inside values.
std::string escape_field(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        switch (c) {
            case '\\': out += "\\\\"; break;
            case '\t': out += "\\t"; break;
            case '\n': out += "\\n"; break;
            default: out += c;
        }
    }
    return out;
}

std::vector<std::string> split_fields(std::string_view line) {
    std::vector<std::string> fields(1);
    for (std::size_t i = 0; i < line.size(); ++i) {
        char c = line[i];
        if (c == '\t') {
            fields.emplace_back();
        } else if (c == '\\' && i + 1 < line.size()) {
            char next = line[++i];
            fields.back() += next == 't' ? '\t' : next == 'n' ? '\n' : next;
        } else {
            fields.back() += c;
        }
    }
    return fields;
}

bool same_error(const FeedError& a, const FeedError& b) {
    return a.key == b.key && a.message == b.message && a.offset == b.offset;
}

}  // namespace

std::string_view sync_state_name(SyncState state) {
    switch (state) {
        case SyncState::kIdle: return "idle";
        case SyncState::kSyncing: return "syncing";
        case SyncState::kCaughtUp: return "caught_up";
        case SyncState::kPaused: return "paused";
        case SyncState::kRetrying: return "retrying";
        case SyncState::kStopped: return "stopped";
    }
    return "unknown";
}

std::string encode_feed_errors(const std::vector<FeedError>& errors) {
    std::string out;
    for (const auto& error : errors) {
        out += escape_field(error.key) + '\t' + escape_field(error.offset) + '\t' +
               escape_field(error.message) + '\n';
    }
    return out;
}

std::vector<FeedError> decode_feed_errors(std::string_view encoded) {
    std::vector<FeedError> out;
    while (!encoded.empty()) {
        auto end = encoded.find('\n');
        std::string_view line = encoded.substr(0, end);
        encoded = end == std::string_view::npos ? std::string_view() : encoded.substr(end + 1);
        auto fields = split_fields(line);
        if (fields.size() == 3) {
            out.push_back(FeedError{fields[0], fields[2], fields[1]});
        }
    }
    return out;
}

std::string SourceSync::checkpoint_meta_name(std::string_view source) {
    return "sync/" + std::string(source) + "/checkpoint";
}

std::string SourceSync::errors_meta_name(std::string_view source) {
    return "sync/" + std::string(source) + "/errors";
}

std::string SourceSync::resnapshot_meta_name(std::string_view source) {
    return "sync/" + std::string(source) + "/resnapshot";
}

SourceSync::SourceSync(Tag, std::string source, std::shared_ptr<Index> index,
                       std::unique_ptr<ChangeFeed> feed, SyncOptions options)
    : source_(std::move(source)),
      index_(std::move(index)),
      feed_(std::move(feed)),
      options_(options),
      behind_since_(Clock::now()) {
    status_.source = source_;
    status_.index = index_->settings().name;
}

Result<std::unique_ptr<SourceSync>> SourceSync::open(std::string source,
                                                     std::shared_ptr<Index> index,
                                                     std::unique_ptr<ChangeFeed> feed,
                                                     SyncOptions options) {
    if (options.max_batch == 0) {
        return invalid_argument("sync max_batch 0, expected at least 1");
    }
    SLUICE_ASSIGN_OR_RETURN(auto checkpoint, index->meta(checkpoint_meta_name(source)));
    SLUICE_ASSIGN_OR_RETURN(auto errors, index->meta(errors_meta_name(source)));
    SLUICE_ASSIGN_OR_RETURN(auto resnapshot, index->meta(resnapshot_meta_name(source)));
    auto sync = std::make_unique<SourceSync>(Tag{}, std::move(source), std::move(index),
                                             std::move(feed), options);
    sync->checkpoint_ = checkpoint.value_or("");
    if (resnapshot && !resnapshot->empty()) {
        // A re-snapshot was cut short: which documents it had seen is gone with the process, so
        // it starts again from the beginning (unchanged documents are skipped by their hash).
        sync->checkpoint_.clear();
        sync->resnapshotting_ = true;
        SLUICE_RETURN_IF_ERROR(sync->load_unseen());
        log::warn("sync", "resuming an interrupted re-snapshot from the beginning",
                  {{"source", sync->source_}, {"reason", *resnapshot}});
    }
    std::lock_guard lock(sync->mutex_);
    if (sync->resnapshotting_) {
        sync->status_.resnapshotting = true;
        sync->status_.resnapshot_reason = *resnapshot;
    }
    sync->status_.checkpoint = sync->checkpoint_;
    sync->status_.initial = sync->checkpoint_.empty();
    if (errors) {
        sync->status_.recent_errors = decode_feed_errors(*errors);
    }
    return sync;
}

SourceSync::~SourceSync() { stop(); }

Result<StepResult> SourceSync::step() {
    const auto poll_start = Clock::now();
    auto polled = feed_->poll(checkpoint_, options_.max_batch);
    if (!polled.ok() && polled.status().code() == StatusCode::kFailedPrecondition &&
        !checkpoint_.empty()) {
        // Retrying the same position would fail forever: start over from the source's snapshot.
        SLUICE_RETURN_IF_ERROR(begin_resnapshot(polled.status()));
        polled = feed_->poll(checkpoint_, options_.max_batch);
    }
    if (!polled.ok()) {
        return polled.status();
    }
    FeedBatch batch = std::move(polled).value();
    const double poll_seconds = seconds_since(poll_start);

    // The last event of a key is its state: an upsert carries the whole document.
    std::map<std::string, std::size_t> last_of;
    for (std::size_t i = 0; i < batch.changes.size(); ++i) {
        last_of[batch.changes[i].document.key] = i;
    }
    IndexWrite write;
    std::size_t upserts = 0;
    std::size_t deletes = 0;
    for (auto& [key, i] : last_of) {
        FeedChange& change = batch.changes[i];
        if (change.op == FeedOp::kDelete) {
            write.removes.push_back(key);
            ++deletes;
        } else {
            write.upserts.push_back(std::move(change.document));
            ++upserts;
        }
        if (resnapshotting_) {
            unseen_.erase(key);
        }
    }
    // The re-snapshot has delivered everything the source holds: what it did not deliver is
    // gone from the source and goes from the index, in the write that ends the re-snapshot.
    const bool finishing = resnapshotting_ && batch.caught_up;
    std::size_t swept = 0;
    if (finishing) {
        for (const auto& key : unseen_) {
            write.removes.push_back(key);
        }
        swept = unseen_.size();
        deletes += swept;
        write.meta.emplace_back(resnapshot_meta_name(source_), "");
    }

    // New error records (a paused feed reports the same one on every poll).
    std::vector<FeedError> fresh_errors;
    std::vector<FeedError> kept;
    {
        std::lock_guard lock(mutex_);
        kept = status_.recent_errors;
    }
    for (const auto& error : batch.errors) {
        bool known = std::any_of(kept.begin(), kept.end(),
                                 [&](const FeedError& k) { return same_error(k, error); });
        if (!known) {
            fresh_errors.push_back(error);
            kept.push_back(error);
        }
    }
    if (kept.size() > options_.kept_errors) {
        kept.erase(kept.begin(), kept.end() - static_cast<std::ptrdiff_t>(options_.kept_errors));
    }

    const bool moved = batch.checkpoint != checkpoint_;
    ApplyStats applied;
    double ack_seconds = 0;
    if (moved || !last_of.empty() || !fresh_errors.empty() || finishing) {
        write.meta.emplace_back(checkpoint_meta_name(source_), batch.checkpoint);
        if (!fresh_errors.empty()) {
            write.meta.emplace_back(errors_meta_name(source_), encode_feed_errors(kept));
        }
        auto result = index_->apply(write);
        if (!result.ok()) {
            return result.status().with_context("source '" + source_ + "'");
        }
        applied = std::move(result).value();
        checkpoint_ = batch.checkpoint;
        if (finishing) {
            resnapshotting_ = false;
            unseen_.clear();
            log::info("sync", "re-snapshot complete",
                      {{"source", source_}, {"deleted", std::to_string(swept)}});
        }
        // Only now is the batch durable: the source may release it.
        const auto ack_start = Clock::now();
        Status acked = feed_->acknowledge(checkpoint_);
        ack_seconds = seconds_since(ack_start);
        if (!acked.ok()) {
            // The checkpoint is stored; the source keeps the acknowledgement or gets the next.
            log::warn("sync", "acknowledgement failed; the source keeps the batch until the next",
                      {{"source", source_}, {"error", acked.message()}});
        }
    }
    for (const auto& error : fresh_errors) {
        log::warn("sync", "source reported a document it could not read",
                  {{"source", source_}, {"key", error.key}, {"offset", error.offset},
                   {"error", error.message}});
    }
    const std::optional<std::uint64_t> backlog = batch.caught_up ? std::optional<std::uint64_t>(0)
                                                                 : feed_->backlog();

    const std::size_t applied_changes = last_of.size() + swept;
    std::lock_guard lock(mutex_);
    status_.checkpoint = checkpoint_;
    status_.resnapshotting = resnapshotting_;
    status_.recent_errors = std::move(kept);
    status_.error_records += fresh_errors.size();
    if (!fresh_errors.empty()) {
        status_.last_error = "record '" + fresh_errors.back().key + "': " +
                             fresh_errors.back().message;
    }
    if (applied_changes > 0) {
        ++status_.batches;
        status_.changes += applied_changes;
        status_.upserts += upserts;
        status_.deletes += deletes;
        status_.last_commit_unix = unix_now();
        busy_seconds_ += poll_seconds + applied.prepare_seconds + applied.commit_seconds +
                         ack_seconds;
        status_.changes_per_second =
            busy_seconds_ > 0 ? static_cast<double>(status_.changes) / busy_seconds_ : 0;
    }
    status_.poll_seconds += poll_seconds;
    status_.embed_seconds += applied.embed_seconds;
    status_.index_seconds += applied.prepare_seconds - applied.embed_seconds +
                             applied.commit_seconds;
    status_.prepare_seconds += applied.prepare_seconds - applied.embed_seconds;
    status_.commit_seconds += applied.commit_seconds;
    status_.ack_seconds += ack_seconds;
    status_.lag_events = backlog;
    if (batch.caught_up) {
        behind_ = false;
        status_.initial = false;
    } else if (!behind_) {
        behind_ = true;
        behind_since_ = poll_start;
    }
    return StepResult{applied_changes, batch.errors.size(), batch.caught_up, batch.paused};
}

Status SourceSync::begin_resnapshot(const Status& reason) {
    log::warn("sync", "the source cannot resume from the stored checkpoint; re-snapshotting",
              {{"source", source_}, {"index", index_->settings().name},
               {"reason", reason.message()}});
    // The marker and the reset checkpoint in one write: a crash from here on resumes the
    // re-snapshot (open()), never the unservable position.
    IndexWrite write;
    write.meta.emplace_back(checkpoint_meta_name(source_), "");
    write.meta.emplace_back(resnapshot_meta_name(source_),
                            reason.message().empty() ? "unservable checkpoint" : reason.message());
    auto written = index_->apply(write);
    if (!written.ok()) {
        return written.status().with_context("source '" + source_ + "': starting a re-snapshot");
    }
    checkpoint_.clear();
    resnapshotting_ = true;
    SLUICE_RETURN_IF_ERROR(load_unseen());
    {
        std::lock_guard lock(mutex_);
        ++status_.resnapshots;
        status_.resnapshotting = true;
        status_.resnapshot_reason = reason.message();
        status_.last_resnapshot_unix = unix_now();
        status_.last_error = "re-snapshot: " + reason.to_string();
        status_.checkpoint.clear();
        status_.initial = true;
    }
    if (options_.on_resnapshot) {
        options_.on_resnapshot(source_, reason.message());
    }
    return Status();
}

Status SourceSync::load_unseen() {
    unseen_.clear();
    return index_->for_each_document([this](const DocumentRecord& record) {
        if (!options_.owns || options_.owns(record)) {
            unseen_.insert(record.key);
        }
        return true;
    });
}

Result<StepResult> SourceSync::run_to_caught_up() {
    set_state(SyncState::kSyncing);
    StepResult total;
    while (true) {
        auto result = step();
        if (!result.ok()) {
            note_failure(result.status());
            set_state(SyncState::kRetrying);
            return result.status();
        }
        total.changes += result->changes;
        total.errors += result->errors;
        if (result->paused || result->caught_up) {
            total.paused = result->paused;
            total.caught_up = result->caught_up;
            set_state(result->paused ? SyncState::kPaused : SyncState::kCaughtUp);
            maybe_snapshot();
            return total;
        }
    }
}

void SourceSync::start() {
    if (thread_.joinable()) {
        return;
    }
    thread_ = std::jthread([this](std::stop_token stop) { loop(std::move(stop)); });
}

void SourceSync::stop() {
    if (!thread_.joinable()) {
        return;
    }
    thread_.request_stop();
    feed_->wake();
    {
        std::lock_guard lock(mutex_);
        sleep_cv_.notify_all();
    }
    thread_.join();
    set_state(SyncState::kStopped);
}

void SourceSync::loop(std::stop_token stop) {
    log::info("sync", "continuous sync started",
              {{"source", source_}, {"index", index_->settings().name}});
    set_state(SyncState::kSyncing);
    auto backoff = options_.retry_min;
    while (!stop.stop_requested()) {
        auto result = step();
        if (!result.ok()) {
            note_failure(result.status());
            set_state(SyncState::kRetrying);
            sleep_for(backoff, stop);
            backoff = std::min(backoff * 2, options_.retry_max);
            continue;
        }
        backoff = options_.retry_min;
        if (!result->paused && !result->caught_up) {
            set_state(SyncState::kSyncing);
            continue;
        }
        set_state(result->paused ? SyncState::kPaused : SyncState::kCaughtUp);
        if (result->caught_up) {
            maybe_snapshot();
        }
        if (stop.stop_requested()) {
            break;
        }
        auto waited = feed_->wait(options_.idle_wait);
        if (!waited.ok()) {
            note_failure(waited.status());
            sleep_for(backoff, stop);
        }
    }
    log::info("sync", "continuous sync stopped", {{"source", source_}});
}

bool SourceSync::sleep_for(std::chrono::milliseconds duration, const std::stop_token& stop) {
    std::unique_lock lock(mutex_);
    bool woken = sleep_cv_.wait_for(lock, stop, duration, [this] { return woken_; });
    woken_ = false;
    return !woken;
}

void SourceSync::wake() {
    {
        std::lock_guard lock(mutex_);
        woken_ = true;
        sleep_cv_.notify_all();
    }
    feed_->wake();
}

void SourceSync::set_state(SyncState state) {
    std::lock_guard lock(mutex_);
    status_.state = state;
}

void SourceSync::note_failure(const Status& status) {
    log::warn("sync", "sync step failed; retrying from the stored checkpoint",
              {{"source", source_}, {"error", status.message()}});
    std::lock_guard lock(mutex_);
    status_.last_error = status.to_string();
}

void SourceSync::maybe_snapshot() {
    if (index_->writes_since_snapshot() < options_.snapshot_every) {
        return;
    }
    if (Status saved = index_->snapshot(); !saved.ok()) {
        log::warn("sync", "vector snapshot failed; the next open replays more",
                  {{"index", index_->settings().name}, {"error", saved.message()}});
    }
}

SyncStatus SourceSync::status() const {
    const std::size_t documents = index_->document_count();
    std::lock_guard lock(mutex_);
    SyncStatus out = status_;
    out.documents = documents;
    out.lag_seconds = behind_ ? seconds_since(behind_since_) : 0;
    return out;
}

}  // namespace sluice::retrieval
