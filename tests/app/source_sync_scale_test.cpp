// A 100,000-row SQLite table synced into an index (the weight-free lexical embedder) through the
// real source and the sync engine, then compared with the table exactly: every key once, nothing
// else, and each document's text, metadata and ACL equal to its row. Then a batch of updates,
// deletes, key updates, ACL changes and inserts, and the same comparison again.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "app/source_feed.h"
#include "connectors/sqlite_source.h"
#include "index_contents.h"
#include "retrieval/index.h"
#include "retrieval/sync.h"

namespace {

namespace fs = std::filesystem;
using sluice::retrieval::SourceSync;

constexpr int kRows = 100000;

struct TempDir {
    fs::path path =
        fs::temp_directory_path() / ("sluice-app-scale-" + std::to_string(std::random_device{}()));
    TempDir() { fs::create_directories(path); }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

using Db = std::unique_ptr<sqlite3, decltype(&sqlite3_close)>;

Db open_db(const fs::path& path) {
    sqlite3* raw = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &raw) == SQLITE_OK);
    return Db(raw, &sqlite3_close);
}

void exec(sqlite3* db, const std::string& sql) {
    char* error = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
    std::string message = error != nullptr ? error : "";
    sqlite3_free(error);
    REQUIRE_MESSAGE(rc == SQLITE_OK, sql << ": " << message);
}

// What a row must become in the index. The metadata holds the mapped column, the table and the
// source's name (added by the feed); the ACL is the readers column.
std::string expected_of(const std::string& body, const std::string& team,
                        const std::string& readers) {
    std::vector<std::string> groups;  // the column holds "a,b"
    for (std::size_t begin = 0; begin < readers.size();) {
        const std::size_t comma = std::min(readers.find(',', begin), readers.size());
        groups.push_back(readers.substr(begin, comma - begin));
        begin = comma + 1;
    }
    return sluice::testing::document_line(
        body, {{"source", "big"}, {"table", "docs"}, {"team", team}}, groups);
}

// key -> expected_of(row), read from the table with SQL alone (not through the source).
std::map<std::string, std::string> table_contents(sqlite3* db) {
    std::map<std::string, std::string> out;
    sqlite3_stmt* raw = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, "SELECT id, body, team, readers FROM docs", -1, &raw, nullptr) ==
            SQLITE_OK);
    std::unique_ptr<sqlite3_stmt, decltype(&sqlite3_finalize)> stmt(raw, &sqlite3_finalize);
    auto text = [&](int column) {
        const unsigned char* value = sqlite3_column_text(stmt.get(), column);
        return std::string(value != nullptr ? reinterpret_cast<const char*>(value) : "");
    };
    while (sqlite3_step(stmt.get()) == SQLITE_ROW) {
        out["docs/" + text(0)] = expected_of(text(1), text(2), text(3));
    }
    return out;
}

void check_same(sqlite3* db, const sluice::retrieval::Index& index) {
    sluice::testing::check_index_holds(index, table_contents(db));
}

}  // namespace

TEST_CASE(
    "sqlite through the sync engine: a 100,000-row table, then updates, deletes, key "
    "updates and ACL changes, end equal to the table") {
    TempDir dir;
    Db db = open_db(dir.path / "big.db");
    // Bodies differ by row and share words, so that the lexical index has real postings.
    exec(db.get(),
         "CREATE TABLE docs(id INTEGER PRIMARY KEY, body TEXT NOT NULL, team TEXT, readers TEXT);"
         "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " +
             std::to_string(kRows) +
             ") INSERT INTO docs SELECT i, 'record ' || i || ' about topic ' || (i % 97) || "
             "' filed by team ' || (i % 7), 'team' || (i % 7), "
             "CASE i % 3 WHEN 0 THEN 'staff' WHEN 1 THEN 'staff,eng' ELSE 'sales' END FROM n;");

    sluice::connectors::SqliteSourceConfig config;
    config.path = (dir.path / "big.db").string();
    config.tables.resize(1);
    config.tables[0].table = "docs";
    config.tables[0].mapping.text = {"body"};
    config.tables[0].mapping.metadata = {"team"};
    config.tables[0].mapping.acl_groups = "readers";
    auto source = sluice::connectors::SqliteSource::open(config);
    REQUIRE_MESSAGE(source.ok(), source.status().to_string());
    std::shared_ptr<sluice::connectors::Source> shared = std::move(source).value();

    sluice::retrieval::IndexSettings settings;
    settings.name = "big";
    auto index = sluice::retrieval::Index::create(dir.path / "index", settings, {});
    REQUIRE_MESSAGE(index.ok(), index.status().to_string());
    std::shared_ptr<sluice::retrieval::Index> held = std::move(index).value();
    auto sync =
        SourceSync::open("big", held, std::make_unique<sluice::app::SourceFeed>("big", shared),
                         sluice::retrieval::SyncOptions{});
    REQUIRE_MESSAGE(sync.ok(), sync.status().to_string());

    auto initial = (*sync)->run_to_caught_up();
    REQUIRE_MESSAGE(initial.ok(), initial.status().to_string());
    CHECK(initial->caught_up);
    CHECK((*sync)->status().error_records == 0);
    check_same(db.get(), *held);

    // One transaction of every kind of change, spread over the table.
    exec(db.get(),
         "BEGIN;"
         "UPDATE docs SET body = body || ' revised' WHERE id % 101 = 0;"
         "DELETE FROM docs WHERE id % 103 = 1;"
         "UPDATE docs SET id = id + 1000000 WHERE id % 107 = 2;"
         "UPDATE docs SET readers = 'auditors' WHERE id % 109 = 3;"
         "UPDATE docs SET team = 'team-moved', readers = '' WHERE id % 113 = 4;"
         "INSERT INTO docs SELECT id + 2000000, 'inserted ' || body, team, readers FROM docs "
         "WHERE id % 127 = 5;"
         "UPDATE docs SET body = 'restored' WHERE id IN (SELECT id FROM docs WHERE id % 131 = 6);"
         "COMMIT;");
    auto changed = (*sync)->run_to_caught_up();
    REQUIRE_MESSAGE(changed.ok(), changed.status().to_string());
    CHECK(changed->caught_up);
    check_same(db.get(), *held);

    // An ACL change is seen by queries: a row moved to 'auditors' is found by an auditor only.
    const std::string key = "docs/" + std::to_string(109 * 5 + 3);
    auto moved = held->chunks_of(key);
    REQUIRE(moved.ok());
    REQUIRE(moved->size() == 1);
    sluice::retrieval::Query query;
    query.text = (*moved)[0].text;
    query.k = 5;
    query.mode = sluice::retrieval::QueryMode::kLexical;
    auto auditor = held->query(query, sluice::retrieval::Reader{"amy", {"auditors"}});
    REQUIRE(auditor.ok());
    REQUIRE_FALSE(auditor->empty());
    CHECK((*auditor)[0].chunk.doc_key == key);
    auto staff = held->query(query, sluice::retrieval::Reader{"sam", {"staff", "eng", "sales"}});
    REQUIRE(staff.ok());
    for (const auto& hit : *staff) {
        CHECK(hit.chunk.doc_key != key);
    }
}
