#include "retrieval/sync.h"

#include <algorithm>
#include <map>

#include "common/check.h"
#include "common/log.h"
#include "retrieval/detail/prepare_worker.h"

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

std::string SourceSync::incarnation_meta_name(std::string_view source) {
    return "sync/" + std::string(source) + "/incarnation";
}

namespace {

// Makes the state `index` keeps for `source` that of `incarnation`: another incarnation's is
// reset (a source created again under a removed one's name starts from its own beginning);
// state without a recorded incarnation (stored by an older release) is adopted as it is.
Status claim_source_state(Index& index, const std::string& source, const std::string& incarnation) {
    if (incarnation.empty()) {
        return Status();
    }
    SLUICE_ASSIGN_OR_RETURN(auto stored, index.meta(SourceSync::incarnation_meta_name(source)));
    if (stored && *stored == incarnation) {
        return Status();
    }
    IndexWrite write;
    if (stored && !stored->empty()) {
        log::info("sync",
                  "the source was created again: the state its previous incarnation left in the "
                  "index is discarded",
                  {{"source", source}, {"index", index.settings().name}});
        for (const std::string& name :
             {SourceSync::checkpoint_meta_name(source), SourceSync::errors_meta_name(source),
              SourceSync::resnapshot_meta_name(source)}) {
            write.meta.emplace_back(name, "");
        }
    }
    write.meta.emplace_back(SourceSync::incarnation_meta_name(source), incarnation);
    auto written = index.apply(write);
    if (!written.ok()) {
        return written.status().with_context("source '" + source + "': recording its incarnation");
    }
    return Status();
}

}  // namespace

SourceSync::SourceSync(Tag, std::string source, std::shared_ptr<Index> index,
                       std::unique_ptr<ChangeFeed> feed, SyncOptions options)
    : source_(std::move(source)),
      index_(std::move(index)),
      feed_(std::move(feed)),
      options_(options),
      behind_since_(Clock::now()) {
    status_.source = source_;
    status_.index = index_->settings().name;
    status_.pipeline_depth = options_.pipeline_depth;
}

Result<std::unique_ptr<SourceSync>> SourceSync::open(std::string source,
                                                     std::shared_ptr<Index> index,
                                                     std::unique_ptr<ChangeFeed> feed,
                                                     SyncOptions options) {
    if (options.max_batch == 0) {
        return invalid_argument("sync max_batch 0, expected at least 1");
    }
    SLUICE_RETURN_IF_ERROR(claim_source_state(*index, source, options.incarnation));
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

SourceSync::~SourceSync() {
    stop();
    worker_.reset();
}

// A polled batch on its way to its commit: the changes collapsed into the write to prepare,
// and what the commit needs besides.
struct SourceSync::Pending {
    Status status;  // a failed poll: no batch
    FeedBatch batch;  // its changes moved into `write`
    IndexWrite write;
    std::vector<std::string> keys;  // every key the batch applies, for a re-snapshot's sweep
    std::size_t upserts = 0;
    std::size_t deletes = 0;
    Clock::time_point poll_start;
    double poll_seconds = 0;
    // Set when the worker prepares it; unset: prepared on the syncing thread at its commit.
    std::optional<std::future<Result<PreparedWrite>>> prepared;
};

SourceSync::Pending SourceSync::poll_from(const std::string& checkpoint) {
    Pending out;
    out.poll_start = Clock::now();
    auto polled = feed_->poll(checkpoint, options_.max_batch);
    out.poll_seconds = seconds_since(out.poll_start);
    if (!polled.ok()) {
        out.status = polled.status();
        return out;
    }
    out.batch = std::move(polled).value();
    // The last event of a key is its state: an upsert carries the whole document.
    std::map<std::string, std::size_t> last_of;
    for (std::size_t i = 0; i < out.batch.changes.size(); ++i) {
        last_of[out.batch.changes[i].document.key] = i;
    }
    out.keys.reserve(last_of.size());
    for (auto& [key, i] : last_of) {
        FeedChange& change = out.batch.changes[i];
        if (change.op == FeedOp::kDelete) {
            out.write.removes.push_back(key);
            ++out.deletes;
        } else if (Status valid = validate_metadata(change.document); !valid.ok()) {
            // A document the index refuses is this key's error record, as one the source could
            // not read is: it would otherwise fail the whole batch at every retry. What the
            // index holds for the key stays.
            out.batch.errors.push_back(FeedError{key, valid.message(), change.offset});
        } else {
            out.write.upserts.push_back(std::move(change.document));
            ++out.upserts;
        }
        out.keys.push_back(key);
    }
    out.batch.changes.clear();
    return out;
}

Result<StepResult> SourceSync::step() {
    Pending pending = poll_from(checkpoint_);
    if (pending.status.code() == StatusCode::kFailedPrecondition && !checkpoint_.empty()) {
        // Retrying the same position would fail forever: start over from the source's snapshot.
        SLUICE_RETURN_IF_ERROR(begin_resnapshot(pending.status));
        pending = poll_from(checkpoint_);
    }
    if (!pending.status.ok()) {
        return pending.status;
    }
    auto prepared = index_->prepare(pending.write);
    if (!prepared.ok()) {
        return prepared.status().with_context("source '" + source_ + "'");
    }
    return commit_pending(pending, std::move(prepared).value(), pending.poll_start);
}

Result<StepResult> SourceSync::commit_pending(Pending& pending, PreparedWrite prepared,
                                              Clock::time_point busy_since) {
    FeedBatch& batch = pending.batch;
    std::size_t deletes = pending.deletes;
    if (resnapshotting_) {
        for (const auto& key : pending.keys) {
            unseen_.erase(key);
        }
    }
    // The re-snapshot has delivered everything the source holds: what it did not deliver is
    // gone from the source and goes from the index, in the write that ends the re-snapshot.
    const bool finishing = resnapshotting_ && batch.caught_up;
    std::size_t swept = 0;
    if (finishing) {
        for (const auto& key : unseen_) {
            prepared.removes.push_back(key);
        }
        swept = unseen_.size();
        deletes += swept;
        prepared.meta.emplace_back(resnapshot_meta_name(source_), "");
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
    applied.prepare_seconds = prepared.prepare_seconds;
    applied.embed_seconds = prepared.embed_seconds;
    double ack_seconds = 0;
    if (moved || !pending.keys.empty() || !fresh_errors.empty() || finishing) {
        prepared.meta.emplace_back(checkpoint_meta_name(source_), batch.checkpoint);
        if (!fresh_errors.empty()) {
            prepared.meta.emplace_back(errors_meta_name(source_), encode_feed_errors(kept));
        }
        auto result = index_->commit(std::move(prepared));
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
        log::warn("sync", "document left out: unreadable at its source or refused by the index",
                  {{"source", source_}, {"key", error.key}, {"offset", error.offset},
                   {"error", error.message}});
    }
    const std::optional<std::uint64_t> backlog = batch.caught_up ? std::optional<std::uint64_t>(0)
                                                                 : feed_->backlog();

    const std::size_t applied_changes = pending.keys.size() + swept;
    std::lock_guard lock(mutex_);
    status_.checkpoint = checkpoint_;
    status_.resnapshotting = resnapshotting_;
    status_.recent_errors = std::move(kept);
    status_.error_records += fresh_errors.size();
    auto record_error = [](const FeedError& error) {
        return "record '" + error.key + "': " + error.message;
    };
    if (!fresh_errors.empty()) {
        status_.last_error = record_error(fresh_errors.back());
        failed_step_ = false;
    } else if (failed_step_) {
        // The source answered and the batch is applied: the failure is over. The error records
        // stay in recent_errors; a paused feed still reports the one it stopped at.
        status_.last_error =
            batch.paused && !batch.errors.empty() ? record_error(batch.errors.back()) : "";
        failed_step_ = false;
    }
    if (applied_changes > 0) {
        ++status_.batches;
        status_.changes += applied_changes;
        status_.upserts += pending.upserts;
        status_.deletes += deletes;
        status_.last_commit_unix = unix_now();
        busy_seconds_ += seconds_since(busy_since);
        status_.changes_per_second =
            busy_seconds_ > 0 ? static_cast<double>(status_.changes) / busy_seconds_ : 0;
    }
    status_.poll_seconds += pending.poll_seconds;
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
        behind_since_ = pending.poll_start;
    }
    return StepResult{applied_changes, batch.errors.size(), batch.caught_up, batch.paused};
}

detail::PrepareWorker& SourceSync::worker() {
    if (!worker_) {
        worker_ = std::make_unique<detail::PrepareWorker>(*index_);
    }
    return *worker_;
}

void SourceSync::abandon(std::deque<Pending>& flight) {
    if (worker_) {
        worker_->cancel_queued();
    }
    // The write in progress on the worker finishes before the run returns: nothing of this
    // run outlives it.
    for (Pending& pending : flight) {
        if (pending.prepared && pending.prepared->valid()) {  // the front's was taken
            pending.prepared->wait();
        }
    }
    flight.clear();
}

Result<StepResult> SourceSync::run_batches(const std::stop_token& stop) {
    const std::size_t depth = options_.pipeline_depth;
    std::deque<Pending> flight;  // polled, in checkpoint order; the front commits next
    std::string next_from = checkpoint_;
    bool more = true;  // the last batch polled did not end the run
    StepResult total;
    auto busy_since = Clock::now();
    while (true) {
        // Poll ahead while the worker prepares: the feed is read on this thread only (poll and
        // acknowledge share the source's connection), at most `depth` batches beyond the one
        // that commits next.
        while (more && flight.size() <= depth && !stop.stop_requested()) {
            Pending pending = poll_from(next_from);
            more = pending.status.ok() && !pending.batch.caught_up && !pending.batch.paused;
            if (pending.status.ok()) {
                next_from = pending.batch.checkpoint;
                // A batch with nothing before or after it (a caught-up feed's single change)
                // is prepared on this thread: the hand-over would only add latency.
                if (depth > 0 && (more || !flight.empty())) {
                    pending.prepared = worker().submit(std::move(pending.write));
                }
            }
            flight.push_back(std::move(pending));
        }
        if (stop.stop_requested() || flight.empty()) {
            abandon(flight);  // re-polled from the stored checkpoint next time
            return total;
        }
        Pending& front = flight.front();
        if (!front.status.ok()) {
            // Everything polled before it is committed: checkpoint_ is where it polled from.
            if (front.status.code() != StatusCode::kFailedPrecondition || checkpoint_.empty()) {
                Status failed = front.status;
                abandon(flight);
                return failed;
            }
            // Retrying the same position would fail forever: start over from the snapshot.
            Status started = begin_resnapshot(front.status);
            flight.clear();  // nothing was polled after a failed poll
            if (!started.ok()) {
                return started;
            }
            next_from = checkpoint_;
            more = true;
            continue;
        }
        auto prepared = [&]() -> Result<PreparedWrite> {
            if (!front.prepared) {
                return index_->prepare(front.write);
            }
            const auto wait_start = Clock::now();
            Result<PreparedWrite> done = front.prepared->get();
            const double waited = seconds_since(wait_start);
            std::lock_guard lock(mutex_);
            status_.prepare_wait_seconds += waited;
            return done;
        }();
        if (!prepared.ok()) {
            // Nothing after a failed batch commits: the next run polls it again.
            Status failed = prepared.status().with_context("source '" + source_ + "'");
            abandon(flight);
            return failed;
        }
        auto committed = commit_pending(front, std::move(prepared).value(), busy_since);
        busy_since = Clock::now();
        if (!committed.ok()) {
            abandon(flight);
            return committed.status();
        }
        flight.pop_front();
        if (!committed->caught_up && !committed->paused) {
            set_state(SyncState::kSyncing);
        }
        total.changes += committed->changes;
        total.errors += committed->errors;
        if (committed->caught_up || committed->paused) {
            SLUICE_CHECK(flight.empty(), "batches polled after the end of a run");
            total.caught_up = committed->caught_up;
            total.paused = committed->paused;
            return total;
        }
    }
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
        failed_step_ = true;
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
    auto result = run_batches(std::stop_token());
    if (!result.ok()) {
        note_failure(result.status());
        set_state(SyncState::kRetrying);
        return result.status();
    }
    set_state(result->paused ? SyncState::kPaused : SyncState::kCaughtUp);
    maybe_snapshot();
    return result;
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
        auto result = run_batches(stop);
        if (!result.ok()) {
            note_failure(result.status());
            set_state(SyncState::kRetrying);
            sleep_for(backoff, stop);
            backoff = std::min(backoff * 2, options_.retry_max);
            continue;
        }
        backoff = options_.retry_min;
        if (!result->paused && !result->caught_up) {
            continue;  // stopped
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
    failed_step_ = true;
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
