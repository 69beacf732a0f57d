#include "connectors/source_registry.h"

#include <doctest/doctest.h>
#include <sqlite3.h>

#include "connectors_test_support.h"

using namespace sluice::connectors;
using nlohmann::json;
using sluice::Status;
using sluice::StatusCode;
using sluice::testing::TempDir;

TEST_CASE("source registry: add, list, get, remove; secrets are redacted in descriptions") {
    TempDir dir("registry");
    sluice::testing::write_file(dir.path / "docs" / "a.md", "# A");
    std::filesystem::create_directory(dir.path / "data");
    {
        auto registry = SourceRegistry::open(dir.path / "data");
        REQUIRE(registry.ok());
        REQUIRE(
            (*registry)
                ->add({"docs",
                       "file",
                       {{"root", (dir.path / "docs").string()}, {"acl", {{"groups", {"staff"}}}}},
                       ""})
                .ok());
        REQUIRE((*registry)
                    ->add({"crm", "postgres",
                           json::parse(R"({"conninfo": "host=db password=hunter2",
                                           "tables": [{"table": "accounts"}]})"),
                           ""})
                    .ok());
        CHECK((*registry)->add({"docs", "http", json::object(), ""}).code() ==
              StatusCode::kAlreadyExists);
        auto bad = (*registry)->add({"Bad Name", "file", json::object(), ""});
        CHECK(bad.code() == StatusCode::kInvalidArgument);
        auto bad_type = (*registry)->add({"x", "ftp", json::object(), ""});
        CHECK(bad_type.message().starts_with("type"));
        auto bad_config = (*registry)->add({"y", "sqlite", json{{"path", "a.db"}}, ""});
        CHECK(bad_config.message().starts_with("tables"));
    }
    auto registry = SourceRegistry::open(dir.path / "data");
    REQUIRE(registry.ok());
    auto all = (*registry)->list();
    REQUIRE(all.ok());
    REQUIRE(all->size() == 2);
    CHECK((*all)[0].name == "crm");
    CHECK((*all)[0].config["slot"] == "sluice_crm");
    const std::string shown = describe((*all)[0]).dump();
    CHECK(shown.find("hunter2") == std::string::npos);
    CHECK(shown.find("password=***") != std::string::npos);

    auto docs = (*registry)->get("docs");
    REQUIRE(docs.ok());
    auto source = open_source(*docs, (*registry)->state_dir("docs"));
    REQUIRE(source.ok());
    auto batch = (*source)->poll("", {});
    REQUIRE(batch.ok());
    CHECK(batch->events.size() == 1);
    CHECK(open_push_source(*docs, (*registry)->state_dir("docs")).status().code() ==
          StatusCode::kFailedPrecondition);

    REQUIRE((*registry)->remove("docs").ok());
    CHECK((*registry)->get("docs").status().code() == StatusCode::kNotFound);
    CHECK((*registry)->remove("docs").code() == StatusCode::kNotFound);
}

TEST_CASE("source registry: a missing data directory is refused, not created") {
    TempDir dir("registry-missing");
    auto missing = SourceRegistry::open(dir.path / "typo");
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.status().code() == StatusCode::kNotFound);
    CHECK(missing.status().message().find((dir.path / "typo").string()) != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir.path / "typo"));

    sluice::testing::write_file(dir.path / "file", "not a folder");
    CHECK(SourceRegistry::open(dir.path / "file").status().code() ==
          StatusCode::kFailedPrecondition);
}

TEST_CASE("source registry: a file or sqlite source may not read the data directory") {
    TempDir dir("registry-datadir");
    const std::filesystem::path data = dir.path / "data";
    sluice::testing::write_file(data / "catalog.db", "not a database");
    sluice::testing::write_file(dir.path / "data2" / "a.md", "# A");
    sluice::testing::write_file(dir.path / "outside" / "a.md", "# A");
    std::filesystem::create_directory_symlink(data, dir.path / "outside" / "link");
    auto registry = SourceRegistry::open(data);
    REQUIRE(registry.ok());
    const json tables = json::parse(R"([{"table": "t", "acl": {"groups": ["staff"]}}])");
    auto refused = [&](const std::string& kind, const std::string& path) {
        json config = kind == "file" ? json{{"root", path}, {"acl", {{"groups", {"staff"}}}}}
                                     : json{{"path", path}, {"tables", tables}};
        Status added = (*registry)->add({"s", kind, config, ""});
        INFO(kind << " " << path << ": " << added.to_string());
        return added.code() == StatusCode::kInvalidArgument &&
               added.message().find("data directory") != std::string::npos;
    };
    CHECK(refused("file", data.string()));
    CHECK(refused("file", (data / "sources").string()));
    CHECK(refused("file", (dir.path / "outside" / ".." / "data").string()));
    CHECK(refused("file", (dir.path / "outside" / "link").string()));  // a symlink into it
    // A root holding the data directory would read it as one of its folders.
    CHECK(refused("file", dir.path.string()));
    CHECK(refused("file", dir.path.string() + "/"));
    CHECK(refused("file", "/"));
    CHECK(refused("sqlite", (data / "catalog.db").string()));
    CHECK(refused("sqlite", (dir.path / "outside" / "link" / "catalog.db").string()));
    CHECK(refused("sqlite", (data / "not-yet" / ".." / "catalog.db").string()));
    CHECK((*registry)->list()->empty());
    // A sibling whose name starts like the data directory's is outside it.
    CHECK((*registry)
              ->add({"sibling",
                     "file",
                     {{"root", (dir.path / "data2").string()}, {"acl", {{"groups", {"staff"}}}}},
                     ""})
              .ok());
    CHECK((*registry)
              ->validate(
                  {"out",
                   "file",
                   {{"root", (dir.path / "outside").string()}, {"acl", {{"groups", {"staff"}}}}},
                   ""})
              .ok());
    CHECK(reads_server_files("file"));
    CHECK(reads_server_files("sqlite"));
    CHECK_FALSE(reads_server_files("postgres"));
    CHECK_FALSE(reads_server_files("http"));
    // A postgres source without a catalog connection reads with the server's rights: its own
    // PostgreSQL (peer and trust authentication take the server's operating-system user) or any
    // server with the passwords of the server user's ~/.pgpass. With a connection, its
    // allowed_hosts decide where libpq may go.
    auto postgres = [](const std::string& conninfo, const std::string& connection = "") {
        nlohmann::json config = {{"conninfo", conninfo}};
        if (!connection.empty()) {
            config["connection"] = connection;
        }
        return SourceDefinition{"pg", "postgres", config, ""};
    };
    CHECK(reads_server_machine(postgres("host=/var/run/postgresql dbname=crm user=postgres")));
    CHECK(reads_server_machine(postgres("dbname=crm")));  // libpq's default socket
    CHECK(reads_server_machine(postgres("service=crm")));
    CHECK(reads_server_machine(postgres("host=localhost port=5433")));
    CHECK(reads_server_machine(postgres("host=db.example dbname=crm user=sluice")));
    CHECK(reads_server_machine(postgres("postgresql://sluice@db.example:6543/crm")));
    CHECK_FALSE(reads_server_machine(postgres("host=db.example dbname=crm", "crm_db")));
    CHECK_FALSE(reads_server_machine(postgres("host=/var/run/postgresql", "crm_db")));
    CHECK_FALSE(reads_server_machine({"kb", "http", nlohmann::json::object(), ""}));
    CHECK(reads_server_machine({"f", "file", nlohmann::json::object(), ""}));
}

TEST_CASE("source registry: a file or sqlite source must say who reads its documents") {
    TempDir dir("registry-acl");
    sluice::testing::write_file(dir.path / "docs" / "a.md", "# A");
    std::filesystem::create_directory(dir.path / "data");
    auto registry = SourceRegistry::open(dir.path / "data");
    REQUIRE(registry.ok());
    const std::string root = (dir.path / "docs").string();
    Status file = (*registry)->add({"docs", "file", {{"root", root}}, ""});
    CHECK(file.code() == StatusCode::kInvalidArgument);
    CHECK(file.message().starts_with("acl: required"));
    Status sqlite = (*registry)->add(
        {"db", "sqlite",
         json::parse(R"({"path": "x.db", "tables": [{"table": "a", "acl": {"groups": ["g"]}},
                                                      {"table": "b", "acl_groups": "readers"}]})"),
         ""});
    CHECK(sqlite.code() == StatusCode::kInvalidArgument);
    CHECK(sqlite.message().starts_with("tables[1].acl: required"));
    CHECK((*registry)->list()->empty());
    // An explicit empty ACL is a decision: nobody reads them (rows may still name readers).
    CHECK((*registry)
              ->add({"docs", "file",
                     json::parse(R"({"root": ")" + root +
                                 R"(", "acl": {"principals": [], "groups": []}})"),
                     ""})
              .ok());
    CHECK((*registry)
              ->add({"db", "sqlite", json::parse(R"({"path": "x.db", "tables": [{"table": "b",
                                      "acl_groups": "readers", "acl": {}}]})"),
                     ""})
              .ok());
    // Other kinds carry their ACLs in their events or rows as before.
    CHECK((*registry)->add({"kb", "http", json::object(), ""}).ok());
}

TEST_CASE("source registry: a source created again is a new incarnation with a fresh state") {
    TempDir dir("registry-again");
    std::filesystem::create_directory(dir.path / "data");
    auto registry = SourceRegistry::open(dir.path / "data");
    REQUIRE(registry.ok());
    REQUIRE((*registry)->add({"kb", "http", json::object(), ""}).ok());
    auto first = (*registry)->get("kb");
    REQUIRE(first.ok());
    CHECK(first->incarnation.size() == 32);
    CHECK((*registry)->list()->at(0).incarnation == first->incarnation);
    // A name taken keeps its state: adding it again is refused before anything is touched.
    sluice::testing::write_file((*registry)->state_dir("kb") / "push.db", "the push log");
    CHECK((*registry)->add({"kb", "http", json::object(), ""}).code() ==
          StatusCode::kAlreadyExists);
    CHECK(std::filesystem::exists((*registry)->state_dir("kb") / "push.db"));

    REQUIRE((*registry)->remove("kb").ok());
    // What a removed source left behind (its folder could not be deleted then) is not the new
    // source's to resume from.
    sluice::testing::write_file((*registry)->state_dir("kb") / "push.db", "left behind");
    REQUIRE((*registry)->add({"kb", "http", json::object(), ""}).ok());
    auto second = (*registry)->get("kb");
    REQUIRE(second.ok());
    CHECK(second->incarnation.size() == 32);
    CHECK(second->incarnation != first->incarnation);
    CHECK_FALSE(std::filesystem::exists((*registry)->state_dir("kb") / "push.db"));
}

TEST_CASE(
    "source registry: a registry of an older release gains incarnations, empty for its "
    "sources") {
    TempDir dir("registry-old");
    std::filesystem::create_directories(dir.path / "data" / "sources");
    {
        sqlite3* raw = nullptr;
        REQUIRE(sqlite3_open((dir.path / "data" / "sources" / "registry.db").c_str(), &raw) ==
                SQLITE_OK);
        REQUIRE(sqlite3_exec(raw,
                             "CREATE TABLE sources(name TEXT PRIMARY KEY, kind TEXT NOT NULL, "
                             "config TEXT NOT NULL, created_at TEXT NOT NULL);"
                             "INSERT INTO sources VALUES ('old', 'http', '{}', "
                             "'2024-01-01T00:00:00Z')",
                             nullptr, nullptr, nullptr) == SQLITE_OK);
        sqlite3_close(raw);
    }
    for (int open = 0; open < 2; ++open) {  // the column is added once
        auto registry = SourceRegistry::open(dir.path / "data");
        REQUIRE_MESSAGE(registry.ok(), registry.status().to_string());
        auto old = (*registry)->get("old");
        REQUIRE(old.ok());
        CHECK(old->incarnation.empty());
        CHECK(old->created_at == "2024-01-01T00:00:00Z");
    }
    auto registry = SourceRegistry::open(dir.path / "data");
    REQUIRE((*registry)->add({"new", "http", json::object(), ""}).ok());
    CHECK((*registry)->get("new")->incarnation.size() == 32);
}
