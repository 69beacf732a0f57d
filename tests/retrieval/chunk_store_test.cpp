#include "retrieval/chunk_store.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <fstream>
#include <limits>

#include "retrieval/detail/records.h"
#include "temp_dir.h"

using namespace sluice::retrieval;
using sluice::StatusCode;
using sluice::retrieval::testing::numbered;
using sluice::retrieval::testing::TempDir;

namespace {

Chunk make_chunk(std::uint64_t id, const std::string& doc, const std::string& text) {
    Chunk chunk;
    chunk.id = id;
    chunk.doc_key = doc;
    chunk.uri = std::string("file:///").append(doc);
    chunk.title = std::string("Title of ").append(doc);
    chunk.section_path = {"Intro", "Scope"};
    chunk.char_begin = 3;
    chunk.char_end = 3 + text.size();
    chunk.text = text;
    chunk.content_hash = content_hash(text);
    chunk.vector_source = "lexical-hash-v1:16";
    chunk.metadata = {{"year", 2021.0}, {"lang", std::string("en")}};
    chunk.acl.groups = {"staff"};
    return chunk;
}

// Commits one chunk and its document, both carrying `metadata`, into a store at `dir`, and
// reopens it; `id` is the chunk's id.
std::unique_ptr<ChunkStore> store_with_metadata(const TempDir& dir, const Metadata& metadata,
                                                std::uint64_t& id) {
    {
        auto store = ChunkStore::open(dir.path());
        REQUIRE(store.ok());
        auto batch = (*store)->batch();
        id = batch.reserve_chunk_id();
        Chunk chunk = make_chunk(id, "doc-a", "hello");
        chunk.metadata = metadata;
        batch.put_chunk(chunk, {});
        batch.put_document(DocumentRecord{"doc-a", "", "", metadata, {}, "h", {id}});
        REQUIRE((*store)->commit(batch).ok());
    }
    auto store = ChunkStore::open(dir.path());
    REQUIRE(store.ok());
    return std::move(store).value();
}

}  // namespace

TEST_CASE("a committed batch survives reopening, field for field") {
    TempDir dir("store-roundtrip");
    std::uint64_t id = 0;
    {
        auto store = ChunkStore::open(dir.path());
        REQUIRE_MESSAGE(store.ok(), store.status().to_string());
        CHECK((*store)->sequence() == 0);
        auto batch = (*store)->batch();
        id = batch.reserve_chunk_id();
        batch.put_chunk(make_chunk(id, "doc-a", "hello world"), {{"hello", 1}, {"world", 1}});
        batch.put_document(DocumentRecord{"doc-a", "file:///doc-a", "Title", {}, {}, "h", {id}});
        batch.put_embedding("emb", "h1", {0.5f, -0.25f});
        batch.put_meta("k", "v");
        REQUIRE((*store)->commit(batch).ok());
        CHECK((*store)->sequence() == 1);
    }
    auto store = ChunkStore::open(dir.path());
    REQUIRE(store.ok());
    CHECK((*store)->sequence() == 1);
    auto chunk = (*store)->get_chunk(id);
    REQUIRE(chunk.ok());
    REQUIRE(chunk->has_value());
    const Chunk& c = **chunk;
    CHECK(c.doc_key == "doc-a");
    CHECK(c.text == "hello world");
    CHECK(c.section_path == std::vector<std::string>{"Intro", "Scope"});
    CHECK(c.char_end == 14);
    CHECK(std::get<double>(c.metadata.at("year")) == 2021.0);
    CHECK(std::get<std::string>(c.metadata.at("lang")) == "en");
    CHECK(c.acl.groups == std::vector<std::string>{"staff"});
    CHECK(c.vector_source == "lexical-hash-v1:16");
    auto embedding = (*store)->get_embedding("emb", "h1");
    REQUIRE(embedding.ok());
    CHECK(**embedding == std::vector<float>{0.5f, -0.25f});
    CHECK_FALSE((*store)->get_embedding("other-embedder", "h1")->has_value());
    auto document = (*store)->get_document("doc-a");
    REQUIRE(document.ok());
    CHECK((*document)->chunk_ids == std::vector<std::uint64_t>{id});
    // Ids keep counting after a reopen, never reusing a committed one.
    auto batch = (*store)->batch();
    CHECK(batch.reserve_chunk_id() > id);
}

TEST_CASE("integer metadata reads back as an integer; records of earlier builds still load") {
    using namespace std::string_literals;
    // A document record as earlier builds wrote it, when every number was a float (kind 1):
    // version, uri, title, metadata {lang: "en", year: 2021.0}, acl (no principals, groups
    // [staff]), text hash, chunk ids [7].
    const std::string earlier = "\x01"s + "\x01u" + "\x01t" + "\x02" + "\x04lang" + "\x00\x02"s +
                                "en" + "\x04year" + "\x01" + "\x00\x00\x00\x00\x00\x94\x9f\x40"s +
                                "\x00"s + "\x01\x05staff" + "\x01h" + "\x01\x07";
    auto decoded = detail::decode_document("k", earlier);
    REQUIRE_MESSAGE(decoded.ok(), decoded.status().to_string());
    CHECK(std::get<double>(decoded->metadata.at("year")) == 2021.0);
    CHECK(std::get<std::string>(decoded->metadata.at("lang")) == "en");
    CHECK(decoded->acl.groups == std::vector<std::string>{"staff"});
    CHECK(decoded->chunk_ids == std::vector<std::uint64_t>{7});
    // Text and floats are written as before, so an earlier build reads what has no integer.
    CHECK(detail::encode_document(*decoded) == earlier);

    TempDir dir("store-integers");
    const Metadata numbers = {{"year", std::int64_t{2020}},
                              {"offset", std::int64_t{-1}},
                              {"least", std::numeric_limits<std::int64_t>::min()},
                              {"most", std::numeric_limits<std::int64_t>::max()},
                              {"ratio", 2.0}};
    std::uint64_t id = 0;
    auto store = store_with_metadata(dir, numbers, id);
    auto chunk = store->get_chunk(id);
    REQUIRE(chunk.ok());
    REQUIRE(chunk->has_value());
    CHECK((*chunk)->metadata == numbers);  // kinds and values: 2020 stays 2020, 2.0 stays 2.0
    CHECK(std::holds_alternative<std::int64_t>((*chunk)->metadata.at("year")));
    CHECK(std::holds_alternative<double>((*chunk)->metadata.at("ratio")));
    auto document = store->get_document("doc-a");
    REQUIRE(document.ok());
    CHECK((*document)->metadata == numbers);
}

TEST_CASE("boolean metadata reads back as a boolean; 1.0 and 0.0 of earlier builds stay floats") {
    using namespace std::string_literals;
    // A document record as builds before booleans wrote {"draft": false, "published": true}:
    // version, uri, title, metadata {draft: 0.0, published: 1.0} (kind 1, little-endian
    // doubles), acl (none), text hash, no chunk ids.
    const std::string earlier = "\x01"s + "\x01u" + "\x01t" + "\x02" + "\x05" + "draft" + "\x01" +
                                "\x00\x00\x00\x00\x00\x00\x00\x00"s + "\x09" + "published" +
                                "\x01" + "\x00\x00\x00\x00\x00\x00\xf0\x3f"s + "\x00\x00"s +
                                "\x01h" + "\x00"s;
    auto decoded = detail::decode_document("k", earlier);
    REQUIRE_MESSAGE(decoded.ok(), decoded.status().to_string());
    CHECK(decoded->metadata.at("draft") == MetaValue(0.0));
    CHECK(decoded->metadata.at("published") == MetaValue(1.0));
    CHECK(detail::encode_document(*decoded) == earlier);

    // A boolean is kind 3, then 0 or 1; the rest of the record is as before.
    DocumentRecord now = *decoded;
    now.metadata = {{"draft", false}, {"published", true}};
    const std::string written = detail::encode_document(now);
    CHECK(written == "\x01"s + "\x01u" + "\x01t" + "\x02" + "\x05" + "draft" + "\x03\x00"s +
                         "\x09" + "published" + "\x03\x01" + "\x00\x00"s + "\x01h" + "\x00"s);
    auto again = detail::decode_document("k", written);
    REQUIRE(again.ok());
    CHECK(again->metadata == now.metadata);
    CHECK(std::holds_alternative<bool>(again->metadata.at("published")));
    // A boolean that is neither 0 nor 1, and one cut off, are corrupt.
    for (const std::string& bad : {"\x01"s + "\x01u" + "\x01t" + "\x01" + "\x01" + "b" +
                                       "\x03\x02" + "\x00\x00"s + "\x01h" + "\x00"s,
                                   "\x01"s + "\x01u" + "\x01t" + "\x01" + "\x01" + "b" + "\x03"}) {
        auto refused = detail::decode_document("k", bad);
        REQUIRE_FALSE(refused.ok());
        CHECK(refused.status().code() == StatusCode::kDataLoss);
    }

    TempDir dir("store-booleans");
    const Metadata flags = {{"published", true}, {"draft", false}, {"old", 1.0}};
    std::uint64_t id = 0;
    auto store = store_with_metadata(dir, flags, id);
    auto chunk = store->get_chunk(id);
    REQUIRE(chunk.ok());
    REQUIRE(chunk->has_value());
    CHECK((*chunk)->metadata == flags);
    CHECK(std::holds_alternative<bool>((*chunk)->metadata.at("draft")));
    CHECK(std::holds_alternative<double>((*chunk)->metadata.at("old")));
    auto document = store->get_document("doc-a");
    REQUIRE(document.ok());
    CHECK((*document)->metadata == flags);
}

TEST_CASE("a process killed before commit leaves nothing; after commit leaves everything") {
    TempDir dir("store-kill");
    {
        auto store = ChunkStore::open(dir.path());
        REQUIRE(store.ok());
        auto first = (*store)->batch();
        first.put_chunk(make_chunk(first.reserve_chunk_id(), "kept", "kept text"), {});
        first.put_document(DocumentRecord{"kept", "", "", {}, {}, "h", {1}});
        REQUIRE((*store)->commit(first).ok());
        // The second change is built but the process "dies" before commit: the store is
        // dropped with the batch pending.
        auto second = (*store)->batch();
        second.delete_chunk(1);
        second.delete_document("kept");
        second.put_chunk(make_chunk(second.reserve_chunk_id(), "new", "new text"), {});
        second.put_document(DocumentRecord{"new", "", "", {}, {}, "h", {2}});
    }
    auto store = ChunkStore::open(dir.path());
    REQUIRE(store.ok());
    CHECK((*store)->sequence() == 1);
    CHECK((*store)->get_document("kept")->has_value());
    CHECK((*store)->get_chunk(1)->has_value());
    CHECK_FALSE((*store)->get_document("new")->has_value());
    std::size_t chunks = 0;
    REQUIRE((*store)->for_each_chunk([&](const Chunk&, const TermCounts&) {
        ++chunks;
        return true;
    }).ok());
    CHECK(chunks == 1);
}

TEST_CASE("the change log lists chunk changes after a sequence and can be pruned") {
    TempDir dir("store-changes");
    auto store = ChunkStore::open(dir.path());
    REQUIRE(store.ok());
    for (int round = 0; round < 3; ++round) {
        auto batch = (*store)->batch();
        auto id = batch.reserve_chunk_id();
        batch.put_chunk(make_chunk(id, numbered("d", round), "t"), {});
        if (round == 2) {
            batch.delete_chunk(1);
        }
        REQUIRE((*store)->commit(batch).ok());
    }
    std::vector<std::tuple<std::uint64_t, ChangeOp, std::uint64_t>> seen;
    auto collect = [&](std::uint64_t seq, ChangeOp op, std::uint64_t id) {
        seen.emplace_back(seq, op, id);
    };
    REQUIRE((*store)->for_each_change_after(1, collect).ok());
    REQUIRE(seen.size() == 3);
    CHECK(seen[0] == std::make_tuple(std::uint64_t{2}, ChangeOp::kAdd, std::uint64_t{2}));
    CHECK(seen[2] == std::make_tuple(std::uint64_t{3}, ChangeOp::kRemove, std::uint64_t{1}));
    REQUIRE((*store)->prune_changes_through(2).ok());
    seen.clear();
    REQUIRE((*store)->for_each_change_after(0, collect).ok());
    CHECK(seen.size() == 2);
}

TEST_CASE("a store another process holds is refused, and corrupt records are data loss") {
    TempDir dir("store-lock");
    auto first = ChunkStore::open(dir.path());
    REQUIRE(first.ok());
    auto second = ChunkStore::open(dir.path());
    REQUIRE_FALSE(second.ok());
    CHECK(second.status().code() == StatusCode::kFailedPrecondition);

    auto batch = (*first)->batch();
    batch.put_embedding("e", "h", {1.0f});
    REQUIRE((*first)->commit(batch).ok());
    CHECK(content_hash("a") != content_hash("b"));
    CHECK(content_hash("same") == content_hash("same"));
    CHECK(content_hash("x").size() == 32);
}
