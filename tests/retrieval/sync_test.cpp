#include "retrieval/sync.h"

#include <doctest/doctest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "temp_dir.h"

using namespace sluice::retrieval;
using sluice::Result;
using sluice::Status;
using sluice::StatusCode;
using sluice::retrieval::testing::numbered;
using sluice::retrieval::testing::TempDir;

namespace {

using namespace std::chrono_literals;

// A source held in memory: an append-only log of changes; the checkpoint is the number of log
// entries consumed. Like the real sources, acknowledging releases entries, after which a poll
// from an older checkpoint fails; `redeliver_unacknowledged` makes it restart from its last
// acknowledgement instead (a source that forgot the consumer's position).
class MemoryFeed final : public ChangeFeed {
public:
    struct Entry {
        FeedChange change;
        std::optional<FeedError> error;
    };
    struct Shared {
        std::mutex mutex;
        std::vector<Entry> log;
        std::size_t acknowledged = 0;
        std::size_t acknowledgements = 0;
        std::size_t polled_changes = 0;
        bool fail_acknowledge = false;
        bool fail_poll = false;
        bool pause_on_error = false;
        bool redeliver_unacknowledged = false;
        // A compacting source: "" serves a snapshot of what the log holds now (the live
        // documents, "s<i>" positions into them) and then the log after it.
        bool compacts = false;
    };

    explicit MemoryFeed(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}

    Result<FeedBatch> poll(std::string_view checkpoint, std::size_t max_changes) override {
        std::lock_guard lock(shared_->mutex);
        if (shared_->fail_poll) {
            return Status(StatusCode::kUnavailable, "memory feed: unreachable");
        }
        if (shared_->compacts && (checkpoint.empty() || checkpoint[0] == 's')) {
            return snapshot(checkpoint, max_changes);
        }
        std::size_t from = checkpoint.empty() ? 0 : std::stoul(std::string(checkpoint));
        if (shared_->redeliver_unacknowledged) {
            from = std::min(from, shared_->acknowledged);
        }
        if (from < shared_->acknowledged) {
            return Status(StatusCode::kFailedPrecondition, "memory feed: released");
        }
        FeedBatch batch;
        std::size_t at = from;
        while (at < shared_->log.size() && batch.changes.size() < max_changes) {
            const Entry& entry = shared_->log[at];
            if (entry.error) {
                batch.errors.push_back(*entry.error);
                if (shared_->pause_on_error) {
                    batch.paused = true;
                    break;
                }
            } else {
                batch.changes.push_back(entry.change);
            }
            ++at;
        }
        shared_->polled_changes += batch.changes.size();
        batch.checkpoint = std::to_string(at);
        batch.caught_up = !batch.paused && at == shared_->log.size();
        return batch;
    }
    Status acknowledge(std::string_view checkpoint) override {
        std::lock_guard lock(shared_->mutex);
        if (shared_->fail_acknowledge) {
            return Status(StatusCode::kUnavailable, "memory feed: acknowledgement lost");
        }
        if (checkpoint.starts_with("s")) {
            return Status();  // inside a snapshot: nothing of the log is released
        }
        shared_->acknowledged = std::stoul(std::string(checkpoint));
        ++shared_->acknowledgements;
        return Status();
    }
    Result<bool> wait(std::chrono::milliseconds timeout) override {
        std::unique_lock lock(wake_mutex_);
        bool woken = cv_.wait_for(lock, timeout, [&] { return woken_; });
        woken_ = false;
        return woken;
    }
    void wake() override {
        std::lock_guard lock(wake_mutex_);
        woken_ = true;
        cv_.notify_all();
    }
    std::optional<std::uint64_t> backlog() override {
        std::lock_guard lock(shared_->mutex);
        return shared_->log.size() - shared_->acknowledged;
    }

private:
    // Called with shared_->mutex held.
    FeedBatch snapshot(std::string_view checkpoint, std::size_t max_changes) {
        std::map<std::string, FeedChange> live;
        for (const Entry& entry : shared_->log) {
            if (entry.error) {
                continue;
            }
            if (entry.change.op == FeedOp::kDelete) {
                live.erase(entry.change.document.key);
            } else {
                live[entry.change.document.key] = entry.change;
            }
        }
        std::size_t at = checkpoint.empty() ? 0 : std::stoul(std::string(checkpoint.substr(1)));
        FeedBatch batch;
        auto it = live.begin();
        std::advance(it, std::min(at, live.size()));
        for (; it != live.end() && batch.changes.size() < max_changes; ++it, ++at) {
            batch.changes.push_back(it->second);
        }
        batch.checkpoint = at < live.size() ? "s" + std::to_string(at)
                                            : std::to_string(shared_->log.size());
        batch.caught_up = at >= live.size();
        return batch;
    }

    std::shared_ptr<Shared> shared_;
    std::mutex wake_mutex_;
    std::condition_variable cv_;
    bool woken_ = false;
};

Acl group_acl(const std::string& group) { return Acl{{}, {group}}; }

FeedChange upsert(const std::string& key, const std::string& text,
                  const std::string& group = "staff") {
    FeedChange change;
    change.op = FeedOp::kUpsert;
    change.document.key = key;
    change.document.uri = "mem://" + key;
    change.document.text = text;
    change.document.acl = group_acl(group);
    return change;
}

FeedChange delete_of(const std::string& key) {
    FeedChange change;
    change.op = FeedOp::kDelete;
    change.document.key = key;
    return change;
}

void append(MemoryFeed::Shared& shared, FeedChange change) {
    std::lock_guard lock(shared.mutex);
    shared.log.push_back({std::move(change), std::nullopt});
}

void append_error(MemoryFeed::Shared& shared, const std::string& key) {
    std::lock_guard lock(shared.mutex);
    shared.log.push_back({FeedChange{}, FeedError{key, "does not parse", "seq:" + key}});
}

IndexSettings settings() {
    IndexSettings s;
    s.name = "synced";
    s.dimension = 64;
    return s;
}

std::shared_ptr<Index> open_index(const TempDir& dir) {
    auto existing = Index::open(dir.path() / "synced", IndexDeps{});
    if (existing.ok()) {
        return std::shared_ptr<Index>(std::move(existing).value());
    }
    auto created = Index::create(dir.path() / "synced", settings(), IndexDeps{});
    REQUIRE_MESSAGE(created.ok(), created.status().to_string());
    return std::shared_ptr<Index>(std::move(created).value());
}

std::unique_ptr<SourceSync> open_sync(std::shared_ptr<Index> index,
                                      std::shared_ptr<MemoryFeed::Shared> shared,
                                      SyncOptions options = {}) {
    auto sync = SourceSync::open("src", std::move(index), std::make_unique<MemoryFeed>(shared),
                                 options);
    REQUIRE_MESSAGE(sync.ok(), sync.status().to_string());
    return std::move(sync).value();
}

// key -> text of everything the index holds, checking one chunk per document and that the
// in-memory vector index agrees with the store.
std::map<std::string, std::string> contents(const Index& index) {
    std::map<std::string, std::string> out;
    REQUIRE(index.for_each_document([&](const DocumentRecord& record) {
                     auto chunks = index.chunks_of(record.key);
                     REQUIRE(chunks.ok());
                     REQUIRE(chunks->size() == 1);
                     out[record.key] = chunks->front().text;
                     return true;
                 }).ok());
    IndexStats stats = index.stats();
    CHECK(stats.documents == out.size());
    CHECK(stats.chunks == out.size());
    CHECK(stats.vectors == out.size());
    return out;
}

std::set<std::string> readable_by(const Index& index, const std::string& text, const Reader& who) {
    Query query;
    query.text = text;
    query.mode = QueryMode::kLexical;
    auto hits = index.query(query, who);
    REQUIRE(hits.ok());
    std::set<std::string> keys;
    for (const auto& hit : *hits) {
        keys.insert(hit.chunk.doc_key);
    }
    return keys;
}

}  // namespace

TEST_CASE("sync applies inserts, updates and deletes with the checkpoint") {
    TempDir dir("sync-basic");
    auto shared = std::make_shared<MemoryFeed::Shared>();
    for (int i = 0; i < 10; ++i) {
        append(*shared, upsert(numbered("k", i), numbered("first text ", i)));
    }
    append(*shared, upsert("k3", "third, edited"));
    append(*shared, delete_of("k4"));
    append(*shared, delete_of("never-existed"));
    auto index = open_index(dir);
    SyncOptions options;
    options.max_batch = 4;  // several batches, each with its own checkpoint
    auto sync = open_sync(index, shared, options);
    auto result = sync->run_to_caught_up();
    REQUIRE_MESSAGE(result.ok(), result.status().to_string());
    CHECK(result->caught_up);

    auto held = contents(*index);
    CHECK(held.size() == 9);
    CHECK(held.at("k3") == "third, edited");
    CHECK(held.count("k4") == 0);
    auto stored = index->meta(SourceSync::checkpoint_meta_name("src"));
    REQUIRE(stored.ok());
    CHECK(stored->value_or("") == "13");
    CHECK(shared->acknowledged == 13);
    SyncStatus status = sync->status();
    CHECK(status.state == SyncState::kCaughtUp);
    CHECK(status.documents == 9);
    CHECK(status.lag_seconds == 0);
    CHECK_FALSE(status.initial);
    CHECK(status.batches == 4);
}

TEST_CASE("sync collapses a batch to the last event of each key") {
    TempDir dir("sync-collapse");
    auto shared = std::make_shared<MemoryFeed::Shared>();
    append(*shared, upsert("a", "one"));
    append(*shared, delete_of("a"));
    append(*shared, upsert("a", "three"));
    append(*shared, upsert("b", "kept"));
    append(*shared, delete_of("b"));
    auto index = open_index(dir);
    auto sync = open_sync(index, shared);
    REQUIRE(sync->run_to_caught_up().ok());
    auto held = contents(*index);
    CHECK(held == std::map<std::string, std::string>{{"a", "three"}});
}

TEST_CASE("a crash between the write and the acknowledgement applies nothing twice") {
    TempDir dir("sync-crash-ack");
    auto shared = std::make_shared<MemoryFeed::Shared>();
    for (int i = 0; i < 6; ++i) {
        append(*shared, upsert(numbered("k", i), numbered("text ", i)));
    }
    append(*shared, delete_of("k1"));
    std::map<std::string, std::string> before;
    {
        auto index = open_index(dir);
        shared->fail_acknowledge = true;  // the process "dies" before the source hears of it
        auto sync = open_sync(index, shared);
        REQUIRE(sync->step().ok());
        before = contents(*index);
    }
    CHECK(shared->acknowledgements == 0);
    CHECK(before.size() == 5);
    shared->fail_acknowledge = false;

    SUBCASE("the stored checkpoint is polled from: nothing is redelivered") {
        auto index = open_index(dir);
        auto sync = open_sync(index, shared);
        std::size_t polled = shared->polled_changes;
        REQUIRE(sync->run_to_caught_up().ok());
        CHECK(shared->polled_changes == polled);
        CHECK(contents(*index) == before);
        // The acknowledgement that was lost is sent again with the next write.
        append(*shared, upsert("k9", "late"));
        REQUIRE(sync->run_to_caught_up().ok());
        CHECK(shared->acknowledged == 8);
    }
    SUBCASE("a source that redelivers from its last acknowledgement converges") {
        shared->redeliver_unacknowledged = true;
        auto index = open_index(dir);
        std::uint64_t sequence = index->stats().sequence;
        auto sync = open_sync(index, shared);
        auto result = sync->run_to_caught_up();
        REQUIRE(result.ok());
        CHECK(shared->polled_changes > 6);  // the batch did come again
        CHECK(contents(*index) == before);  // ... and changed nothing
        // The redelivered upserts were unchanged and the delete found nothing: one write, the
        // checkpoint's, and no chunk was added or removed.
        CHECK(index->stats().sequence == sequence + 1);
    }
}

TEST_CASE("a failed apply stores neither the changes nor the checkpoint") {
    TempDir dir("sync-failed-apply");
    auto shared = std::make_shared<MemoryFeed::Shared>();
    append(*shared, upsert("good", "fine"));
    FeedChange bad = upsert("bad", "wrong vector");
    bad.document.vector = {1.0F, 2.0F};  // the index has 64 dimensions
    append(*shared, bad);
    auto index = open_index(dir);
    auto sync = open_sync(index, shared);
    auto result = sync->step();
    REQUIRE_FALSE(result.ok());
    CHECK(result.status().code() == StatusCode::kInvalidArgument);
    CHECK(contents(*index).empty());
    auto stored = index->meta(SourceSync::checkpoint_meta_name("src"));
    REQUIRE(stored.ok());
    CHECK_FALSE(stored->has_value());
    CHECK(shared->acknowledgements == 0);
}

namespace {

// The index's own embedder, failing on any text with "poison" in it while `poisoned` is set (an
// embedding service that refuses a document until it is fixed).
class PoisonableEmbedder final : public Embedder {
public:
    PoisonableEmbedder(std::size_t dimension, std::shared_ptr<std::atomic<bool>> poisoned)
        : inner_(dimension), poisoned_(std::move(poisoned)) {}
    std::string id() const override { return inner_.id(); }
    std::size_t dimension() const override { return inner_.dimension(); }
    Result<std::vector<Vector>> embed(const std::vector<std::string>& texts) const override {
        for (const auto& text : texts) {
            if (*poisoned_ && text.find("poison") != std::string::npos) {
                return Status(StatusCode::kUnavailable, "embedder refused a poisoned text");
            }
        }
        return inner_.embed(texts);
    }

private:
    LexicalHashEmbedder inner_;
    std::shared_ptr<std::atomic<bool>> poisoned_;
};

IndexDeps poisonable_deps(std::shared_ptr<std::atomic<bool>> poisoned) {
    IndexDeps deps;
    deps.embedders = [poisoned](const IndexSettings& s) -> Result<std::shared_ptr<const Embedder>> {
        return std::shared_ptr<const Embedder>(std::make_shared<PoisonableEmbedder>(s.dimension,
                                                                                    poisoned));
    };
    return deps;
}

}  // namespace

TEST_CASE("a failed embedding of the next batch keeps the batch before it and nothing after") {
    TempDir dir("sync-pipeline-failure");
    auto shared = std::make_shared<MemoryFeed::Shared>();
    for (int i = 0; i < 30; ++i) {
        append(*shared, upsert(numbered("k", i),
                               numbered("text ", i) + (i == 15 ? " poison" : "")));
    }
    auto poisoned = std::make_shared<std::atomic<bool>>(true);
    const auto path = dir.path() / "synced";
    SyncOptions options;
    options.max_batch = 10;  // batches 0-9, 10-19 (the poisoned one), 20-29
    options.pipeline_depth = 2;
    {
        auto created = Index::create(path, settings(), poisonable_deps(poisoned));
        REQUIRE_MESSAGE(created.ok(), created.status().to_string());
        std::shared_ptr<Index> index = std::move(created).value();
        auto sync = open_sync(index, shared, options);
        auto result = sync->run_to_caught_up();
        REQUIRE_FALSE(result.ok());
        CHECK(result.status().code() == StatusCode::kUnavailable);
        CHECK(result.status().message().find("poisoned") != std::string::npos);
        // All three batches were polled before the first commit: the next ones were in the
        // pipeline while batch 0 was written.
        CHECK(shared->polled_changes == 30);
        // Batch 0 is committed with its checkpoint; nothing of batch 1, nor of batch 2 (whose
        // preparation succeeded), is.
        auto held = contents(*index);
        CHECK(held.size() == 10);
        CHECK(held.begin()->first == "k0");
        CHECK(held.rbegin()->first == "k9");
        auto stored = index->meta(SourceSync::checkpoint_meta_name("src"));
        REQUIRE(stored.ok());
        CHECK(stored->value_or("") == "10");
        CHECK(shared->acknowledged == 10);
        SyncStatus status = sync->status();
        CHECK(status.batches == 1);
        CHECK(status.changes == 10);
        CHECK(status.state == SyncState::kRetrying);
        CHECK(status.last_error.find("poisoned") != std::string::npos);
    }

    // The embedder is fixed; a restart resumes from the stored checkpoint, exactly once.
    *poisoned = false;
    auto reopened = Index::open(path, poisonable_deps(poisoned));
    REQUIRE_MESSAGE(reopened.ok(), reopened.status().to_string());
    std::shared_ptr<Index> index = std::move(reopened).value();
    auto sync = open_sync(index, shared, options);
    auto result = sync->run_to_caught_up();
    REQUIRE_MESSAGE(result.ok(), result.status().to_string());
    CHECK(result->caught_up);
    CHECK(result->changes == 20);
    CHECK(shared->polled_changes == 30 + 20);  // batch 0 was not delivered again
    auto held = contents(*index);
    REQUIRE(held.size() == 30);
    for (int i = 0; i < 30; ++i) {
        CHECK(held.at(numbered("k", i)) ==
              numbered("text ", i) + (i == 15 ? " poison" : ""));
    }
    CHECK(shared->acknowledged == 30);
    CHECK(sync->status().upserts == 20);
}

TEST_CASE("pipelined and serial sync reach the same index when batches revisit keys") {
    // Adjacent batches edit, delete and restore the same keys: a batch prepared while the one
    // before it commits sees the store before that commit.
    auto log = std::make_shared<MemoryFeed::Shared>();
    for (int round = 0; round < 6; ++round) {
        for (int i = 0; i < 5; ++i) {
            const std::string key = numbered("k", i);
            if ((round + i) % 3 == 1) {
                append(*log, delete_of(key));
            } else {
                append(*log, upsert(key, (round + i) % 2 == 0 ? "even text" : "odd text"));
            }
        }
    }
    // The last event of each key is its state.
    std::map<std::string, std::string> expected;
    for (const auto& entry : log->log) {
        if (entry.change.op == FeedOp::kDelete) {
            expected.erase(entry.change.document.key);
        } else {
            expected[entry.change.document.key] = entry.change.document.text;
        }
    }
    REQUIRE_FALSE(expected.empty());
    for (std::size_t depth : {std::size_t{0}, std::size_t{1}, std::size_t{3}}) {
        CAPTURE(depth);
        TempDir dir("sync-pipeline-revisit");
        auto shared = std::make_shared<MemoryFeed::Shared>();
        shared->log = log->log;
        auto index = open_index(dir);
        SyncOptions options;
        options.max_batch = 5;
        options.pipeline_depth = depth;
        auto sync = open_sync(index, shared, options);
        REQUIRE(sync->run_to_caught_up().ok());
        CHECK(contents(*index) == expected);
        CHECK(sync->status().batches == 6);
    }
}

TEST_CASE("key updates and acl changes propagate") {
    TempDir dir("sync-acl");
    auto shared = std::make_shared<MemoryFeed::Shared>();
    append(*shared, upsert("Track/1", "harbour lights", "staff"));
    auto index = open_index(dir);
    auto sync = open_sync(index, shared);
    REQUIRE(sync->run_to_caught_up().ok());
    const Reader staff{"ann", {"staff"}};
    const Reader guest{"bob", {"guests"}};
    CHECK(readable_by(*index, "harbour", staff) == std::set<std::string>{"Track/1"});
    CHECK(readable_by(*index, "harbour", guest).empty());

    // The acl moves from staff to guests.
    append(*shared, upsert("Track/1", "harbour lights", "guests"));
    REQUIRE(sync->run_to_caught_up().ok());
    CHECK(readable_by(*index, "harbour", staff).empty());
    CHECK(readable_by(*index, "harbour", guest) == std::set<std::string>{"Track/1"});

    // An update of the key is a delete of the old key and an upsert of the new one.
    append(*shared, delete_of("Track/1"));
    append(*shared, upsert("Track/7", "harbour lights", "guests"));
    REQUIRE(sync->run_to_caught_up().ok());
    CHECK(readable_by(*index, "harbour", guest) == std::set<std::string>{"Track/7"});
    CHECK(contents(*index).size() == 1);
}

TEST_CASE("error records: skip goes on, pause stops at the record until it is fixed") {
    TempDir dir("sync-errors");
    auto shared = std::make_shared<MemoryFeed::Shared>();
    append(*shared, upsert("a", "alpha"));
    append_error(*shared, "broken.pdf");
    append(*shared, upsert("b", "beta"));

    SUBCASE("skip") {
        auto index = open_index(dir);
        auto sync = open_sync(index, shared);
        auto result = sync->run_to_caught_up();
        REQUIRE(result.ok());
        CHECK(result->errors == 1);
        CHECK(contents(*index).size() == 2);
        SyncStatus status = sync->status();
        CHECK(status.error_records == 1);
        REQUIRE(status.recent_errors.size() == 1);
        CHECK(status.recent_errors[0].key == "broken.pdf");
        CHECK(status.last_error.find("broken.pdf") != std::string::npos);
        // The error records survive a restart beside the checkpoint.
        sync.reset();
        auto reopened = open_sync(index, shared);
        REQUIRE(reopened->status().recent_errors.size() == 1);
        CHECK(reopened->status().recent_errors[0].message == "does not parse");
    }
    SUBCASE("pause") {
        shared->pause_on_error = true;
        auto index = open_index(dir);
        auto sync = open_sync(index, shared);
        auto result = sync->run_to_caught_up();
        REQUIRE(result.ok());
        CHECK(result->paused);
        CHECK(sync->status().state == SyncState::kPaused);
        CHECK(contents(*index) == std::map<std::string, std::string>{{"a", "alpha"}});
        // Polling again reports the same record once, not once per poll.
        REQUIRE(sync->run_to_caught_up().ok());
        CHECK(sync->status().error_records == 1);
        // Someone fixes the source: the entry becomes a document.
        {
            std::lock_guard lock(shared->mutex);
            shared->log[1] = {upsert("broken.pdf", "repaired"), std::nullopt};
        }
        result = sync->run_to_caught_up();
        REQUIRE(result.ok());
        CHECK(result->caught_up);
        CHECK(contents(*index).size() == 3);
    }
}

TEST_CASE("a document whose metadata the index refuses is an error record, not a stuck sync") {
    TempDir dir("sync-metadata");
    auto shared = std::make_shared<MemoryFeed::Shared>();
    append(*shared, upsert("a", "alpha"));
    FeedChange spoof = upsert("spoof", "spoofed");
    spoof.document.metadata["doc_key"] = std::string("a");
    spoof.offset = "seq:spoof";
    append(*shared, spoof);
    append(*shared, upsert("b", "beta"));
    auto index = open_index(dir);
    auto sync = open_sync(index, shared);
    auto result = sync->run_to_caught_up();
    REQUIRE_MESSAGE(result.ok(), result.status().to_string());
    CHECK(result->caught_up);
    CHECK(result->errors == 1);
    CHECK(contents(*index) == std::map<std::string, std::string>{{"a", "alpha"}, {"b", "beta"}});
    SyncStatus status = sync->status();
    REQUIRE(status.recent_errors.size() == 1);
    CHECK(status.recent_errors[0].key == "spoof");
    CHECK(status.recent_errors[0].offset == "seq:spoof");
    CHECK(status.recent_errors[0].message.find("metadata field 'doc_key' is reserved") !=
          std::string::npos);
    CHECK(shared->acknowledged == 3);
    // Fixed at the source, the document arrives.
    append(*shared, upsert("spoof", "no longer spoofing"));
    REQUIRE(sync->run_to_caught_up().ok());
    CHECK(contents(*index).at("spoof") == "no longer spoofing");
}

TEST_CASE("a failing poll leaves the index and checkpoint as they were") {
    TempDir dir("sync-poll-fails");
    auto shared = std::make_shared<MemoryFeed::Shared>();
    append(*shared, upsert("a", "alpha"));
    auto index = open_index(dir);
    auto sync = open_sync(index, shared);
    shared->fail_poll = true;
    auto result = sync->run_to_caught_up();
    REQUIRE_FALSE(result.ok());
    CHECK(result.status().code() == StatusCode::kUnavailable);
    CHECK(sync->status().state == SyncState::kRetrying);
    CHECK(sync->status().last_error.find("unreachable") != std::string::npos);
    shared->fail_poll = false;
    REQUIRE(sync->run_to_caught_up().ok());
    CHECK(contents(*index).size() == 1);
    // Recovered: the failure is no longer the source's last error.
    CHECK(sync->status().last_error.empty());
}

TEST_CASE("a source that recovers with nothing new clears its last error, keeping its records") {
    TempDir dir("sync-recovers");
    auto shared = std::make_shared<MemoryFeed::Shared>();
    append(*shared, upsert("a", "alpha"));
    append_error(*shared, "broken.pdf");
    auto index = open_index(dir);
    auto sync = open_sync(index, shared);
    REQUIRE(sync->run_to_caught_up().ok());
    CHECK(sync->status().last_error.find("broken.pdf") != std::string::npos);

    shared->fail_poll = true;
    REQUIRE_FALSE(sync->run_to_caught_up().ok());
    CHECK(sync->status().last_error.find("unreachable") != std::string::npos);
    shared->fail_poll = false;
    REQUIRE(sync->run_to_caught_up().ok());  // caught up already: nothing to apply
    SyncStatus status = sync->status();
    CHECK(status.state == SyncState::kCaughtUp);
    CHECK(status.last_error.empty());
    REQUIRE(status.recent_errors.size() == 1);
    CHECK(status.recent_errors[0].key == "broken.pdf");
    CHECK(status.error_records == 1);
}

TEST_CASE("a feed paused at a record keeps reporting it after a failed step recovers") {
    TempDir dir("sync-paused-recovers");
    auto shared = std::make_shared<MemoryFeed::Shared>();
    shared->pause_on_error = true;
    append(*shared, upsert("a", "alpha"));
    append_error(*shared, "broken.pdf");
    auto index = open_index(dir);
    auto sync = open_sync(index, shared);
    REQUIRE(sync->run_to_caught_up()->paused);
    shared->fail_poll = true;
    REQUIRE_FALSE(sync->run_to_caught_up().ok());
    shared->fail_poll = false;
    REQUIRE(sync->run_to_caught_up()->paused);
    CHECK(sync->status().state == SyncState::kPaused);
    CHECK(sync->status().last_error.find("broken.pdf") != std::string::npos);
}

TEST_CASE("a source created again under the same name starts from its beginning") {
    TempDir dir("sync-incarnation");
    auto shared = std::make_shared<MemoryFeed::Shared>();
    append(*shared, upsert("a", "alpha"));
    append_error(*shared, "broken.pdf");
    append(*shared, upsert("b", "beta"));
    auto index = open_index(dir);
    SyncOptions first;
    first.incarnation = "first";
    {
        auto sync = open_sync(index, shared, first);
        REQUIRE(sync->run_to_caught_up().ok());
        CHECK(sync->status().checkpoint == "3");
    }
    // The same incarnation resumes where it stopped, with its error records.
    {
        auto sync = open_sync(index, shared, first);
        CHECK(sync->status().checkpoint == "3");
        CHECK(sync->status().recent_errors.size() == 1);
        CHECK_FALSE(sync->status().initial);
    }
    // Another source of that name: a new log whose first entries the old checkpoint would skip.
    auto fresh = std::make_shared<MemoryFeed::Shared>();
    append(*fresh, upsert("c", "gamma"));
    SyncOptions second;
    second.incarnation = "second";
    auto sync = open_sync(index, fresh, second);
    SyncStatus status = sync->status();
    // Required: from the old checkpoint the memory feed would never report caught up.
    REQUIRE(status.checkpoint.empty());
    CHECK(status.initial);
    CHECK(status.recent_errors.empty());
    CHECK(status.last_error.empty());
    REQUIRE(sync->run_to_caught_up().ok());
    CHECK(contents(*index).count("c") == 1);  // applied, not skipped
    CHECK(sync->status().checkpoint == "1");
    sync.reset();
    // Nothing of the first incarnation comes back with a later open.
    auto again = open_sync(index, fresh, second);
    CHECK(again->status().checkpoint == "1");
    CHECK(again->status().recent_errors.empty());
}

TEST_CASE("state stored before incarnations were recorded is adopted, not discarded") {
    TempDir dir("sync-incarnation-legacy");
    auto shared = std::make_shared<MemoryFeed::Shared>();
    append(*shared, upsert("a", "alpha"));
    auto index = open_index(dir);
    {
        auto sync = open_sync(index, shared);  // no incarnation, as an older release
        REQUIRE(sync->run_to_caught_up().ok());
    }
    SyncOptions options;
    options.incarnation = "adopting";
    auto sync = open_sync(index, shared, options);
    CHECK(sync->status().checkpoint == "1");
    auto stored = index->meta(SourceSync::incarnation_meta_name("src"));
    REQUIRE(stored.ok());
    CHECK(stored->value_or("") == "adopting");
}

TEST_CASE("continuous sync follows the feed and stops when asked") {
    TempDir dir("sync-continuous");
    auto shared = std::make_shared<MemoryFeed::Shared>();
    append(*shared, upsert("a", "alpha"));
    auto index = open_index(dir);
    SyncOptions options;
    options.idle_wait = 20ms;
    auto feed = std::make_unique<MemoryFeed>(shared);
    MemoryFeed* feed_view = feed.get();
    auto opened = SourceSync::open("src", index, std::move(feed), options);
    REQUIRE(opened.ok());
    auto sync = std::move(opened).value();
    sync->start();
    auto wait_for_documents = [&](std::size_t n) {
        for (int i = 0; i < 500 && index->stats().documents != n; ++i) {
            std::this_thread::sleep_for(10ms);
        }
        return index->stats().documents == n;
    };
    CHECK(wait_for_documents(1));
    for (int i = 0; i < 50; ++i) {
        append(*shared, upsert(numbered("k", i), numbered("text ", i)));
    }
    feed_view->wake();
    CHECK(wait_for_documents(51));
    append(*shared, delete_of("a"));
    CHECK(wait_for_documents(50));
    sync->stop();
    CHECK(sync->status().state == SyncState::kStopped);
    append(*shared, upsert("after-stop", "not applied"));
    std::this_thread::sleep_for(50ms);
    CHECK(index->stats().documents == 50);
}

TEST_CASE("vectors follow the store across snapshots and restarts") {
    TempDir dir("sync-snapshot");
    auto shared = std::make_shared<MemoryFeed::Shared>();
    for (int i = 0; i < 30; ++i) {
        append(*shared, upsert(numbered("k", i), numbered("text ", i)));
    }
    SyncOptions options;
    options.snapshot_every = 1;  // a snapshot each time the sync is caught up
    options.max_batch = 7;
    {
        auto index = open_index(dir);
        auto sync = open_sync(index, shared, options);
        REQUIRE(sync->run_to_caught_up().ok());
        CHECK(index->stats().snapshot_sequence == index->stats().sequence);
        for (int i = 0; i < 10; ++i) {
            append(*shared, delete_of(numbered("k", i)));
        }
        options.snapshot_every = 1000;  // these changes are replayed from the store at open
        auto later = open_sync(index, shared, options);
        REQUIRE(later->run_to_caught_up().ok());
        CHECK(index->stats().snapshot_sequence < index->stats().sequence);
    }
    auto index = open_index(dir);
    CHECK(contents(*index).size() == 20);  // checks vectors == chunks == documents
}

TEST_CASE("an unservable checkpoint re-snapshots: the index converges, deletes included") {
    TempDir dir("sync-resnapshot");
    auto shared = std::make_shared<MemoryFeed::Shared>();
    shared->compacts = true;
    for (int i = 0; i < 20; ++i) {
        append(*shared, upsert(numbered("k", i), numbered("text ", i)));
    }
    auto index = open_index(dir);
    std::vector<std::string> reasons;
    SyncOptions options;
    options.max_batch = 6;
    options.on_resnapshot = [&](const std::string& source, const std::string& reason) {
        CHECK(source == "src");
        reasons.push_back(reason);
    };
    auto sync = open_sync(index, shared, options);
    REQUIRE(sync->run_to_caught_up().ok());
    CHECK(contents(*index).size() == 20);
    CHECK(sync->status().resnapshots == 0);

    // Changes the sync never sees: the source releases them (a dropped slot, pruned change
    // rows) before they are polled. The delete among them is only learnt by the re-snapshot.
    append(*shared, delete_of(numbered("k", 3)));
    append(*shared, upsert(numbered("k", 4), "edited while unseen"));
    append(*shared, upsert("new", "added while unseen"));
    {
        std::lock_guard lock(shared->mutex);
        shared->acknowledged = shared->log.size();
    }
    append(*shared, upsert("after", "streamed after the snapshot"));

    auto result = sync->run_to_caught_up();
    REQUIRE_MESSAGE(result.ok(), result.status().to_string());
    auto held = contents(*index);
    CHECK(held.size() == 21);
    CHECK_FALSE(held.contains(numbered("k", 3)));
    CHECK(held[numbered("k", 4)] == "edited while unseen");
    CHECK(held["new"] == "added while unseen");
    CHECK(held["after"] == "streamed after the snapshot");
    SyncStatus status = sync->status();
    CHECK(status.resnapshots == 1);
    CHECK_FALSE(status.resnapshotting);
    CHECK(status.resnapshot_reason.find("released") != std::string::npos);
    REQUIRE(reasons.size() == 1);
    CHECK(reasons[0].find("released") != std::string::npos);
    // The marker is cleared: a restart resumes streaming, not a re-snapshot.
    auto marker = index->meta(SourceSync::resnapshot_meta_name("src"));
    REQUIRE(marker.ok());
    CHECK(marker->value_or("") == "");
}

TEST_CASE("a re-snapshot cut short by a crash starts again and still deletes what is gone") {
    TempDir dir("sync-resnapshot-crash");
    auto shared = std::make_shared<MemoryFeed::Shared>();
    shared->compacts = true;
    for (int i = 0; i < 20; ++i) {
        append(*shared, upsert(numbered("k", i), numbered("text ", i)));
    }
    SyncOptions options;
    options.max_batch = 5;
    auto index = open_index(dir);
    {
        auto sync = open_sync(index, shared, options);
        REQUIRE(sync->run_to_caught_up().ok());
        for (int i = 0; i < 10; ++i) {
            append(*shared, delete_of(numbered("k", i)));
        }
        std::lock_guard lock(shared->mutex);
        shared->acknowledged = shared->log.size();
    }
    {
        // One step: the re-snapshot starts and applies its first batch, then the process dies.
        auto sync = open_sync(index, shared, options);
        auto step = sync->step();
        REQUIRE_MESSAGE(step.ok(), step.status().to_string());
        CHECK(sync->status().resnapshotting);
        CHECK(contents(*index).size() == 20);  // nothing is deleted before the end
    }
    auto sync = open_sync(index, shared, options);
    CHECK(sync->status().resnapshotting);
    REQUIRE(sync->run_to_caught_up().ok());
    auto held = contents(*index);
    CHECK(held.size() == 10);
    CHECK_FALSE(held.contains(numbered("k", 0)));
    CHECK(held.contains(numbered("k", 19)));
    CHECK_FALSE(sync->status().resnapshotting);
}

TEST_CASE("a re-snapshot deletes only the documents the sync owns") {
    TempDir dir("sync-resnapshot-owns");
    auto shared = std::make_shared<MemoryFeed::Shared>();
    shared->compacts = true;
    append(*shared, upsert("mine-1", "one"));
    append(*shared, upsert("mine-2", "two"));
    auto index = open_index(dir);
    IndexWrite other;
    Document theirs;
    theirs.key = "theirs";
    theirs.uri = "mem://theirs";
    theirs.text = "from another source";
    theirs.acl = group_acl("staff");
    other.upserts.push_back(theirs);
    REQUIRE(index->apply(other).ok());
    SyncOptions options;
    options.owns = [](const DocumentRecord& record) { return record.key.rfind("mine-", 0) == 0; };
    auto sync = open_sync(index, shared, options);
    REQUIRE(sync->run_to_caught_up().ok());
    append(*shared, delete_of("mine-1"));
    {
        std::lock_guard lock(shared->mutex);
        shared->acknowledged = shared->log.size();
    }
    REQUIRE(sync->run_to_caught_up().ok());
    auto held = contents(*index);
    CHECK(held == std::map<std::string, std::string>{{"mine-2", "two"},
                                                     {"theirs", "from another source"}});
}

TEST_CASE("error records round-trip through their stored form") {
    std::vector<FeedError> errors = {{"a\tb", "line one\nline two \\ end", "seq:1"},
                                     {"", "", ""}};
    auto decoded = decode_feed_errors(encode_feed_errors(errors));
    REQUIRE(decoded.size() == 2);
    CHECK(decoded[0].key == "a\tb");
    CHECK(decoded[0].message == "line one\nline two \\ end");
    CHECK(decoded[0].offset == "seq:1");
    CHECK(decoded[1].key.empty());
}
