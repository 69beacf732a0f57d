#pragma once
// The sync engine: keeps an Index in step with a change feed, applying every change exactly once
// across crashes.
//
// Each step polls at most `max_batch` changes after the stored checkpoint, collapses them to the
// last word per key (an upsert carries the whole document, so the last event of a key is its
// state), and applies them with Index::apply() in ONE synced RocksDB write batch together with
// the feed's new checkpoint. Only after that write returns is the checkpoint acknowledged to the
// feed. So:
//   - a crash before the write leaves the old checkpoint: the batch is polled again;
//   - a crash between the write and the acknowledgement leaves the new checkpoint in the index:
//     the next poll starts after the batch; a source that redelivers what was not acknowledged
//     sends upserts that converge (unchanged documents are skipped) and deletes of absent keys;
//   - the FAISS snapshot is tagged with the store sequence it reflects and open() replays the
//     chunk changes after it (see Index), so vectors follow the store too.
// Pipeline: while one batch commits, the next ones are chunked, analysed and embedded
// (Index::prepare) on a second thread, so that the embedder and the store's write overlap. The
// syncing thread polls up to `pipeline_depth` batches ahead of the one it commits (backpressure:
// the feed is read no faster than the index takes it, and never more than
// (pipeline_depth + 1) * max_batch changes are in memory), hands them to the worker in order and
// commits them in checkpoint order, each with its checkpoint, as above. Polling ahead is allowed
// by the source contract (poll is free of side effects; only acknowledge releases anything), and
// poll and acknowledge stay on the syncing thread. A batch whose poll, preparation or commit
// fails ends the run: the batches before it are committed, nothing after it is (what was
// prepared ahead is dropped), and the next run polls again from the stored checkpoint. A run
// of one batch (a caught-up feed's next change) is prepared on the syncing thread, so the
// pipeline adds nothing to freshness. pipeline_depth 0 is the serial engine: one batch at a
// time.
//
// Error records from the feed (a document that could not be read), and upserts whose metadata
// the index refuses (validate_metadata, index.h: one bad document must not hold the batch back at
// every retry; the key keeps what the index held) are counted, kept (the last
// `kept_errors`, also in the index beside the checkpoint) and logged with their key; a batch that
// the feed cut short with `paused` (policy "pause") puts the sync in state paused: it retries the
// same position every `idle_wait` until the source is fixed. The source decides skip or pause;
// the engine reports either.
//
// An unservable checkpoint (the feed's poll fails with kFailedPrecondition: a PostgreSQL slot
// dropped or its WAL gone, SQLite change rows pruned past it, a file source's state lost) starts
// a re-snapshot instead of retrying forever: the checkpoint goes back to "" (the source's initial
// snapshot) with a durable marker, every document the sync owns is remembered as unseen, each
// applied change marks its key seen, and the batch that catches up deletes the documents still
// unseen (gone from the source while the feed could not tell) in the same write that clears the
// marker. A crash during a re-snapshot finds the marker at open() and starts it again from "".
// The status counts re-snapshots and names the reason; SyncOptions::on_resnapshot lets the
// caller audit it.
//
// Modes: run_to_caught_up() (triggered: one sync run on the caller's thread) and start()/stop()
// (continuous: a thread polls, applies, acknowledges and waits on the feed when caught up; stop()
// wakes it).
//
// Thread safety: status() and stop() are thread-safe. run_to_caught_up() and step() must not
// run while the continuous thread runs, nor concurrently with each other.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/result.h"
#include "retrieval/index.h"
#include "retrieval/types.h"

namespace sluice::retrieval {

namespace detail {
class PrepareWorker;
}

enum class FeedOp { kUpsert, kDelete };

// One change of a feed. `document.key` is the key; a delete carries only the key.
struct FeedChange {
    FeedOp op = FeedOp::kUpsert;
    Document document;
    std::string offset;  // for display
};

// A document the source could not read.
struct FeedError {
    std::string key;
    std::string message;
    std::string offset;
};

struct FeedBatch {
    std::vector<FeedChange> changes;
    std::vector<FeedError> errors;
    std::string checkpoint;  // the position after this batch
    bool caught_up = false;  // nothing more is available now
    bool paused = false;     // the source's error policy stopped the batch at an error
};

// What the engine reads: app/ implements it over a connectors::Source. The contract is the
// Source's (docs/connectors.md): poll is deterministic for a checkpoint and moves nothing;
// acknowledge releases what the source kept up to a checkpoint; wake() may be called from any
// thread, everything else from the one thread that syncs.
class ChangeFeed {
public:
    virtual ~ChangeFeed() = default;
    // Errors: kUnavailable (retry later), kFailedPrecondition (the checkpoint can no longer be
    // served), kInvalidArgument (malformed checkpoint).
    virtual Result<FeedBatch> poll(std::string_view checkpoint, std::size_t max_changes) = 0;
    virtual Status acknowledge(std::string_view checkpoint) = 0;
    // True when woken by a sign of change; false after the timeout or wake().
    virtual Result<bool> wait(std::chrono::milliseconds timeout) = 0;
    virtual void wake() = 0;
    // Changes the source holds that are not applied yet, where it can count them.
    virtual std::optional<std::uint64_t> backlog() { return std::nullopt; }
};

struct SyncOptions {
    std::size_t max_batch = 500;                        // changes per poll and per write batch
    std::chrono::milliseconds idle_wait{1000};          // wait() when caught up or paused
    std::chrono::milliseconds retry_min{100};           // backoff after a failed step
    std::chrono::milliseconds retry_max{5000};
    std::uint64_t snapshot_every = 50000;  // store sequences between vector snapshots (caught up)
    std::size_t kept_errors = 20;          // error records kept in the status
    // Batches polled and prepared ahead of the one committing (0: serial, one at a time).
    std::size_t pipeline_depth = 2;
    // The stored documents this sync feeds: a re-snapshot deletes those of them it does not see
    // again. Unset: every document of the index (an index fed by one source).
    std::function<bool(const DocumentRecord&)> owns;
    // Called on the syncing thread when a re-snapshot starts, with the source's reason.
    std::function<void(const std::string& source, const std::string& reason)> on_resnapshot;
    // Which life of the source this is: a source removed and created again under the same name
    // is another one. What the index stored for another incarnation (checkpoint, error
    // records, an interrupted re-snapshot) is discarded by open(), so that the new source
    // starts from its beginning instead of the old one's position. "": not known (state is
    // kept whoever stored it). State stored before incarnations were recorded is adopted.
    std::string incarnation;
};

enum class SyncState { kIdle, kSyncing, kCaughtUp, kPaused, kRetrying, kStopped };
std::string_view sync_state_name(SyncState state);

struct SyncStatus {
    std::string source;
    std::string index;
    SyncState state = SyncState::kIdle;
    bool initial = false;  // started from the beginning and not yet caught up once
    std::size_t pipeline_depth = 0;  // SyncOptions::pipeline_depth the sync runs with
    std::string checkpoint;
    std::optional<std::uint64_t> lag_events;  // the feed's backlog, when it can count it
    double lag_seconds = 0;                   // time since the sync was last caught up (0 if it is)
    // The last failed step until a later step succeeds (it then holds the error record the
    // feed is paused at, or nothing); else the last error record.
    std::string last_error;
    std::vector<FeedError> recent_errors;     // newest last
    std::uint64_t error_records = 0;          // error records reported since start
    std::uint64_t batches = 0;                // batches committed since start
    std::uint64_t changes = 0;                // changes applied since start (after collapsing)
    std::uint64_t upserts = 0;
    std::uint64_t deletes = 0;
    std::size_t documents = 0;                // documents in the index
    double changes_per_second = 0;            // over the time spent working since start
    double poll_seconds = 0;                  // time in feed.poll
    double embed_seconds = 0;                 // time in the embedder
    double index_seconds = 0;                 // chunking, analysis, commit, in-memory update
    double prepare_seconds = 0;               //   of which chunking, analysis, cache lookups
    double commit_seconds = 0;                //   of which the synced write and memory update
    // Pipelined runs: time the syncing thread waited for the worker to finish preparing the
    // batch it was to commit next (the embedder and chunking were the slower side then).
    double prepare_wait_seconds = 0;
    double ack_seconds = 0;                   // time in feed.acknowledge
    double last_commit_unix = 0;              // wall time of the last committed batch
    std::uint64_t resnapshots = 0;            // re-snapshots started since start
    bool resnapshotting = false;              // a re-snapshot is in progress
    std::string resnapshot_reason;            // why the last re-snapshot started
    double last_resnapshot_unix = 0;          // when it started
};

struct StepResult {
    std::size_t changes = 0;  // after collapsing per key
    std::size_t errors = 0;
    bool caught_up = false;
    bool paused = false;
};

class SourceSync {
public:
    // Reads the checkpoint stored in `index` for `source`, after discarding what another
    // incarnation stored (SyncOptions::incarnation). Errors: those of reading and writing the
    // store.
    static Result<std::unique_ptr<SourceSync>> open(std::string source,
                                                    std::shared_ptr<Index> index,
                                                    std::unique_ptr<ChangeFeed> feed,
                                                    SyncOptions options = {});
    ~SourceSync();  // stops the continuous thread
    SourceSync(const SourceSync&) = delete;
    SourceSync& operator=(const SourceSync&) = delete;

    // One poll → apply (with the checkpoint) → acknowledge, serially. A failed step changes
    // nothing in the index; the next one polls the same position again.
    Result<StepResult> step();
    // Triggered mode: syncs batches (pipelined, see above) until the feed is caught up or
    // paused. On error, the batches committed before the failing one stay committed.
    Result<StepResult> run_to_caught_up();

    // Continuous mode.
    void start();
    void stop();
    // Continuous mode: polls the source now instead of after the idle wait or the retry
    // backoff (an operator's "sync now"). Thread-safe; a no-op when the loop is not running.
    void wake();

    SyncStatus status() const;
    // The names under which the checkpoint and error records are stored in the index.
    static std::string checkpoint_meta_name(std::string_view source);
    static std::string errors_meta_name(std::string_view source);
    // Non-empty (the reason) while a re-snapshot is in progress.
    static std::string resnapshot_meta_name(std::string_view source);
    // The SyncOptions::incarnation the state above belongs to.
    static std::string incarnation_meta_name(std::string_view source);

    struct Tag {};
    SourceSync(Tag, std::string source, std::shared_ptr<Index> index,
               std::unique_ptr<ChangeFeed> feed, SyncOptions options);

private:
    struct Pending;
    Pending poll_from(const std::string& checkpoint);
    Result<StepResult> commit_pending(Pending& pending, PreparedWrite prepared,
                                      std::chrono::steady_clock::time_point busy_since);
    // Polls, prepares and commits until caught up, paused, stopped (nothing flagged) or failed.
    Result<StepResult> run_batches(const std::stop_token& stop);
    // Drops the batches polled but not committed, waiting for the one being prepared.
    void abandon(std::deque<Pending>& flight);
    detail::PrepareWorker& worker();
    void loop(std::stop_token stop);
    void set_state(SyncState state);
    void note_failure(const Status& status);
    bool sleep_for(std::chrono::milliseconds duration, const std::stop_token& stop);
    void maybe_snapshot();
    Status begin_resnapshot(const Status& reason);
    Status load_unseen();

    const std::string source_;
    const std::shared_ptr<Index> index_;
    const std::unique_ptr<ChangeFeed> feed_;
    const SyncOptions options_;
    std::string checkpoint_;  // owned by the syncing thread; mirrored into status_
    bool resnapshotting_ = false;      // owned by the syncing thread
    std::set<std::string> unseen_;     // during a re-snapshot; owned by the syncing thread
    std::unique_ptr<detail::PrepareWorker> worker_;  // started by the first pipelined run

    mutable std::mutex mutex_;
    std::condition_variable_any sleep_cv_;
    SyncStatus status_;                                      // guarded by mutex_
    std::chrono::steady_clock::time_point behind_since_;     // guarded by mutex_
    bool behind_ = true;                                     // guarded by mutex_
    bool woken_ = false;                                     // guarded by mutex_
    double busy_seconds_ = 0;                                // guarded by mutex_
    // status_.last_error is a failed step (not an error record): the next good batch clears it.
    bool failed_step_ = false;  // guarded by mutex_
    std::jthread thread_;
};

// Encodes / decodes the error records kept beside the checkpoint (one JSON-free line format:
// tab-separated key, offset, message; escaped). Exposed for tests.
std::string encode_feed_errors(const std::vector<FeedError>& errors);
std::vector<FeedError> decode_feed_errors(std::string_view encoded);

}  // namespace sluice::retrieval
