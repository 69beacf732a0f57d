// Keeping stored vector indexes and the catalog in step: start-up registration (owners,
// containers, names with no catalog name, idempotence) and creation as a caller (CREATE_TABLE,
// the plain-name schema, undoing the catalog entry when retrieval refuses).
#include "app/index_catalog.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <random>

#include "app/source_catalog.h"

namespace {

using namespace sluice;
using governance::PrincipalKind;
using governance::Privilege;
using governance::SecurableType;

struct Site {
    std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                ("sluice-app-index-catalog-" + std::to_string(std::random_device{}()));
    std::unique_ptr<governance::Governance> gov;
    std::unique_ptr<retrieval::IndexManager> indexes;
    governance::Principal admin, alice;

    Site() {
        std::filesystem::create_directories(dir);
        auto opened = governance::Governance::open(dir);
        REQUIRE(opened.ok());
        gov = std::move(*opened);
        REQUIRE(gov->bootstrap_admin().ok());
        admin = *gov->store().principal("admin");
        alice = *gov->store().create_principal("alice", PrincipalKind::kUser, false);
        auto opened_indexes = retrieval::IndexManager::open(dir / "indexes", {});
        REQUIRE(opened_indexes.ok());
        indexes = std::move(*opened_indexes);
    }
    ~Site() {
        indexes.reset();
        gov.reset();
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    void store_index(const std::string& name) {
        retrieval::IndexSettings settings;
        settings.name = name;
        settings.dimension = 16;
        REQUIRE(indexes->create(settings).ok());
    }
    governance::RequestContext as(const governance::Principal& p) const {
        return {p.id, p.name, "req_test", "127.0.0.1", ""};
    }
};

}  // namespace

TEST_CASE("start-up registers stored indexes, owned by the admin, once") {
    Site site;
    site.store_index("docs");
    site.store_index("kb.hr.policies");
    site.store_index("a.b");  // no catalog name: left out
    REQUIRE(app::register_stored_indexes(*site.gov, *site.indexes).ok());
    auto& store = site.gov->store();
    auto plain = store.securable(SecurableType::kVectorIndex, "vector_search.default.docs");
    REQUIRE(plain.ok());
    CHECK(plain->owner == "admin");
    auto named = store.securable(SecurableType::kVectorIndex, "kb.hr.policies");
    REQUIRE(named.ok());
    CHECK(named->owner == "admin");
    CHECK(store.securable(SecurableType::kSchema, "kb.hr")->owner == "admin");
    CHECK(store.securable(SecurableType::kSchema, "vector_search.default").ok());
    // Idempotent: a second start changes nothing and fails on nothing.
    REQUIRE(app::register_stored_indexes(*site.gov, *site.indexes).ok());
    CHECK(store.list_securables(SecurableType::kVectorIndex, "kb.hr")->size() == 1);
}

TEST_CASE("creating an index needs CREATE_TABLE; a refused retrieval create undoes the entry") {
    Site site;
    retrieval::IndexSettings settings;
    settings.dimension = 16;
    // A plain name by a non-admin while vector_search.default does not exist: nothing to
    // create it in.
    settings.name = "mine";
    CHECK(app::create_index(*site.gov, *site.indexes, site.as(site.alice), settings, "")
              .status()
              .code() == StatusCode::kNotFound);
    // The admin's first plain-named index makes the schema.
    settings.name = "shared";
    auto shared = app::create_index(*site.gov, *site.indexes, site.as(site.admin), settings, "");
    REQUIRE_MESSAGE(shared.ok(), shared.status().to_string());
    CHECK(shared->securable == "vector_search.default.shared");
    // Alice without CREATE_TABLE, then with it.
    settings.name = "mine";
    CHECK(app::create_index(*site.gov, *site.indexes, site.as(site.alice), settings, "")
              .status()
              .code() == StatusCode::kPermissionDenied);
    auto& store = site.gov->store();
    auto schema = store.securable(SecurableType::kSchema, "vector_search.default");
    auto catalog = store.securable(SecurableType::kCatalog, "vector_search");
    REQUIRE(store.update_permissions(catalog->id, SecurableType::kCatalog,
                                     {{"alice", {Privilege::kUseCatalog}, {}}}, site.admin.id)
                .ok());
    REQUIRE(store.update_permissions(schema->id, SecurableType::kSchema,
                                     {{"alice", {Privilege::kUseSchema, Privilege::kCreateTable}, {}}},
                                     site.admin.id)
                .ok());
    auto mine = app::create_index(*site.gov, *site.indexes, site.as(site.alice), settings, "");
    REQUIRE_MESSAGE(mine.ok(), mine.status().to_string());
    CHECK(store.securable(SecurableType::kVectorIndex, "vector_search.default.mine")->owner ==
          "alice");
    // Retrieval already has "late" (stored after start-up): its create fails, and the catalog
    // entry made for it first is gone again.
    site.store_index("late");
    settings.name = "late";
    CHECK(app::create_index(*site.gov, *site.indexes, site.as(site.alice), settings, "")
              .status()
              .code() == StatusCode::kAlreadyExists);
    CHECK(store.securable(SecurableType::kVectorIndex, "vector_search.default.late").status().code() ==
          StatusCode::kNotFound);
    // Dropping needs MANAGE: alice owns hers, not the admin's. (A drop waits for every holder
    // of the index to let go, this test's handles included.)
    mine->index.reset();
    shared->index.reset();
    CHECK(app::drop_index(*site.gov, *site.indexes, site.as(site.alice), "shared").code() ==
          StatusCode::kPermissionDenied);
    REQUIRE(app::drop_index(*site.gov, *site.indexes, site.as(site.alice), "mine").ok());
    CHECK(site.indexes->get("mine").status().code() == StatusCode::kNotFound);
    CHECK(store.securable(SecurableType::kVectorIndex, "vector_search.default.mine").status().code() ==
          StatusCode::kNotFound);
}

TEST_CASE("an index a source feeds is not dropped until the source is gone or bound elsewhere") {
    Site site;
    site.store_index("docs");
    REQUIRE(app::register_stored_indexes(*site.gov, *site.indexes).ok());
    auto& store = site.gov->store();
    REQUIRE(app::ensure_source_schema(store, std::string(app::kDefaultSourceSchema), site.admin.id)
                .ok());
    REQUIRE(app::create_source_object(store, std::string(app::kDefaultSourceSchema), "feed",
                                      site.admin.id, "docs")
                .ok());
    Status refused = app::drop_index(*site.gov, *site.indexes, site.as(site.admin), "docs");
    CHECK(refused.code() == StatusCode::kFailedPrecondition);
    CHECK(refused.message().find("source 'feed'") != std::string::npos);
    CHECK(site.indexes->get("docs").ok());  // listed and whole
    CHECK(store.securable(SecurableType::kVectorIndex, "vector_search.default.docs").ok());

    REQUIRE(app::set_source_index(store, "feed", "").ok());
    REQUIRE(app::drop_index(*site.gov, *site.indexes, site.as(site.admin), "docs").ok());
    CHECK(site.indexes->get("docs").status().code() == StatusCode::kNotFound);
}
