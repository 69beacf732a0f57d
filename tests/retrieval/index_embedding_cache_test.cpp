// The embedding cache of an index: pruned of what no chunk references, never of what one does.
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "common/log.h"
#include "index_fixture.h"
#include "retrieval/chunk_store.h"
#include "retrieval/index.h"
#include "retrieval/text_analyzer.h"
#include "temp_dir.h"

using namespace sluice::retrieval;
using sluice::StatusCode;
using namespace sluice::retrieval::testing;

namespace {

// Opens the index at `path` with its vector snapshot removed, so that every vector comes back
// through the embedding cache; a missing vector would be logged, so nothing may be.
std::unique_ptr<Index> reopen_from_store_alone(const std::filesystem::path& path) {
    std::filesystem::remove(path / "vectors.snap");
    auto sink = std::make_shared<CaptureSink>();
    sluice::log::set_sink(sink, sluice::log::Level::kWarn);
    auto reopened = Index::open(path, IndexDeps{});
    sluice::log::set_sink(nullptr, sluice::log::Level::kWarn);
    REQUIRE_MESSAGE(reopened.ok(), reopened.status().to_string());
    CHECK(sink->lines.empty());
    return std::move(reopened).value();
}

}  // namespace

TEST_CASE("the embedding cache drops what no chunk references, and never what one does") {
    TempDir dir("index-prune");
    IndexSettings settings = small_settings("Flat");
    settings.chunking = false;
    auto text = [](const char* what, int i) { return numbered(what, i) + " about rivers"; };
    {
        auto index = create(dir, settings);
        std::vector<Document> docs;
        for (int i = 0; i < 40; ++i) {
            docs.push_back(doc(numbered("k", i), text("first ", i), everyone()));
        }
        REQUIRE(index->upsert(docs).ok());
        // 30 updated (their old vectors unreferenced), 5 deleted: 35 of 70 entries live.
        std::vector<Document> updates;
        for (int i = 0; i < 30; ++i) {
            updates.push_back(doc(numbered("k", i), text("second ", i), everyone()));
        }
        REQUIRE(index->upsert(updates).ok());
        REQUIRE(index->remove({"k30", "k31", "k32", "k33", "k34"}).ok());

        // A write prepared now finds an old text's vector in the cache; a prune before its
        // commit deletes that entry, and the commit must store the vector again.
        IndexWrite late;
        late.upserts.push_back(doc("late", text("first ", 0), everyone()));
        late.upserts.back().title = "doc k0";  // the cache key covers the title too
        auto prepared = index->prepare(late);
        REQUIRE(prepared.ok());
        auto pruned = index->prune_embedding_cache();
        REQUIRE_MESSAGE(pruned.ok(), pruned.status().to_string());
        CHECK(*pruned == 35);
        auto committed = index->commit(std::move(prepared).value());
        REQUIRE(committed.ok());
        CHECK(committed->upserts.embedding_cache_hits == 1);
        CHECK(committed->upserts.embedded == 0);
        // Nothing left to drop: every entry is referenced, the late one included.
        pruned = index->prune_embedding_cache();
        REQUIRE(pruned.ok());
        CHECK(*pruned == 0);
    }
    // Without a snapshot every vector comes back from the cache: none went missing.
    auto reopened = reopen_from_store_alone(dir.path() / "test");
    CHECK(reopened->stats().chunks == 36);
    CHECK(reopened->stats().vectors == 36);
    auto hits = run(*reopened, text("second ", 7), QueryMode::kAnn, kUser, 1);
    REQUIRE(hits.size() == 1);
    CHECK(hits[0].chunk.doc_key == "k7");
    hits = run(*reopened, text("first ", 0), QueryMode::kAnn, kUser, 1);
    REQUIRE(hits.size() == 1);
    CHECK(hits[0].chunk.doc_key == "late");
}

TEST_CASE("a snapshot prunes the embedding cache once enough chunks were removed") {
    TempDir dir("index-prune-snapshot");
    IndexSettings settings = small_settings("Flat");
    settings.chunking = false;
    auto index = create(dir, settings);
    auto write_all = [&](int n, const char* version) {
        std::vector<Document> docs;
        for (int i = 0; i < n; ++i) {
            docs.push_back(doc(numbered("k", i), numbered(version, i) + " on lakes", everyone()));
        }
        REQUIRE(index->upsert(docs).ok());
    };
    // 10 removed chunks: below the threshold, the snapshot leaves the cache alone.
    write_all(10, "one ");
    write_all(10, "two ");
    REQUIRE(index->snapshot().ok());
    auto pruned = index->prune_embedding_cache();
    REQUIRE(pruned.ok());
    CHECK(*pruned == 10);
    // 1,200 removed of 1,200 live: the snapshot prunes, and nothing is left to prune after it.
    write_all(1200, "three ");
    write_all(1200, "four ");
    REQUIRE(index->snapshot().ok());
    pruned = index->prune_embedding_cache();
    REQUIRE(pruned.ok());
    CHECK(*pruned == 0);
    CHECK(index->stats().vectors == 1200);
}

TEST_CASE("prunes running beside commits never delete a vector a chunk references") {
    TempDir dir("index-prune-race");
    IndexSettings settings = small_settings("Flat");
    settings.chunking = false;
    const int writers = 2;
    const int rounds = 100;
    const int base = 3000;  // documents that stay, so that a prune's scans take a while
    {
        auto index = create(dir, settings);
        std::vector<Document> kept;
        for (int i = 0; i < base; ++i) {
            kept.push_back(doc(numbered("b", i), numbered("base text ", i), everyone()));
        }
        REQUIRE(index->upsert(kept).ok());
        std::atomic<bool> writing{true};
        std::atomic<int> prunes{0};
        std::vector<std::thread> threads;
        for (int w = 0; w < writers; ++w) {
            threads.emplace_back([&, w] {
                for (int round = 0; round < rounds; ++round) {
                    // Each round rewrites the writer's ten documents with new text (fresh
                    // vectors, the old ones unreferenced), and every other round brings back
                    // the text of two rounds before (a cache hit on an unreferenced entry).
                    const int version = round % 2 == 0 ? round : round - 1;
                    std::vector<Document> docs;
                    for (int i = 0; i < 10; ++i) {
                        docs.push_back(doc(
                            numbered("w", w) + numbered("-", i),
                            numbered("text ", version) + numbered(" of ", i) + numbered(" by ", w),
                            everyone()));
                    }
                    REQUIRE(index->upsert(docs).ok());
                }
            });
        }
        threads.emplace_back([&] {
            while (writing) {
                REQUIRE(index->prune_embedding_cache().ok());
                ++prunes;
            }
        });
        for (int w = 0; w < writers; ++w) {
            threads[static_cast<std::size_t>(w)].join();
        }
        writing = false;
        threads.back().join();
        CHECK(prunes > 0);
    }
    // Reopened from the store alone, every live chunk finds its vector.
    auto reopened = reopen_from_store_alone(dir.path() / "test");
    CHECK(reopened->stats().chunks == static_cast<std::size_t>(base + writers * 10));
    CHECK(reopened->stats().vectors == static_cast<std::size_t>(base + writers * 10));
}
