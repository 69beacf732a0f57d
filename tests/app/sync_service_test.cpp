// Sources as catalog objects in a running SyncService: a bindings file of an older release moves
// into the catalog at start; sources created, re-bound, unbound and removed while it runs start
// and stop their syncs without a restart; creating and binding are governed.
#include "app/sync_service.h"

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "app/source_catalog.h"
#include "governance/governance.h"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;
using sluice::StatusCode;
using sluice::governance::Privilege;
using sluice::governance::SecurableType;

struct TempDir {
    fs::path path = fs::temp_directory_path() /
                    ("sluice-app-syncsvc-" + std::to_string(std::random_device{}()));
    TempDir() { fs::create_directories(path); }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

struct World {
    TempDir dir;
    std::unique_ptr<sluice::governance::Governance> gov;
    std::unique_ptr<sluice::retrieval::IndexManager> indexes;
    sluice::governance::RequestContext admin;

    World() {
        auto opened = sluice::governance::Governance::open(dir.path);
        REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
        gov = std::move(opened).value();
        REQUIRE(gov->bootstrap_admin().ok());
        auto manager = sluice::retrieval::IndexManager::open(dir.path / "indexes", {});
        REQUIRE(manager.ok());
        indexes = std::move(manager).value();
        admin = context_of("admin");
    }
    sluice::governance::RequestContext context_of(const std::string& name) {
        auto principal = gov->store().principal(name);
        if (!principal.ok()) {
            principal = gov->store().create_principal(
                name, sluice::governance::PrincipalKind::kUser, false);
        }
        REQUIRE(principal.ok());
        sluice::governance::RequestContext context;
        context.principal_id = principal->id;
        context.principal = name;
        context.request_id = "req-test";
        return context;
    }
    void define(const std::string& name) {
        auto registry = sluice::connectors::SourceRegistry::open(dir.path);
        REQUIRE(registry.ok());
        REQUIRE((*registry)->add({name, "http", json::object(), ""}).ok());
    }
    // USE_CATALOG on main, USE_SCHEMA and CREATE_TABLE on main.sources.
    void allow_create_table(const std::string& who) {
        auto& store = gov->store();
        auto catalog = store.securable(SecurableType::kCatalog, "main");
        auto schema = store.securable(SecurableType::kSchema, "main.sources");
        REQUIRE(catalog.ok());
        REQUIRE(schema.ok());
        REQUIRE(store
                    .update_permissions(catalog->id, SecurableType::kCatalog,
                                        {{who, {Privilege::kUseCatalog}, {}}}, admin.principal_id)
                    .ok());
        REQUIRE(
            store
                .update_permissions(schema->id, SecurableType::kSchema,
                                    {{who, {Privilege::kUseSchema, Privilege::kCreateTable}, {}}},
                                    admin.principal_id)
                .ok());
    }
    std::unique_ptr<sluice::app::SyncService> service() {
        auto opened = sluice::app::SyncService::open(dir.path, *indexes, *gov);
        REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
        return std::move(opened).value();
    }
};

json sync_of(sluice::app::SyncService& service, const sluice::governance::RequestContext& who,
             const std::string& name) {
    auto described = service.describe(who, name);
    REQUIRE_MESSAGE(described.ok(), described.status().to_string());
    return (*described)["sync"];
}

// Runs one statement on its own connection; for a count query, returns the count.
std::int64_t sql_count(const fs::path& path, const std::string& sql) {
    sqlite3* raw = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &raw) == SQLITE_OK);
    std::unique_ptr<sqlite3, decltype(&sqlite3_close)> db(raw, &sqlite3_close);
    sqlite3_stmt* stmt = nullptr;
    REQUIRE(sqlite3_prepare_v2(db.get(), sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK);
    std::int64_t value = 0;
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        value = sqlite3_column_int64(stmt, 0);
    }
    sqlite3_finalize(stmt);
    return value;
}

// Pushes one upsert of `key` into the http source `name`.
void push(sluice::app::SyncService& service, const std::string& name, const std::string& key) {
    auto source = service.push_source(name);
    REQUIRE_MESSAGE(source.ok(), source.status().to_string());
    const json body = {
        {"events",
         {{{"key", key},
           {"op", "upsert"},
           {"document", {{"text", "text of " + key}, {"acl", {{"groups", {"staff"}}}}}}}}}};
    auto ingested = (*source)->ingest("push-" + key, body);
    REQUIRE_MESSAGE(ingested.ok(), ingested.status().to_string());
}

// Waits (a few seconds at most) until the sync of `name` has applied `changes` changes.
json wait_for_changes(sluice::app::SyncService& service,
                      const sluice::governance::RequestContext& who, const std::string& name,
                      std::uint64_t changes) {
    json sync;
    for (int i = 0; i < 250; ++i) {
        sync = sync_of(service, who, name);
        if (sync.is_object() && sync["changes"] == changes && sync["state"] == "caught_up") {
            break;
        }
        std::this_thread::sleep_for(20ms);
    }
    return sync;
}

}  // namespace

TEST_CASE("a source removed and created again under its name starts afresh") {
    World world;
    auto service = world.service();
    service->start(1h);  // reconciled by the calls below only
    REQUIRE(sluice::app::ensure_source_schema(world.gov->store(), "main.sources",
                                              world.admin.principal_id)
                .ok());
    const json body = {
        {"name", "kb"}, {"type", "http"}, {"schema", "main.sources"}, {"index", "articles"}};
    REQUIRE(service->create(world.admin, body).ok());
    push(*service, "kb", "kb/1");
    push(*service, "kb", "kb/2");
    json old = wait_for_changes(*service, world.admin, "kb", 2);
    REQUIRE(old["changes"] == 2);
    CHECK(old["checkpoint"] == R"({"seq":2,"v":1})");

    SUBCASE("through the service") {
        REQUIRE(service->remove(world.admin, "kb").ok());
        auto created = service->create(world.admin, body);
        REQUIRE_MESSAGE(created.ok(), created.status().to_string());
    }
    SUBCASE("by the offline CLI, between two reconciles") {
        auto registry = sluice::connectors::SourceRegistry::open(world.dir.path);
        REQUIRE(registry.ok());
        REQUIRE((*registry)->remove("kb").ok());
        REQUIRE(sluice::app::drop_source_object(world.gov->store(), "kb").ok());
        REQUIRE((*registry)->add({"kb", "http", json::object(), ""}).ok());
        REQUIRE(sluice::app::create_source_object(world.gov->store(), "main.sources", "kb",
                                                  world.admin.principal_id, "articles")
                    .ok());
        REQUIRE(service->reconcile().ok());
    }
    json fresh = sync_of(*service, world.admin, "kb");
    REQUIRE(fresh.is_object());
    CHECK(fresh["changes"] == 0);
    CHECK(fresh["error_records"] == 0);
    CHECK(fresh["recent_errors"].empty());
    CHECK(fresh["last_error"].is_null());
    CHECK(fresh["checkpoint"] != old["checkpoint"]);  // "", or {"seq":0} once it polled
    // The new source's first event (seq 1 of its own log) is applied, not taken for one the
    // old source's checkpoint already covers.
    push(*service, "kb", "kb/new");
    json synced = wait_for_changes(*service, world.admin, "kb", 1);
    CHECK(synced["changes"] == 1);
    CHECK(synced["checkpoint"] == R"({"seq":1,"v":1})");
    service->stop();
}

TEST_CASE("creating a source creates its schema when missing, as `sluice source add` does") {
    World world;
    auto service = world.service();
    auto& store = world.gov->store();
    // No schema named: the default one, created with its catalog and owned by the caller.
    auto created = service->create(world.admin, {{"name", "kb"}, {"type", "http"}});
    REQUIRE_MESSAGE(created.ok(), created.status().to_string());
    CHECK((*created)["catalog_name"] == "main.sources.kb");
    CHECK((*created)["owner"] == "admin");
    auto schema = store.securable(SecurableType::kSchema, "main.sources");
    REQUIRE(schema.ok());
    CHECK(schema->owner == "admin");

    // Someone who may not create the schema gets nothing, not even its catalog.
    auto bob = world.context_of("bob");
    auto denied =
        service->create(bob, {{"name", "bobs"}, {"type", "http"}, {"schema", "bob.feeds"}});
    CHECK(denied.status().code() == StatusCode::kPermissionDenied);
    CHECK(store.securable(SecurableType::kCatalog, "bob").status().code() == StatusCode::kNotFound);
    denied = service->create(bob, {{"name", "bobs"}, {"type", "http"}, {"schema", "main.bobs"}});
    CHECK(denied.status().code() == StatusCode::kPermissionDenied);
    CHECK_FALSE(store.securable(SecurableType::kSchema, "main.bobs").ok());
    CHECK_FALSE(sluice::app::find_source_object(store, "bobs").ok());

    // CREATE_SCHEMA on the catalog is enough: bob owns the schema he makes, and the source.
    auto catalog = store.securable(SecurableType::kCatalog, "main");
    REQUIRE(catalog.ok());
    REQUIRE(
        store
            .update_permissions(catalog->id, SecurableType::kCatalog,
                                {{"bob", {Privilege::kUseCatalog, Privilege::kCreateSchema}, {}}},
                                world.admin.principal_id)
            .ok());
    auto bobs = service->create(bob, {{"name", "bobs"}, {"type", "http"}, {"schema", "main.bobs"}});
    REQUIRE_MESSAGE(bobs.ok(), bobs.status().to_string());
    CHECK((*bobs)["catalog_name"] == "main.bobs.bobs");
    CHECK((*bobs)["owner"] == "bob");
    CHECK(store.securable(SecurableType::kSchema, "main.bobs")->owner == "bob");
    // An invalid definition creates no schema either.
    auto invalid =
        service->create(world.admin, {{"name", "bad"}, {"type", "ftp"}, {"schema", "main.never"}});
    CHECK(invalid.status().code() == StatusCode::kInvalidArgument);
    CHECK_FALSE(store.securable(SecurableType::kSchema, "main.never").ok());
}

TEST_CASE("a bindings file moves into the catalog when the service opens") {
    World world;
    world.define("kb");
    world.define("loose");
    fs::create_directories(world.dir.path / "sources");
    {
        std::ofstream out(world.dir.path / "sources" / "bindings.json");
        out << R"({"version": 1, "bindings": {"kb": "articles"}})";
    }
    auto service = world.service();
    auto kb = sluice::app::find_source_object(world.gov->store(), "kb");
    REQUIRE_MESSAGE(kb.ok(), kb.status().to_string());
    CHECK(kb->full_name == "main.sources.kb");
    CHECK(kb->index == "articles");
    CHECK(kb->owner == "admin");
    auto loose = sluice::app::find_source_object(world.gov->store(), "loose");
    REQUIRE(loose.ok());
    CHECK(loose->index.empty());
    CHECK_FALSE(fs::exists(world.dir.path / "sources" / "bindings.json"));
    CHECK(fs::exists(world.dir.path / "sources" / "bindings.json.migrated"));
    // The bound source syncs; the unbound one does not.
    json kb_sync = sync_of(*service, world.admin, "kb");
    REQUIRE(kb_sync.is_object());
    CHECK(kb_sync["index"] == "articles");
    CHECK(sync_of(*service, world.admin, "loose").is_null());
    // The index was created by the sync.
    CHECK(world.indexes->get("articles").ok());

    // A second open finds nothing to migrate and the same catalog.
    service.reset();
    auto again = world.service();
    CHECK(sluice::app::list_source_objects(world.gov->store())->size() == 2);
}

TEST_CASE("sources created, re-bound, unbound and removed while running start and stop syncs") {
    World world;
    auto service = world.service();
    service->start(50ms);
    REQUIRE(sluice::app::ensure_source_schema(world.gov->store(), "main.sources",
                                              world.admin.principal_id)
                .ok());
    auto created = service->create(world.admin, {{"name", "kb"},
                                                 {"type", "http"},
                                                 {"schema", "main.sources"},
                                                 {"index", "articles"}});
    REQUIRE_MESSAGE(created.ok(), created.status().to_string());
    CHECK((*created)["catalog_name"] == "main.sources.kb");
    REQUIRE((*created)["sync"].is_object());
    CHECK((*created)["sync"]["index"] == "articles");
    // The index the sync created is in the catalog at once, not at the next start.
    CHECK(world.gov->store()
              .securable(sluice::governance::SecurableType::kVectorIndex,
                         "vector_search.default.articles")
              .ok());
    // An index name the catalog cannot name (two dotted parts) could never be queried.
    auto unreachable = service->create(
        world.admin,
        {{"name", "kb2"}, {"type", "http"}, {"schema", "main.sources"}, {"index", "a.b"}});
    CHECK(unreachable.status().code() == StatusCode::kInvalidArgument);
    CHECK(service->alter(world.admin, "kb", {{"index", "a.b"}}).status().code() ==
          StatusCode::kInvalidArgument);

    auto rebound = service->alter(world.admin, "kb", {{"index", "other"}});
    REQUIRE_MESSAGE(rebound.ok(), rebound.status().to_string());
    CHECK((*rebound)["sync"]["index"] == "other");

    auto unbound = service->alter(world.admin, "kb", {{"index", nullptr}});
    REQUIRE(unbound.ok());
    CHECK((*unbound)["sync"].is_null());
    CHECK(service->wake("kb").code() == StatusCode::kFailedPrecondition);

    // A change made behind the service's back (the offline CLI) is picked up by its
    // periodic reconcile.
    REQUIRE(sluice::app::set_source_index(world.gov->store(), "kb", "articles").ok());
    bool picked_up = false;
    for (int i = 0; i < 100 && !picked_up; ++i) {
        std::this_thread::sleep_for(20ms);
        picked_up = sync_of(*service, world.admin, "kb").is_object();
    }
    CHECK(picked_up);
    CHECK(service->wake("kb").ok());

    REQUIRE(service->remove(world.admin, "kb").ok());
    CHECK(service->describe(world.admin, "kb").status().code() == StatusCode::kNotFound);
    CHECK(sluice::app::find_source_object(world.gov->store(), "kb").status().code() ==
          StatusCode::kNotFound);
    service->stop();
}

TEST_CASE("the sync section of the configuration reaches every source's sync engine") {
    CHECK(sluice::app::sync_options(sluice::app::Config{}.sync).pipeline_depth == 2);
    auto config = sluice::app::parse_config(
        R"({"sync": {"pipeline_depth": 5, "max_batch": 40, "idle_wait_s": 0.25}})", "test.json");
    REQUIRE_MESSAGE(config.ok(), config.status().to_string());
    const sluice::retrieval::SyncOptions options = sluice::app::sync_options(config->sync);
    CHECK(options.pipeline_depth == 5);
    CHECK(options.max_batch == 40);
    CHECK(options.idle_wait == 250ms);

    World world;
    auto opened = sluice::app::SyncService::open(world.dir.path, *world.indexes, *world.gov,
                                                 options);
    REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
    auto& service = **opened;
    REQUIRE(sluice::app::ensure_source_schema(world.gov->store(), "main.sources",
                                              world.admin.principal_id)
                .ok());
    auto created = service.create(world.admin, {{"name", "kb"},
                                                {"type", "http"},
                                                {"schema", "main.sources"},
                                                {"index", "articles"}});
    REQUIRE_MESSAGE(created.ok(), created.status().to_string());
    CHECK((*created)["sync"]["pipeline_depth"] == 5);
    CHECK(sync_of(service, world.admin, "kb")["pipeline_depth"] == 5);
}

TEST_CASE("creating needs CREATE_TABLE on the schema; feeding an index needs MODIFY on it; "
          "changing a source needs MANAGE") {
    World world;
    auto service = world.service();
    REQUIRE(sluice::app::ensure_source_schema(world.gov->store(), "main.sources",
                                              world.admin.principal_id)
                .ok());
    auto bob = world.context_of("bob");
    json body{{"name", "bobs"}, {"type", "http"}, {"schema", "main.sources"}};
    CHECK(service->create(bob, body).status().code() == StatusCode::kPermissionDenied);

    world.allow_create_table("bob");
    // An index outside the catalog: only admins may feed it.
    json bound = body;
    bound["index"] = "articles";
    CHECK(service->create(bob, bound).status().code() == StatusCode::kPermissionDenied);
    CHECK_FALSE(sluice::app::find_source_object(world.gov->store(), "bobs").ok());

    // A member the service does not read is refused, not dropped: a misspelt "index" made an
    // unbound source, a misspelt "schema" put it in main.sources.
    json misspelt = body;
    misspelt["indx"] = "articles";
    auto refused = service->create(bob, misspelt);
    CHECK(refused.status().code() == StatusCode::kInvalidArgument);
    CHECK(refused.status().message().find("'indx'") != std::string::npos);
    CHECK_FALSE(sluice::app::find_source_object(world.gov->store(), "bobs").ok());

    auto created = service->create(bob, body);
    REQUIRE_MESSAGE(created.ok(), created.status().to_string());
    CHECK((*created)["owner"] == "bob");
    CHECK(service->alter(world.admin, "bobs", {{"index", "articles"}, {"schema", "x.y"}})
              .status()
              .code() == StatusCode::kInvalidArgument);
    CHECK(service->alter(bob, "bobs", {{"index", "articles"}}).status().code() ==
          StatusCode::kPermissionDenied);
    REQUIRE(service->alter(world.admin, "bobs", {{"index", "articles"}}).ok());
    // Bob owns it: he may push into it and unbind it; carol may not even see it.
    CHECK(service->authorize_write(bob, "bobs").ok());
    // To her it is a source that does not exist, as to the listing: names cannot be probed.
    auto carol = world.context_of("carol");
    auto unseen = [&](const sluice::Status& status, const std::string& name = "bobs") {
        return status.code() == StatusCode::kNotFound &&
               status.message() == "source '" + name + "' does not exist";
    };
    CHECK(unseen(service->authorize_write(carol, "bobs")));
    CHECK(unseen(service->describe(carol, "bobs").status()));
    CHECK(unseen(service->authorize_write(carol, "nobody"), "nobody"));
    CHECK(unseen(service->describe(carol, "nobody").status(), "nobody"));
    CHECK((*service->describe(carol))["sources"].empty());
    CHECK(unseen(service->alter(carol, "bobs", {{"index", nullptr}}).status()));
    CHECK(unseen(service->remove(carol, "bobs").status()));
    // A source defined after the service opened is not in the catalog until an admin owns it:
    // to her it is missing like a name never defined; an admin is told which it is.
    world.define("late");
    CHECK(unseen(service->alter(carol, "late", {{"index", nullptr}}).status(), "late"));
    CHECK(unseen(service->alter(carol, "nobody", {{"index", nullptr}}).status(), "nobody"));
    auto late = service->alter(world.admin, "late", {{"index", nullptr}});
    CHECK(late.status().code() == StatusCode::kNotFound);
    CHECK(late.status().message() == "source 'late' is not in the catalog");
    CHECK(unseen(service->alter(world.admin, "nobody", {{"index", nullptr}}).status(), "nobody"));
    // Once she may see it, what she may not do is a denial.
    world.allow_create_table("carol");
    auto main = world.gov->store().securable(SecurableType::kCatalog, "main");
    REQUIRE(world.gov->store()
                .update_permissions(main->id, SecurableType::kCatalog,
                                    {{"carol", {Privilege::kBrowse}, {}}}, world.admin.principal_id)
                .ok());
    CHECK(service->describe(carol, "bobs").ok());
    CHECK(service->authorize_write(carol, "bobs").code() == StatusCode::kPermissionDenied);
    CHECK(service->remove(carol, "bobs").status().code() == StatusCode::kPermissionDenied);
    REQUIRE(service->alter(bob, "bobs", {{"index", nullptr}}).ok());
    REQUIRE(service->remove(bob, "bobs").ok());
}

TEST_CASE(
    "a source that reads the server's files needs a metastore admin, and never reads the "
    "data directory") {
    World world;
    auto service = world.service();
    REQUIRE(sluice::app::ensure_source_schema(world.gov->store(), "main.sources",
                                              world.admin.principal_id)
                .ok());
    auto bob = world.context_of("bob");
    world.allow_create_table("bob");
    TempDir outside;
    fs::create_directories(outside.path / "docs");
    const json acl{{"groups", {"staff"}}};
    auto file_body = [&](const std::string& name, const fs::path& root) {
        return json{{"name", name},
                    {"type", "file"},
                    {"schema", "main.sources"},
                    {"config", {{"root", root.string()}, {"acl", acl}}}};
    };
    auto sqlite_body = [&](const std::string& name, const fs::path& path) {
        return json{
            {"name", name},
            {"type", "sqlite"},
            {"schema", "main.sources"},
            {"config", {{"path", path.string()}, {"tables", {{{"table", "t"}, {"acl", acl}}}}}}};
    };
    // CREATE_TABLE on the schema is not enough: the path would be read with the server's rights.
    auto denied = service->create(bob, file_body("bobfiles", outside.path / "docs"));
    CHECK(denied.status().code() == StatusCode::kPermissionDenied);
    CHECK(denied.status().message().find("metastore admin") != std::string::npos);
    CHECK(service->create(bob, sqlite_body("bobdb", world.dir.path / "governance" / "catalog.db"))
              .status()
              .code() == StatusCode::kPermissionDenied);
    CHECK_FALSE(sluice::app::find_source_object(world.gov->store(), "bobfiles").ok());
    CHECK_FALSE(sluice::app::find_source_object(world.gov->store(), "bobdb").ok());
    // A postgres source reaching this machine's own PostgreSQL (a Unix socket, where peer or
    // trust authentication takes the server's user) is the same: it used to read any table the
    // server's user could, into bob's index.
    auto postgres_body = [&](const std::string& name, const std::string& conninfo) {
        return json{{"name", name},
                    {"type", "postgres"},
                    {"schema", "main.sources"},
                    {"config", {{"conninfo", conninfo}, {"tables", {{{"table", "public.t"}}}}}}};
    };
    CHECK(service->create(bob, postgres_body("bobpg", "host=/var/run/postgresql dbname=x"))
              .status()
              .code() == StatusCode::kPermissionDenied);
    CHECK(service->create(bob, postgres_body("bobpg", "dbname=x")).status().code() ==
          StatusCode::kPermissionDenied);
    // Without a connection, libpq takes the server's ~/.pgpass to any server named: the same.
    CHECK(
        service->create(bob, postgres_body("bobpg", "host=db.example dbname=x")).status().code() ==
        StatusCode::kPermissionDenied);
    CHECK_FALSE(sluice::app::find_source_object(world.gov->store(), "bobpg").ok());
    // An http source reads nothing of the machine: CREATE_TABLE suffices.
    REQUIRE(
        service->create(bob, {{"name", "bobpush"}, {"type", "http"}, {"schema", "main.sources"}})
            .ok());

    // Not even an admin may point a source into the data directory, however the path is spelt.
    for (const fs::path& inside : {world.dir.path, world.dir.path / "sources",
                                   outside.path / ".." / world.dir.path.filename()}) {
        auto refused = service->create(world.admin, file_body("inside", inside));
        CHECK_MESSAGE(refused.status().code() == StatusCode::kInvalidArgument, inside.string());
        CHECK(refused.status().message().find("data directory") != std::string::npos);
    }
    fs::create_directory_symlink(world.dir.path, outside.path / "link");
    CHECK(service->create(world.admin, sqlite_body("inside", outside.path / "link" / "catalog.db"))
              .status()
              .code() == StatusCode::kInvalidArgument);
    CHECK_FALSE(sluice::app::find_source_object(world.gov->store(), "inside").ok());

    auto created = service->create(world.admin, file_body("files", outside.path / "docs"));
    REQUIRE_MESSAGE(created.ok(), created.status().to_string());
    // Managing the source is not enough to change it either.
    auto table = world.gov->store().securable(SecurableType::kTable, "main.sources.files");
    REQUIRE(table.ok());
    REQUIRE(world.gov->store()
                .update_permissions(table->id, SecurableType::kTable,
                                    {{"bob", {Privilege::kManage}, {}}}, world.admin.principal_id)
                .ok());
    CHECK(service->alter(bob, "files", {{"index", nullptr}}).status().code() ==
          StatusCode::kPermissionDenied);
    CHECK(service->alter(world.admin, "files", {{"index", "articles"}}).ok());
}

TEST_CASE("removing a sqlite source drops the change capture it installed in the database") {
    World world;
    TempDir outside;  // a source never reads the data directory
    const fs::path db = outside.path / "user.sqlite";
    sql_count(db, "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)");
    const std::string installed =
        "SELECT count(*) FROM sqlite_master WHERE name LIKE '\\_sluice\\_%' ESCAPE '\\'";
    auto service = world.service();
    service->start(50ms);
    REQUIRE(sluice::app::ensure_source_schema(world.gov->store(), "main.sources",
                                              world.admin.principal_id)
                .ok());
    const json table = {{"table", "notes"}, {"acl", {{"groups", {"staff"}}}}};
    const json config = {{"path", db.string()}, {"tables", json::array({table})}};
    auto created = service->create(world.admin, {{"name", "notes"},
                                                 {"type", "sqlite"},
                                                 {"schema", "main.sources"},
                                                 {"index", "articles"},
                                                 {"config", config}});
    REQUIRE_MESSAGE(created.ok(), created.status().to_string());
    CHECK(sql_count(db, installed) == 5);  // three triggers, the change and state tables

    auto removed = service->remove(world.admin, "notes");
    REQUIRE_MESSAGE(removed.ok(), removed.status().to_string());
    CHECK(removed->empty());
    CHECK(sql_count(db, installed) == 0);
    service->stop();
}
