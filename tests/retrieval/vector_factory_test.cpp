// Factory strings (retrieval/vector_factory.h) as an index meets them: at creation through
// validate() and the index manager, at upsert, and at open when an earlier build stored one.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "retrieval/chunk_store.h"
#include "retrieval/index_manager.h"
#include "retrieval/index_settings.h"
#include "retrieval/vector_index.h"
#include "temp_dir.h"

using namespace sluice::retrieval;
using sluice::Status;
using sluice::StatusCode;
using sluice::retrieval::testing::numbered;
using sluice::retrieval::testing::TempDir;

namespace {

IndexSettings settings_with(const std::string& name, const std::string& factory) {
    IndexSettings settings;
    settings.name = name;
    settings.dimension = 16;
    settings.factory = factory;
    return settings;
}

std::vector<Document> documents(int first, int count) {
    std::vector<Document> out;
    for (int i = first; i < first + count; ++i) {
        Document doc;
        doc.key = numbered("doc-", i);
        doc.text = numbered("document ", i) + numbered(" speaks of topic ", i % 7) +
                   numbered(" and of colour ", i % 11) + ".";
        doc.acl.groups = {"everyone"};
        out.push_back(std::move(doc));
    }
    return out;
}

std::vector<Hit> ann(const Index& index, const std::string& text) {
    Query query;
    query.text = text;
    query.mode = QueryMode::kAnn;
    query.k = 5;
    auto hits = index.query(query, Reader{"user", {"everyone"}});
    REQUIRE_MESSAGE(hits.ok(), hits.status().to_string());
    return *hits;
}

// Rewrites the factory string an index stored, as an earlier build may have stored it.
void store_factory(const std::filesystem::path& index_dir, const std::string& factory) {
    auto store = ChunkStore::open(index_dir / "store");
    REQUIRE_MESSAGE(store.ok(), store.status().to_string());
    auto encoded = (*store)->get_meta("index.settings");
    REQUIRE((encoded.ok() && encoded->has_value()));
    auto settings = decode_settings(**encoded);
    REQUIRE(settings.ok());
    settings->factory = factory;
    auto batch = (*store)->batch();
    batch.put_meta("index.settings", encode_settings(*settings));
    REQUIRE((*store)->commit(batch).ok());
}

}  // namespace

TEST_CASE("factory strings FAISS crashes on, or this server cannot serve, are refused") {
    // First the ones reported: accepted at creation, then HNSW0 crashed the first upsert with a
    // SIGSEGV and IVF0,Flat aborted on a FAISS assertion (and PQ0 crashes the factory itself).
    std::vector<std::string> refused = {"HNSW0", "IVF0,Flat", "IVF4,PQ0", "IVF4,PQ4x0"};
    const std::vector<std::vector<std::string>> groups = {
        // HNSW: M outside 4 to 256, storage other than Flat.
        {"HNSW1", "HNSW2", "HNSW3", "HNSW257", "HNSW100000", "HNSW99999999999999999999"},
        {"HNSW32,SQ8", "HNSW32_PQ4", "HNSW32,SQfp16", "HNSW32,", "HNSW32,Flat,IDMap"},
        // IVF: lists outside 1 to 65536 or not in digits, quantizers other than a flat one.
        {"IVF0,PQ4", "IVF65537,Flat", "IVF64k,Flat", "IVF1M,Flat", "IVF4", "IVF,Flat", "IVF4,"},
        {"IVF99999999999999999999,Flat", "IVF4_HNSW32,Flat", "IVF4_HNSW0,Flat"},
        {"IVF4(Flat),Flat", "IMI2x4,Flat"},
        // IVF codes: PQ's m not dividing 16, bits outside 1 to 8, codes not served here.
        {"IVF4,PQ3", "IVF4,PQ32", "IVF4,PQ4x9", "IVF4,PQ4x12", "IVF4,PQ", "IVF4,PQ4x"},
        {"IVF4,PQ4x4fs", "IVF4,PQ4+4", "IVF4,FlatDedup", "IVF4,RQ2x8", "IVF4,ITQ,SH"},
        {"IVF4,SQ8_direct", "IVF4,Flat,RFlat"},
        // Training outside IVF, id maps, transforms, refinement, other index families.
        {"SQ8", "SQ4", "PQ4", "PQ3", "PQ4np", "RQ2x8", "LSH", "NSG32", "IDMap,Flat"},
        {"IDMap2,Flat", "Flat,IDMap", "OPQ4,IVF4,PQ4", "PCA8,Flat", "L2norm,Flat", "RR16,Flat"},
        {"Flat,RFlat", "", "flat", " Flat", "Flat ", "Bogus"}};
    for (const auto& group : groups) {
        refused.insert(refused.end(), group.begin(), group.end());
    }
    TempDir dir("factory-refused");
    auto manager = IndexManager::open(dir.path(), IndexDeps{});
    REQUIRE(manager.ok());
    for (const auto& factory : refused) {
        CAPTURE(factory);
        const IndexSettings settings = settings_with("kb", factory);
        Status valid = validate(settings);
        CHECK(valid.code() == StatusCode::kInvalidArgument);
        CHECK(valid.message().find("'" + factory + "'") != std::string::npos);
        auto created = (*manager)->create(settings);
        CHECK(created.status().code() == StatusCode::kInvalidArgument);
        VectorIndexOptions options = vector_options(settings);
        CHECK(VectorIndex::create(options).status().code() == StatusCode::kInvalidArgument);
    }
    CHECK((*manager)->list().empty());
    CHECK(std::filesystem::is_empty(dir.path()));

    // The messages name the part at fault and what is expected.
    auto message = [](const std::string& factory) {
        return validate(settings_with("kb", factory)).message();
    };
    CHECK(message("HNSW0") == "index factory 'HNSW0': HNSW M 0, expected 4 to 256");
    CHECK(message("IVF0,Flat") == "index factory 'IVF0,Flat': IVF nlist 0, expected 1 to 65536");
    CHECK(message("IVF4,PQ3") ==
          "index factory 'IVF4,PQ3': PQ m 3 does not divide the dimension 16");
    CHECK(message("IVF4,PQ4x0") == "index factory 'IVF4,PQ4x0': PQ bits 0, expected 1 to 8");
    CHECK(message("SQ8").find("needs training") != std::string::npos);
    CHECK(message("IDMap,Flat").find("keeps its own id map") != std::string::npos);
    CHECK(message("IVF4_HNSW32,Flat").find("coarse quantizer 'IVF4_HNSW32'") != std::string::npos);
    CHECK(message("Bogus").find("not supported; expected Flat") != std::string::npos);
}

TEST_CASE("an index of the model checks its factory against the model's width once it has it") {
    IndexSettings settings = settings_with("kb", "IVF4,PQ5");
    settings.embedder = "model";
    settings.dimension = kEmbedderDimension;
    CHECK(validate(settings).ok());  // no width yet: 5 may divide it
    settings.factory = "IVF0,Flat";  // wrong whatever the width
    CHECK(validate(settings).code() == StatusCode::kInvalidArgument);
}

TEST_CASE("an upsert into every accepted kind works, and the index reopens with it") {
    const std::vector<std::string> accepted = {
        "Flat",        "SQfp16",   "HNSW",        "HNSW4",         "HNSW32",      "HNSW32,Flat",
        "HNSW16_Flat", "HNSW256",  "IVF1,Flat",   "IVF1,PQ4",      "IVF4,Flat",   "IVF4,PQ4",
        "IVF4,PQ16",   "IVF4,PQ1", "IVF4,PQ8x4",  "IVF4,PQ4x1",    "IVF4,PQ4np",  "IVF4,SQ4",
        "IVF4,SQ6",    "IVF4,SQ8", "IVF4,SQfp16", "IVF65536,Flat", "IVF65536,PQ4"};
    TempDir dir("factory-accepted");
    for (std::size_t run = 0; run < accepted.size(); ++run) {
        const std::string& factory = accepted[run];
        CAPTURE(factory);
        const IndexSettings settings = settings_with("kb", factory);
        REQUIRE_MESSAGE(validate(settings).ok(), validate(settings).to_string());
        const auto root = dir.path() / numbered("run-", static_cast<long long>(run));
        {
            auto manager = IndexManager::open(root, IndexDeps{});
            REQUIRE(manager.ok());
            auto index = (*manager)->create(settings);
            REQUIRE_MESSAGE(index.ok(), index.status().to_string());
            // The reported crashes: HNSW0 on an upsert of 2 rows, IVF0 on one of 300 (IVF
            // trains from 256 vectors).
            auto two = (*index)->upsert(documents(0, 2));
            REQUIRE_MESSAGE(two.ok(), two.status().to_string());
            auto more = (*index)->upsert(documents(2, 298));
            REQUIRE_MESSAGE(more.ok(), more.status().to_string());
            CHECK((*index)->stats().vectors == 300);
            CHECK_FALSE(ann(**index, "document 17 speaks of topic 3").empty());
            REQUIRE((*index)->remove({"doc-1", "doc-2"}).ok());
            CHECK((*index)->stats().vectors == 298);
        }
        // Reopened from the snapshot taken at close, then from the store alone.
        for (bool drop_snapshot : {false, true}) {
            CAPTURE(drop_snapshot);
            if (drop_snapshot) {
                std::filesystem::remove(root / "kb" / "vectors.snap");
            }
            auto manager = IndexManager::open(root, IndexDeps{});
            REQUIRE(manager.ok());
            auto index = (*manager)->get("kb");
            REQUIRE_MESSAGE(index.ok(), index.status().to_string());
            CHECK((*index)->stats().vectors == (drop_snapshot ? 299 : 298));
            CHECK_FALSE(ann(**index, "document 17 speaks of topic 3").empty());
            REQUIRE((*index)->upsert(documents(300, 1)).ok());
        }
    }
}

TEST_CASE("an index stored with a factory string FAISS crashes on is left out when it opens") {
    for (const auto& [made_as, stored_as] :
         std::vector<std::pair<std::string, std::string>>{{"HNSW32", "HNSW0"},
                                                          {"HNSW32", "HNSW1"},
                                                          {"IVF4,Flat", "IVF0,Flat"},
                                                          {"IVF4,PQ4", "IVF4,PQ4x0"}}) {
        CAPTURE(stored_as);
        TempDir dir("factory-stored");
        {
            auto manager = IndexManager::open(dir.path(), IndexDeps{});
            REQUIRE(manager.ok());
            for (const auto& name : {"kb", "fine"}) {
                auto index = (*manager)->create(settings_with(name, made_as));
                REQUIRE_MESSAGE(index.ok(), index.status().to_string());
                REQUIRE((*index)->upsert(documents(0, 300)).ok());
            }
        }
        store_factory(dir.path() / "kb", stored_as);
        // Before, opening built the index from the string and replayed its vectors into it:
        // the process crashed at every start.
        auto manager = IndexManager::open(dir.path(), IndexDeps{});
        REQUIRE(manager.ok());
        CHECK((*manager)->list() == std::vector<std::string>{"fine"});
        auto left_out = (*manager)->get("kb");
        CHECK(left_out.status().code() == StatusCode::kFailedPrecondition);
        CHECK(left_out.status().message().find("index factory '" + stored_as + "'") !=
              std::string::npos);
        auto fine = (*manager)->get("fine");
        REQUIRE(fine.ok());
        CHECK((*fine)->stats().vectors == 300);
    }
}
