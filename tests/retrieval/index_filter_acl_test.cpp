// Index queries under access lists and filters: nothing a reader may not read reaches a
// result or a log line, and a filter of any selectivity still returns a full k.
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

TEST_CASE("access control: a matrix of readers and documents, in every mode and in the logs") {
    TempDir dir("index-acl");
    auto sink = std::make_shared<CaptureSink>();
    sluice::log::set_sink(sink, sluice::log::Level::kDebug);
    auto index = create(dir, small_settings());
    const std::string secret = "zebrasecret";
    REQUIRE(
        index
            ->upsert({
                doc("alice-only", "shared topic " + secret + " for alice", Acl{{"alice"}, {}}),
                doc("eng", "shared topic " + secret + " for engineering", Acl{{}, {"eng"}}),
                doc("eng-sales", "shared topic " + secret + " for both", Acl{{}, {"eng", "sales"}}),
                doc("nobody", "shared topic " + secret + " without rules", Acl{}),
                doc("public", "shared topic for everyone", Acl{{}, {"everyone"}}),
            })
            .ok());
    struct Case {
        Reader reader;
        std::set<std::string> readable;
    };
    std::vector<Case> cases = {
        {{"alice", {"everyone"}}, {"alice-only", "public"}},
        {{"bob", {"eng", "everyone"}}, {"eng", "eng-sales", "public"}},
        {{"carol", {"sales"}}, {"eng-sales"}},
        {{"mallory", {}}, {}},
        {{"", {""}}, {}},
        {{"eng", {}}, {}},  // a principal named like a group is not the group
    };
    for (const auto& c : cases) {
        for (auto mode : {QueryMode::kLexical, QueryMode::kAnn, QueryMode::kHybrid}) {
            CAPTURE(c.reader.principal);
            CAPTURE(query_mode_name(mode));
            auto hits = run(*index, "shared topic " + secret, mode, c.reader, 10);
            CHECK(keys_of(hits) == c.readable);
            for (const auto& hit : hits) {
                CHECK(hit.chunk.acl.allows(c.reader));
            }
        }
    }
    sluice::log::set_sink(nullptr, sluice::log::Level::kWarn);
    std::lock_guard lock(sink->mutex);
    for (const auto& line : sink->lines) {
        CHECK(line.find(secret) == std::string::npos);
    }
}

TEST_CASE("a 1% filter returns a full k in every mode") {
    TempDir dir("index-filter");
    IndexSettings settings = small_settings("HNSW16");
    settings.chunking = false;
    auto index = create(dir, settings);
    std::vector<Document> docs;
    for (int i = 0; i < 2000; ++i) {
        docs.push_back(doc(numbered("d", i),
                           numbered("report number ", i) + " about shared matters", everyone(),
                           Metadata{{"bucket", static_cast<double>(i % 100)},
                                    {"team", std::string(i % 2 == 0 ? "red" : "blue")}}));
    }
    REQUIRE(index->upsert(docs).ok());
    Filter one_percent = Filter::equals("bucket", 7.0);
    for (auto mode : {QueryMode::kLexical, QueryMode::kAnn, QueryMode::kHybrid}) {
        CAPTURE(query_mode_name(mode));
        auto hits = run(*index, "shared report", mode, kUser, 20, one_percent);
        CHECK(hits.size() == 20);
        for (const auto& hit : hits) {
            CHECK(std::get<double>(hit.chunk.metadata.at("bucket")) == 7.0);
        }
    }
    // Compound filter through built-in fields: bucket in {3, 4} and not red, doc_key prefix.
    Filter compound = Filter::all_of({Filter::in("bucket", {3.0, 4.0}),
                                      Filter::negate(Filter::equals("team", std::string("red"))),
                                      Filter::prefix("doc_key", "d1")});
    auto hits = run(*index, "shared", QueryMode::kLexical, kUser, 50, compound);
    CHECK(hits.size() == 11);  // d103 and d1003, d1103, ..., d1903
    for (const auto& hit : hits) {
        CHECK(std::get<double>(hit.chunk.metadata.at("bucket")) == 3.0);
    }
}

namespace {

// Cosine similarity, as the index ranks with metric cosine.
double cosine(const std::vector<float>& a, const std::vector<float>& b) {
    double dot = 0;
    double na = 0;
    double nb = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        dot += static_cast<double>(a[i]) * b[i];
        na += static_cast<double>(a[i]) * a[i];
        nb += static_cast<double>(b[i]) * b[i];
    }
    return dot / std::sqrt(na * nb);
}

}  // namespace

TEST_CASE(
    "range and prefix filters and their negations return the exact top k at every selectivity") {
    TempDir dir("index-filter-ops");
    IndexSettings settings = small_settings("HNSW16");
    settings.embedder = "none";
    settings.dimension = 8;
    settings.chunking = false;
    auto index = create(dir, settings);
    std::mt19937 random(11);
    std::normal_distribution<float> normal;
    std::map<std::string, Document> docs;
    auto make = [&](int i) {
        Metadata metadata;
        if (i % 3 != 0) {
            metadata["rating"] = static_cast<double>(random() % 1000);  // absent on a third
        }
        metadata["path"] = std::string(i % 2 == 0 ? "docs/" : "wiki/") + numbered("p", i % 37);
        Document d =
            doc(numbered("d", i), "text", i % 10 == 0 ? Acl{{}, {"legal"}} : everyone(), metadata);
        d.vector.resize(8);
        for (auto& x : d.vector) {
            x = normal(random);
        }
        return d;
    };
    std::vector<Document> batch;
    for (int i = 0; i < 1500; ++i) {
        batch.push_back(make(i));
        docs[batch.back().key] = batch.back();
    }
    REQUIRE(index->upsert(batch).ok());
    using F = Filter;
    const std::vector<Filter> filters = {
        F::range("rating", 990.0, true, std::nullopt, true),             // ~0.7%
        F::range("rating", 100.0, false, 300.0, true),                   // ~13%
        F::range("rating", std::nullopt, true, 1000.0, false),           // 2/3: every rating
        F::prefix("path", "docs/p00"),                                   // ~1.4%
        F::prefix("path", "wiki/"),                                      // 50%
        F::negate(F::range("rating", std::nullopt, true, 995.0, true)),  // absent or > 995: ~34%
        F::negate(F::prefix("path", "")),                                // nothing
        F::all_of(
            {F::prefix("path", "docs/"), F::negate(F::range("rating", 10.0, true, 999.0, true))}),
        F::any_of({F::range("rating", 0.0, true, 5.0, true), F::prefix("path", "wiki/p001")}),
        F::negate(
            F::any_of({F::prefix("path", "docs/"), F::range("rating", 0.0, true, 990.0, true)})),
    };
    auto check_all = [&](const char* phase) {
        CAPTURE(phase);
        for (const auto& filter : filters) {
            CAPTURE(filter.describe());
            Query query;
            query.mode = QueryMode::kAnn;
            query.k = 10;
            query.filter = filter;
            query.vector.resize(8);
            for (auto& x : query.vector) {
                x = normal(random);
            }
            // Brute force over what the reader may read and the filter admits.
            std::vector<std::pair<double, std::string>> scored;
            for (const auto& [key, d] : docs) {
                Metadata metadata = d.metadata;
                metadata.try_emplace("doc_key", d.key);
                metadata.try_emplace("uri", d.uri);
                metadata.try_emplace("title", d.title);
                if (d.acl.allows(kUser) && filter.matches(metadata)) {
                    scored.emplace_back(cosine(query.vector, d.vector), key);
                }
            }
            std::sort(scored.begin(), scored.end(), std::greater<>());
            scored.resize(std::min<std::size_t>(scored.size(), 10));
            std::set<std::string> expected;
            for (const auto& entry : scored) {
                expected.insert(entry.second);
            }
            auto hits = index->query(query, kUser);
            REQUIRE(hits.ok());
            CHECK(hits->size() == expected.size());
            CHECK(keys_of(*hits) == expected);
        }
    };
    check_all("after the first upsert");
    // Updates move documents between values (and give some the field they lacked); deletes
    // take others away.
    batch.clear();
    std::vector<std::string> removed;
    for (int i = 0; i < 1500; i += 4) {
        Document d = make(i + 1);
        d.key = numbered("d", i);
        batch.push_back(d);
        docs[d.key] = d;
        std::string gone = numbered("d", i + 2);
        removed.push_back(gone);
        docs.erase(gone);
    }
    REQUIRE(index->apply(IndexWrite{batch, removed, {}}).ok());
    check_all("after updates and deletes");
}

TEST_CASE(
    "an access list change is never taken for an unchanged document, whatever bytes it holds") {
    TempDir dir("retrieval-fingerprint");
    auto index = create(dir, small_settings());
    const Reader bob{"bob", {}};
    // Field separators inside values must not let two different documents read alike: bob's
    // access moved into a principal named "alice\x1fp:bob" is bob's access removed.
    REQUIRE(index->upsert({doc("d1", "the quarterly numbers", Acl{{"alice", "bob"}, {}})}).ok());
    CHECK(keys_of(run(*index, "quarterly", QueryMode::kLexical, bob)) ==
          std::set<std::string>{"d1"});
    auto revoked = index->upsert({doc("d1", "the quarterly numbers", Acl{{"alice\x1fp:bob"}, {}})});
    REQUIRE(revoked.ok());
    CHECK(revoked->documents == 1);
    CHECK(revoked->unchanged == 0);
    CHECK(run(*index, "quarterly", QueryMode::kLexical, bob).empty());

    // Text moving across the title/text boundary with a separator is a change too.
    Document moved = doc("d2", "y", everyone());
    moved.title = "t\x1fx";
    REQUIRE(index->upsert({moved}).ok());
    moved.title = "t";
    moved.text = "x\x1fy";
    auto changed = index->upsert({moved});
    REQUIRE(changed.ok());
    CHECK(changed->documents == 1);
    // The same document again is unchanged, escaped bytes and all.
    auto again = index->upsert({moved});
    REQUIRE(again.ok());
    CHECK(again->unchanged == 1);
}
