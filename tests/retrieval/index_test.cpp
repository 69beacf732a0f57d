#include "retrieval/index.h"

#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "common/log.h"
#include "index_fixture.h"
#include "retrieval/chunk_store.h"
#include "retrieval/text_analyzer.h"
#include "temp_dir.h"

using namespace sluice::retrieval;
using sluice::StatusCode;
using namespace sluice::retrieval::testing;

TEST_CASE("upsert, query in every mode, update and delete") {
    TempDir dir("index-basic");
    auto index = create(dir, small_settings());
    auto stats =
        index->upsert({doc("a", "Penguins live in Antarctica and eat krill.", everyone()),
                       doc("b", "Volcanoes erupt molten lava and ash.", everyone()),
                       doc("c", "Krill are small crustaceans in cold oceans.", everyone())});
    REQUIRE(stats.ok());
    CHECK(stats->documents == 3);
    CHECK(stats->chunks_added == 3);
    CHECK(stats->embedded == 3);
    for (auto mode : {QueryMode::kLexical, QueryMode::kAnn, QueryMode::kHybrid}) {
        CAPTURE(query_mode_name(mode));
        auto hits = run(*index, "krill in antarctica", mode, kUser);
        REQUIRE(!hits.empty());
        CHECK(hits[0].chunk.doc_key == "a");
        CHECK(hits[0].chunk.text == "Penguins live in Antarctica and eat krill.");
        CHECK(hits[0].chunk.uri == "mem://a");
    }
    // Update replaces the chunks of "a".
    REQUIRE(index->upsert({doc("a", "Deserts are dry and hot.", everyone())}).ok());
    auto hits = run(*index, "penguins", QueryMode::kLexical, kUser);
    CHECK(hits.empty());
    CHECK(run(*index, "deserts", QueryMode::kLexical, kUser).size() == 1);
    // Delete: gone from every mode the moment remove() returns.
    auto removed = index->remove({"c", "missing"});
    REQUIRE(removed.ok());
    CHECK(*removed == 1);
    for (auto mode : {QueryMode::kLexical, QueryMode::kAnn, QueryMode::kHybrid}) {
        CHECK(keys_of(run(*index, "krill crustaceans", mode, kUser)).count("c") == 0);
    }
    auto index_stats = index->stats();
    CHECK(index_stats.documents == 2);
    CHECK(index_stats.chunks == 2);
    CHECK(index_stats.vectors == 2);
}

TEST_CASE("bad queries and bad documents are refused") {
    TempDir dir("index-bad");
    auto index = create(dir, small_settings());
    Query query;
    query.k = 0;
    query.text = "x";
    CHECK(index->query(query, kUser).status().code() == StatusCode::kInvalidArgument);
    query.k = 5;
    query.text.clear();
    query.mode = QueryMode::kLexical;
    CHECK(index->query(query, kUser).status().code() == StatusCode::kInvalidArgument);
    CHECK(index->upsert({doc("", "text", everyone())}).status().code() ==
          StatusCode::kInvalidArgument);
    Document wrong = doc("v", "short", everyone());
    wrong.vector = {1.0f, 2.0f};
    CHECK(index->upsert({wrong}).status().code() == StatusCode::kInvalidArgument);
    CHECK(index->stats().documents == 0);
}

TEST_CASE("a key, text, title, uri or metadata value that is not UTF-8 is refused") {
    TempDir dir("index-utf8");
    auto index = create(dir, small_settings());
    auto refused = [&](const Document& document) {
        const sluice::Status status = index->upsert({document}).status();
        return status.code() == StatusCode::kInvalidArgument &&
               status.message().find("not valid UTF-8") != std::string::npos &&
               status.message().find('\xff') == std::string::npos;
    };
    CHECK(refused(doc("bad\xff", "text", everyone())));
    CHECK(refused(doc("k", "caf\xe9 au lait", everyone())));
    Document titled = doc("k", "text", everyone());
    titled.title = "t\xff";
    CHECK(refused(titled));
    Document located = doc("k", "text", everyone());
    located.uri = "file:///\xff";
    CHECK(refused(located));
    CHECK(refused(doc("k", "text", everyone(), {{"path", std::string("a\xff.txt")}})));
    CHECK(index->stats().documents == 0);
    REQUIRE(index->upsert({doc("k", "caf\u00e9 au lait \ufffd", everyone())}).ok());
    CHECK(index->stats().documents == 1);
}

TEST_CASE("metadata may not take the names of built-in fields, nor names no filter can name") {
    TempDir dir("index-metadata-names");
    auto index = create(dir, small_settings());
    REQUIRE(index->upsert({doc("victim", "the victim's text", everyone())}).ok());
    // The report: a row "spoof" with metadata doc_key "victim" replaced the built-in field, so
    // {"doc_key": "victim"} found both rows and {"doc_key": "spoof"} none.
    auto spoof = doc("spoof", "the spoof's text", everyone(), {{"doc_key", std::string("victim")}});
    auto refused = index->upsert({doc("fine", "a fine row", everyone()), spoof});
    CHECK(refused.status().code() == StatusCode::kInvalidArgument);
    CHECK(refused.status().message() ==
          "document 'spoof': metadata field 'doc_key' is reserved: filters name the document's "
          "key by it");
    CHECK(index->stats().documents == 1);  // the whole write is refused
    CHECK(keys_of(run(*index, "text", QueryMode::kLexical, kUser, 10,
                      Filter::equals("doc_key", std::string("victim")))) ==
          std::set<std::string>{"victim"});

    // Built-in filter fields, result columns, then names no filter or JSON can carry.
    const std::vector<std::string> names = {
        "doc_key",      "uri",        "title",    "id",    "chunk_id", "text",
        "section_path", "char_begin", "char_end", "score", "",         "bad\xff"};
    for (const auto& name : names) {
        CAPTURE(name);
        auto status = index->upsert({doc("k", "text", everyone(), {{name, 1.0}})}).status();
        CHECK(status.code() == StatusCode::kInvalidArgument);
        if (name.find('\xff') == std::string::npos && !name.empty()) {
            CHECK(status.message().find("metadata field '" + name + "'") != std::string::npos);
        }
    }
    CHECK(index->stats().documents == 1);

    // Allowed: the document's own title and uri again (the file connectors put the title
    // there), names that differ only in case, and any other name a filter can name.
    Document repeats = doc("repeats", "its title twice", everyone());
    repeats.metadata = {{"title", repeats.title}, {"uri", repeats.uri}};
    REQUIRE(index->upsert({repeats}).ok());
    Document other_title = repeats;
    other_title.metadata["title"] = std::string("not its title");
    const sluice::Status other = index->upsert({other_title}).status();
    CHECK(other.message().find("metadata field 'title' is reserved") != std::string::npos);
    const Metadata allowed = {{"Doc_Key", std::string("x")},    {"year", 2024.0},
                              {"na\u00efve", std::string("y")}, {"a.b-c_d", std::string("z")},
                              {"ID", std::string("w")},         {"source", std::string("files")}};
    REQUIRE(index->upsert({doc("allowed", "all kinds of names", everyone(), allowed)}).ok());
    for (const auto& [name, value] : allowed) {
        CAPTURE(name);
        CHECK(keys_of(run(*index, "names", QueryMode::kLexical, kUser, 10,
                          Filter::equals(name, value))) == std::set<std::string>{"allowed"});
    }
    CHECK(keys_of(run(*index, "title", QueryMode::kLexical, kUser, 10,
                      Filter::equals("title", std::string("doc repeats")))) ==
          std::set<std::string>{"repeats"});
}

TEST_CASE("unchanged documents are skipped and unchanged text is not embedded again") {
    TempDir dir("index-cache");
    auto index = create(dir, small_settings());
    auto first = index->upsert({doc("a", "Some text about rivers.", everyone())});
    REQUIRE(first.ok());
    CHECK(first->embedded == 1);
    auto same = index->upsert({doc("a", "Some text about rivers.", everyone())});
    REQUIRE(same.ok());
    CHECK(same->unchanged == 1);
    CHECK(same->chunks_added == 0);
    auto relabelled = index->upsert(
        {doc("a", "Some text about rivers.", everyone(), Metadata{{"tag", std::string("x")}})});
    REQUIRE(relabelled.ok());
    CHECK(relabelled->documents == 1);
    CHECK(relabelled->embedded == 0);
    CHECK(relabelled->embedding_cache_hits == 1);
    CHECK(run(*index, "rivers", QueryMode::kLexical, kUser, 10,
              Filter::equals("tag", std::string("x")))
              .size() == 1);
}

TEST_CASE("integer metadata stays an integer; floats stored before load, filter and give way") {
    TempDir dir("index-integers");
    const Reader reader = kUser;
    auto year_of = [&](const Index& index, const std::string& key) {
        for (const auto& hit : run(index, "rivers", QueryMode::kLexical, reader)) {
            if (hit.chunk.doc_key == key) {
                return hit.chunk.metadata.at("year");
            }
        }
        FAIL("no hit for ", key);
        return MetaValue();
    };
    {
        auto index = create(dir, small_settings());
        // "old" holds what every earlier build stored for {"year": 2020}: a float.
        REQUIRE(index
                    ->upsert(
                        {doc("old", "Rivers of the north.", everyone(), Metadata{{"year", 2020.0}}),
                         doc("new", "Rivers of the south.", everyone(),
                             Metadata{{"year", std::int64_t{2021}}})})
                    .ok());
    }
    auto reopened = Index::open(dir.path() / "test", IndexDeps{});
    REQUIRE_MESSAGE(reopened.ok(), reopened.status().to_string());
    auto& index = **reopened;
    CHECK(year_of(index, "old") == MetaValue(2020.0));
    CHECK(year_of(index, "new") == MetaValue(std::int64_t{2021}));
    // Integer filters find floats and the other way round.
    auto keys = [&](const Filter& filter) {
        return keys_of(run(index, "rivers", QueryMode::kLexical, reader, 10, filter));
    };
    CHECK(keys(Filter::range("year", std::int64_t{2019}, true, std::nullopt, true)) ==
          std::set<std::string>{"old", "new"});
    CHECK(keys(Filter::equals("year", std::int64_t{2020})) == std::set<std::string>{"old"});
    CHECK(keys(Filter::equals("year", 2021.0)) == std::set<std::string>{"new"});
    // The same row upserted again with an integer is written again, not skipped as unchanged.
    auto again = index.upsert(
        {doc("old", "Rivers of the north.", everyone(), Metadata{{"year", std::int64_t{2020}}})});
    REQUIRE(again.ok());
    CHECK(again->unchanged == 0);
    CHECK(year_of(index, "old") == MetaValue(std::int64_t{2020}));
    auto same = index.upsert(
        {doc("old", "Rivers of the north.", everyone(), Metadata{{"year", std::int64_t{2020}}})});
    REQUIRE(same.ok());
    CHECK(same->unchanged == 1);
    // Numbers that printed alike (%g: 1.23457e+06) are different values: the update lands.
    for (const auto& [before, after] :
         {std::pair{MetaValue(1234567.0), MetaValue(1234568.0)},
          std::pair{MetaValue(std::int64_t{12345678901}), MetaValue(std::int64_t{12345678902})}}) {
        REQUIRE(index
                    .upsert({doc("old", "Rivers of the north.", everyone(),
                                 Metadata{{"year", before}})})
                    .ok());
        auto changed = index.upsert(
            {doc("old", "Rivers of the north.", everyone(), Metadata{{"year", after}})});
        REQUIRE(changed.ok());
        CHECK(changed->unchanged == 0);
        CHECK(year_of(index, "old") == after);
    }
}

TEST_CASE("boolean metadata stays a boolean through a reopen; 1.0 stored before stays a number") {
    TempDir dir("index-booleans");
    const Reader reader = kUser;
    auto value_of = [&](const Index& index, const std::string& key, const std::string& field) {
        for (const auto& hit : run(index, "rivers", QueryMode::kLexical, reader)) {
            if (hit.chunk.doc_key == key) {
                return hit.chunk.metadata.at(field);
            }
        }
        FAIL("no hit for ", key);
        return MetaValue();
    };
    {
        auto index = create(dir, small_settings());
        // "old" holds what earlier builds stored for {"published": true}: the float 1.0.
        REQUIRE(
            index
                ->upsert(
                    {doc("old", "Rivers of the north.", everyone(), Metadata{{"published", 1.0}}),
                     doc("yes", "Rivers of the south.", everyone(), Metadata{{"published", true}}),
                     doc("no", "Rivers of the west.", everyone(), Metadata{{"published", false}})})
                .ok());
    }
    auto reopened = Index::open(dir.path() / "test", IndexDeps{});
    REQUIRE_MESSAGE(reopened.ok(), reopened.status().to_string());
    auto& index = **reopened;
    CHECK(value_of(index, "yes", "published") == MetaValue(true));
    CHECK(value_of(index, "no", "published") == MetaValue(false));
    CHECK(value_of(index, "old", "published") == MetaValue(1.0));
    // The posting lists rebuilt at open hold the booleans apart from the numbers.
    auto keys = [&](const Filter& filter) {
        return keys_of(run(index, "rivers", QueryMode::kLexical, reader, 10, filter));
    };
    CHECK(keys(Filter::equals("published", true)) == std::set<std::string>{"yes"});
    CHECK(keys(Filter::equals("published", false)) == std::set<std::string>{"no"});
    CHECK(keys(Filter::in("published", {true, false})) == std::set<std::string>{"yes", "no"});
    CHECK(keys(Filter::negate(Filter::equals("published", true))) ==
          std::set<std::string>{"old", "no"});
    CHECK(keys(Filter::equals("published", std::int64_t{1})) == std::set<std::string>{"old"});
    CHECK(keys(Filter::range("published", false, true, std::nullopt, true)).empty());
    // The same row upserted again with the boolean is written again, not skipped as unchanged;
    // then it is a boolean, and unchanged the next time.
    auto again = index.upsert(
        {doc("old", "Rivers of the north.", everyone(), Metadata{{"published", true}})});
    REQUIRE(again.ok());
    CHECK(again->unchanged == 0);
    CHECK(value_of(index, "old", "published") == MetaValue(true));
    CHECK(keys(Filter::equals("published", true)) == std::set<std::string>{"old", "yes"});
    auto same = index.upsert(
        {doc("old", "Rivers of the north.", everyone(), Metadata{{"published", true}})});
    REQUIRE(same.ok());
    CHECK(same->unchanged == 1);
    // The text "true", which sources wrote for a boolean before, is not the boolean either.
    REQUIRE(index
                .upsert({doc("old", "Rivers of the north.", everyone(),
                             Metadata{{"published", std::string("true")}})})
                .ok());
    auto flipped = index.upsert(
        {doc("old", "Rivers of the north.", everyone(), Metadata{{"published", true}})});
    REQUIRE(flipped.ok());
    CHECK(flipped->unchanged == 0);
}

TEST_CASE("a write prepared before another commits lands as if applied at its commit") {
    TempDir dir("index-prepare-commit");
    auto index = create(dir, small_settings());
    REQUIRE(index
                ->upsert({doc("a", "Rivers run to the sea.", everyone()),
                          doc("b", "Mountains stand still.", everyone())})
                .ok());
    // Prepared while "a" is stored as A: restoring A looks unchanged, "b" is an edit.
    IndexWrite later;
    later.upserts = {doc("a", "Rivers run to the sea.", everyone()),
                     doc("b", "Mountains move slowly.", everyone()),
                     doc("c", "Glaciers carve valleys.", everyone())};
    auto prepared = index->prepare(later);
    REQUIRE_MESSAGE(prepared.ok(), prepared.status().to_string());
    // Another write commits in between: "a" becomes B, "b" goes and "c" is created.
    IndexWrite between;
    between.upserts = {doc("a", "Deserts are dry.", everyone()),
                       doc("c", "Oceans are deep.", everyone())};
    between.removes = {"b"};
    REQUIRE(index->apply(between).ok());

    auto committed = index->commit(std::move(prepared).value());
    REQUIRE_MESSAGE(committed.ok(), committed.status().to_string());
    CHECK(committed->upserts.documents == 3);
    CHECK(committed->upserts.unchanged == 0);
    auto a = index->chunks_of("a");
    REQUIRE(a.ok());
    REQUIRE(a->size() == 1);
    CHECK(a->front().text == "Rivers run to the sea.");
    auto b = index->chunks_of("b");
    REQUIRE(b.ok());
    REQUIRE(b->size() == 1);
    CHECK(b->front().text == "Mountains move slowly.");
    auto c = index->chunks_of("c");
    REQUIRE(c.ok());
    REQUIRE(c->size() == 1);
    CHECK(c->front().text == "Glaciers carve valleys.");
    CHECK(run(*index, "deserts", QueryMode::kLexical, kUser).empty());
    CHECK(run(*index, "oceans", QueryMode::kLexical, kUser).empty());
    CHECK(keys_of(run(*index, "rivers", QueryMode::kLexical, kUser)) == std::set<std::string>{"a"});
    IndexStats stats = index->stats();
    CHECK(stats.documents == 3);
    CHECK(stats.chunks == 3);
    CHECK(stats.vectors == 3);
    // A reopened index agrees (the store holds no orphaned chunk of "c").
    const auto path = index->dir();
    index.reset();
    auto reopened = Index::open(path, IndexDeps{});
    REQUIRE_MESSAGE(reopened.ok(), reopened.status().to_string());
    index = std::move(reopened).value();
    CHECK(index->stats().documents == 3);
    CHECK(index->stats().chunks == 3);

    // Removes and meta records added after prepare() are checked at commit().
    IndexWrite clash;
    clash.upserts = {doc("d", "New.", everyone())};
    auto clashing = index->prepare(clash);
    REQUIRE(clashing.ok());
    clashing->removes.push_back("d");
    auto refused = index->commit(std::move(clashing).value());
    CHECK(refused.status().code() == StatusCode::kInvalidArgument);
    CHECK(index->chunks_of("d")->empty());
}

TEST_CASE("a restart sees every committed change: snapshot plus replay, or the store alone") {
    TempDir dir("index-restart");
    // Flat, so that nearest-neighbour answers are exact; snapshot and replay of HNSW and IVF
    // are covered in vector_index_test.
    IndexSettings settings = small_settings("Flat");
    auto crashed = dir.path() / "crashed";
    {
        auto index = create(dir, settings);
        std::vector<Document> docs;
        for (int i = 0; i < 300; ++i) {
            docs.push_back(doc(numbered("k", i), numbered("entry ", i) + " on the subject of tides",
                               everyone()));
        }
        REQUIRE(index->upsert(docs).ok());
        REQUIRE(index->snapshot().ok());
        CHECK(index->stats().snapshot_sequence == index->stats().sequence);
        // Committed after the snapshot: an update, a delete, a new document.
        REQUIRE(index
                    ->upsert({doc("k1", "entry about glaciers instead", everyone()),
                              doc("new", "a brand new entry about tides", everyone())})
                    .ok());
        REQUIRE(index->remove({"k2"}).ok());
        // The process dies here: copy the files as they are, without the snapshot on close.
        std::filesystem::copy(dir.path() / "test", crashed,
                              std::filesystem::copy_options::recursive);
    }
    for (auto path : {crashed, dir.path() / "test"}) {
        CAPTURE(path.string());
        auto reopened = Index::open(path, IndexDeps{});
        REQUIRE_MESSAGE(reopened.ok(), reopened.status().to_string());
        auto& index = *reopened;
        CHECK(index->stats().documents == 300);
        CHECK(index->stats().vectors == 300);
        for (auto mode : {QueryMode::kLexical, QueryMode::kAnn}) {
            CAPTURE(query_mode_name(mode));
            auto glaciers = run(*index, "glaciers", mode, kUser, 1);
            REQUIRE(glaciers.size() == 1);
            CHECK(glaciers[0].chunk.doc_key == "k1");
            auto all = run(*index, "entry tides", mode, kUser, 1000);
            CHECK(keys_of(all).count("k2") == 0);
        }
        CHECK(keys_of(run(*index, "brand new", QueryMode::kLexical, kUser)).count("new") == 1);
    }
    // Without any snapshot the store alone rebuilds the same index.
    std::filesystem::remove(crashed / "vectors.snap");
    auto rebuilt = Index::open(crashed, IndexDeps{});
    REQUIRE(rebuilt.ok());
    CHECK((*rebuilt)->stats().vectors == 300);
    CHECK(run(**rebuilt, "glaciers", QueryMode::kAnn, kUser, 1)[0].chunk.doc_key == "k1");
    CHECK(Index::open(dir.path() / "none", IndexDeps{}).status().code() == StatusCode::kNotFound);
}

TEST_CASE("a crash between a batched write and the snapshot replays the whole batch") {
    // One apply() carries updates, removes, new documents and a meta record: the vector index
    // takes it as one removal and one FAISS add, and a reopen without a snapshot of it must
    // replay all of it, for the code-array and the graph kinds alike.
    for (const char* factory : {"Flat", "HNSW16"}) {
        CAPTURE(factory);
        TempDir dir("index-batch-replay");
        IndexSettings settings = small_settings(factory);
        auto text_of = [](int i, int version) {
            return numbered("report ", i) + numbered(" revision ", version) + " about " +
                   numbered("station", i * 7 + version) + " and the tides";
        };
        auto crashed = dir.path() / "crashed";
        {
            auto index = create(dir, settings);
            std::vector<Document> docs;
            for (int i = 0; i < 400; ++i) {
                docs.push_back(doc(numbered("k", i), text_of(i, 0), everyone()));
            }
            REQUIRE(index->upsert(docs).ok());
            REQUIRE(index->snapshot().ok());
            IndexWrite write;
            for (int i = 0; i < 150; ++i) {
                write.upserts.push_back(doc(numbered("k", i), text_of(i, 1), everyone()));
            }
            for (int i = 400; i < 500; ++i) {
                write.upserts.push_back(doc(numbered("k", i), text_of(i, 0), everyone()));
            }
            for (int i = 300; i < 400; ++i) {
                write.removes.push_back(numbered("k", i));
            }
            write.meta.emplace_back("sync/test/checkpoint", "offset-42");
            auto applied = index->apply(write);
            REQUIRE_MESSAGE(applied.ok(), applied.status().to_string());
            CHECK(applied->upserts.chunks_added == 250);
            CHECK(applied->upserts.chunks_removed == 250);
            CHECK(index->stats().vectors == 400);
            std::filesystem::copy(dir.path() / "test", crashed,
                                  std::filesystem::copy_options::recursive);
        }
        auto reopened = Index::open(crashed, IndexDeps{});
        REQUIRE_MESSAGE(reopened.ok(), reopened.status().to_string());
        auto& index = *reopened;
        CHECK(index->stats().documents == 400);
        CHECK(index->stats().vectors == 400);
        auto checkpoint = index->meta("sync/test/checkpoint");
        REQUIRE(checkpoint.ok());
        CHECK(checkpoint->value_or("") == "offset-42");
        // Each document is found by its current text; a flat index ranks it first.
        const std::size_t k = std::string(factory) == "Flat" ? 1 : 10;
        for (int i = 0; i < 500; i += 5) {
            CAPTURE(i);
            bool removed = i >= 300 && i < 400;
            int version = i < 150 ? 1 : 0;
            auto keys = keys_of(run(*index, text_of(i, version), QueryMode::kAnn, kUser, k));
            CHECK(keys.count(numbered("k", i)) == (removed ? 0u : 1u));
        }
        auto all = keys_of(run(*index, "report revision tides", QueryMode::kAnn, kUser, 1000));
        CHECK(all.size() == 400);
        CHECK(all.count("k300") == 0);
        CHECK(all.count("k499") == 1);
    }
}

TEST_CASE("queries run concurrently with writes and never see a deleted document") {
    TempDir dir("index-concurrent");
    auto index = create(dir, small_settings());
    std::vector<Document> docs;
    for (int i = 0; i < 200; ++i) {
        docs.push_back(doc(numbered("base", i), "common words for everyone", everyone()));
    }
    REQUIRE(index->upsert(docs).ok());
    std::atomic<int> deleted_upto{-1};
    std::atomic<bool> done{false};
    std::atomic<int> violations{0};
    std::vector<std::jthread> readers;
    for (int t = 0; t < 3; ++t) {
        readers.emplace_back([&] {
            while (!done.load()) {
                int limit = deleted_upto.load();
                auto hits = index->query(Query{"victim", {}, 50, {}, QueryMode::kHybrid}, kUser);
                if (!hits.ok()) {
                    violations.fetch_add(1);
                    continue;
                }
                for (const auto& hit : *hits) {
                    const std::string& key = hit.chunk.doc_key;
                    if (key[0] == 'v' && std::stoi(key.substr(1)) <= limit) {
                        violations.fetch_add(1);
                    }
                }
            }
        });
    }
    for (int i = 0; i < 40; ++i) {
        REQUIRE(
            index->upsert({doc(numbered("v", i), numbered("victim number ", i), everyone())}).ok());
        REQUIRE(index->remove({numbered("v", i)}).ok());
        deleted_upto.store(i);
    }
    done.store(true);
    readers.clear();
    CHECK(violations.load() == 0);
}

TEST_CASE("an index without an embedder takes vectors from its callers") {
    TempDir dir("index-caller-vectors");
    IndexSettings settings = small_settings();
    settings.embedder = "none";
    settings.dimension = 3;
    settings.chunking = false;
    auto index = create(dir, settings);
    Document x = doc("x", "first", everyone());
    x.vector = {1, 0, 0};
    Document y = doc("y", "second", everyone());
    y.vector = {0, 1, 0};
    REQUIRE(index->upsert({x, y}).ok());
    Query query;
    query.vector = {0.1f, 0.9f, 0};
    query.mode = QueryMode::kAnn;
    query.k = 1;
    auto hits = index->query(query, kUser);
    REQUIRE(hits.ok());
    CHECK((*hits)[0].chunk.doc_key == "y");
    query.vector.clear();
    query.text = "second";
    CHECK(index->query(query, kUser).status().code() == StatusCode::kFailedPrecondition);
}

TEST_CASE(
    "a zero query vector: refused under cosine; text the embedder finds nothing in ranks "
    "nothing by vector") {
    TempDir dir("index-zero-vector");
    IndexSettings settings = small_settings();
    settings.metric = Metric::kCosine;
    auto index = create(dir, settings);
    REQUIRE(index
                ->upsert({doc("a", "rivers and lakes", everyone()),
                          doc("b", "mountains and valleys", everyone())})
                .ok());
    Query given;
    given.vector.assign(settings.dimension, 0.0f);
    given.mode = QueryMode::kAnn;
    auto refused = index->query(given, kUser);
    CHECK(refused.status().code() == StatusCode::kInvalidArgument);
    CHECK(refused.status().message().find("no direction") != std::string::npos);

    // Punctuation alone: the lexical-hash embedder makes a zero vector, which finds nothing
    // rather than every chunk at score 0; hybrid still answers from the words it has.
    CHECK(run(*index, "?!", QueryMode::kAnn, kUser).empty());
    CHECK(run(*index, "?!", QueryMode::kHybrid, kUser).empty());
    auto words = run(*index, "rivers", QueryMode::kHybrid, kUser);
    REQUIRE_FALSE(words.empty());
    CHECK(words.front().chunk.doc_key == "a");
}

TEST_CASE("a vector with an infinite or NaN component is refused, in a row and in a query") {
    TempDir dir("index-caller-nonfinite");
    IndexSettings settings = small_settings();
    settings.embedder = "none";
    settings.dimension = 3;
    settings.chunking = false;
    auto index = create(dir, settings);
    Document x = doc("x", "first", everyone());
    x.vector = {1, 0, 0};
    Document y = doc("y", "second", everyone());
    y.vector = {0, 1, 0};
    REQUIRE(index->upsert({x, y}).ok());
    // Cosine normalised infinity to NaN: the row scored NaN (null in JSON) and ranked below
    // every other, whatever the query.
    for (float bad :
         {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
          std::numeric_limits<float>::quiet_NaN()}) {
        CAPTURE(bad);
        Document z = doc("z", "third", everyone());
        z.vector = {0, 0, bad};
        auto refused = index->upsert({x, z});
        REQUIRE_FALSE(refused.ok());
        CHECK(refused.status().code() == StatusCode::kInvalidArgument);
        CHECK(refused.status().message().find("document 'z': vector[2] is ") == 0);
        CHECK(refused.status().message().find("expected a finite float") != std::string::npos);
        Query query;
        query.vector = {bad, 0, 0};
        query.mode = QueryMode::kAnn;
        auto hits = index->query(query, kUser);
        REQUIRE_FALSE(hits.ok());
        CHECK(hits.status().code() == StatusCode::kInvalidArgument);
        CHECK(hits.status().message().find("query vector[0] is ") == 0);
    }
    CHECK(index->stats().documents == 2);
    CHECK(index->chunks_of("z")->empty());
}

namespace {

// A "model" embedder of a width of its own, as app/ lends one: the width comes from the model.
class WidthOnlyEmbedder final : public Embedder {
public:
    explicit WidthOnlyEmbedder(std::size_t width) : width_(width) {}
    std::string id() const override { return "model:fixed"; }
    std::size_t dimension() const override { return width_; }
    sluice::Result<std::vector<Vector>> embed(
        const std::vector<std::string>& texts) const override {
        return std::vector<Vector>(texts.size(), Vector(width_, 1.0f));
    }

private:
    std::size_t width_;
};

IndexDeps deps_with_model_of_width(std::size_t width) {
    IndexDeps deps;
    deps.embedders =
        [width](const IndexSettings& settings) -> sluice::Result<std::shared_ptr<const Embedder>> {
        if (settings.embedder == "model") {
            return std::shared_ptr<const Embedder>(std::make_shared<WidthOnlyEmbedder>(width));
        }
        return default_embedder_factory(settings);
    };
    return deps;
}

}  // namespace

TEST_CASE("an index of the model without a dimension takes the model's width and keeps it") {
    TempDir dir("index-model-width");
    IndexSettings settings = small_settings();
    settings.embedder = "model";
    settings.dimension = kEmbedderDimension;
    CHECK(validate(settings).ok());
    auto index = Index::create(dir.path() / "m", settings, deps_with_model_of_width(48));
    REQUIRE_MESSAGE(index.ok(), index.status().to_string());
    CHECK((*index)->settings().dimension == 48);
    REQUIRE((*index)->upsert({doc("a", "text", everyone())}).ok());
    index->reset();
    // Stored as a number: it opens again with its width, and a model of another width is refused.
    auto reopened = Index::open(dir.path() / "m", deps_with_model_of_width(48));
    REQUIRE_MESSAGE(reopened.ok(), reopened.status().to_string());
    CHECK((*reopened)->settings().dimension == 48);
    CHECK((*reopened)->stats().vectors == 1);
    reopened->reset();
    auto other = Index::open(dir.path() / "m", deps_with_model_of_width(64));
    CHECK(other.status().code() == StatusCode::kFailedPrecondition);
    CHECK(other.status().message().find("has dimension 48") != std::string::npos);

    // A given width stays as given, and a wrong one is refused as before.
    settings.name = "given";
    settings.dimension = 40;
    auto given = Index::create(dir.path() / "given", settings, deps_with_model_of_width(48));
    CHECK(given.status().code() == StatusCode::kFailedPrecondition);
    // Only the model has a width of its own.
    settings.embedder = "lexical-hash";
    settings.dimension = kEmbedderDimension;
    CHECK(validate(settings).code() == StatusCode::kInvalidArgument);
    settings.embedder = "none";
    CHECK(validate(settings).code() == StatusCode::kInvalidArgument);

    // The factory is checked against the model's width once it is known: PQ's m must divide it.
    settings.name = "pq";
    settings.embedder = "model";
    settings.factory = "IVF4,PQ5";
    CHECK(validate(settings).ok());
    auto pq = Index::create(dir.path() / "pq", settings, deps_with_model_of_width(48));
    CHECK(pq.status().code() == StatusCode::kInvalidArgument);
    CHECK(pq.status().message().find("PQ m 5 does not divide the dimension 48") !=
          std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir.path() / "pq"));
    settings.factory = "IVF4,PQ6";
    CHECK(Index::create(dir.path() / "pq", settings, deps_with_model_of_width(48)).ok());
}

TEST_CASE("an index whose terms an older analysis made is re-analyzed when it opens") {
    TempDir dir("index-reanalyze");
    IndexSettings settings = small_settings("Flat");
    settings.chunking = false;
    const int n = 2500;  // more than one re-analysis commit
    {
        auto index = create(dir, settings);
        std::vector<Document> docs;
        for (int i = 0; i < n; ++i) {
            docs.push_back(
                doc(numbered("k", i), numbered("\u201cGlacier\u201d\u2014report ", i), everyone()));
        }
        REQUIRE(index->upsert(docs).ok());
    }
    // Make it look like an index of version 1, which kept the typographic quotes and the dash
    // inside its terms.
    const auto store_path = dir.path() / "test" / "store";
    auto set_version_and_old_terms = [&](const std::string& version, bool old_terms) {
        auto store = ChunkStore::open(store_path);
        REQUIRE(store.ok());
        auto batch = (*store)->batch();
        if (old_terms) {
            REQUIRE((*store)
                        ->for_each_chunk([&](const Chunk& chunk, const TermCounts&) {
                            batch.put_terms(chunk.id, {{"\u201cglacier\u201d\u2014report", 1}});
                            return true;
                        })
                        .ok());
        }
        batch.put_meta("index.analyzer_version", version);
        REQUIRE((*store)->commit(batch).ok());
    };
    set_version_and_old_terms("1", true);
    auto sink = std::make_shared<CaptureSink>();
    sluice::log::set_sink(sink, sluice::log::Level::kInfo);
    {
        auto reopened = Index::open(dir.path() / "test", IndexDeps{});
        REQUIRE_MESSAGE(reopened.ok(), reopened.status().to_string());
        // Every chunk has its new terms: the first, one of each commit and the last.
        for (int i : {0, 999, 1000, 1999, 2000, n - 1}) {
            CAPTURE(i);
            auto hits =
                run(**reopened, numbered("glacier report ", i), QueryMode::kLexical, kUser, 1);
            REQUIRE(hits.size() == 1);
            CHECK(hits[0].chunk.doc_key == numbered("k", i));
        }
        CHECK(run(**reopened, "glacier", QueryMode::kLexical, kUser, 1000).size() == 1000);
    }
    auto count_reanalyses = [&] {
        std::lock_guard lock(sink->mutex);
        std::size_t count = 0;
        for (const auto& line : sink->lines) {
            count += line.rfind("re-analyzed the index's terms", 0) == 0 &&
                     line.find("chunks=2500") != std::string::npos;
        }
        return count;
    };
    CHECK(count_reanalyses() == 1);
    {
        // The new terms and the version were stored: the next open does not re-analyze.
        auto store = ChunkStore::open(store_path);
        REQUIRE(store.ok());
        auto version = (*store)->get_meta("index.analyzer_version");
        REQUIRE(version.ok());
        CHECK(version->value_or("") == std::to_string(TextAnalyzer::kVersion));
    }
    {
        auto reopened = Index::open(dir.path() / "test", IndexDeps{});
        REQUIRE(reopened.ok());
        CHECK(run(**reopened, "glacier", QueryMode::kLexical, kUser, 1000).size() == 1000);
    }
    CHECK(count_reanalyses() == 1);
    sluice::log::set_sink(nullptr, sluice::log::Level::kWarn);
    // A version this build does not know is refused, naming it; a malformed one is data loss.
    set_version_and_old_terms(std::to_string(TextAnalyzer::kVersion + 1), false);
    auto newer = Index::open(dir.path() / "test", IndexDeps{});
    REQUIRE_FALSE(newer.ok());
    CHECK(newer.status().code() == StatusCode::kFailedPrecondition);
    CHECK(newer.status().message().find("version " + std::to_string(TextAnalyzer::kVersion + 1)) !=
          std::string::npos);
    set_version_and_old_terms("two", false);
    CHECK(Index::open(dir.path() / "test", IndexDeps{}).status().code() == StatusCode::kDataLoss);
}
