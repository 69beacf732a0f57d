#include "connectors/sqlite_source.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "connectors/detail/sqlite_util.h"
#include "connectors_test_support.h"

using namespace sluice::connectors;
using sluice::StatusCode;
using sluice::testing::drain;
using sluice::testing::TempDir;
using nlohmann::json;

namespace {

struct Database {
    TempDir dir{"sqlite"};
    std::string path;
    detail::Db db;

    explicit Database(const std::string& shared_file) {
        path = (dir.path / "db.sqlite").string();
        if (!shared_file.empty()) {
            std::filesystem::copy_file(sluice::testing::shared_data(shared_file), path);
            std::filesystem::permissions(path, std::filesystem::perms::owner_read |
                                                   std::filesystem::perms::owner_write);
        }
        auto opened = detail::open_db(path, /*create=*/true);
        REQUIRE(opened.ok());
        db = std::move(*opened);
    }

    void exec(const std::string& sql) {
        auto status = detail::exec(db.get(), sql);
        REQUIRE_MESSAGE(status.ok(), status.to_string());
    }

    std::int64_t count(const std::string& sql) {
        auto stmt = detail::prepare(db.get(), sql);
        REQUIRE(stmt.ok());
        REQUIRE(sqlite3_step(stmt->get()) == SQLITE_ROW);
        return sqlite3_column_int64(stmt->get(), 0);
    }
};

SqliteSourceConfig chinook_config(const std::string& path) {
    SqliteSourceConfig config;
    config.path = path;
    SqliteTableConfig track;
    track.table = "Track";
    track.mapping.text = {"Name", "Composer"};
    track.mapping.metadata = {"AlbumId", "GenreId", "UnitPrice"};
    track.mapping.default_acl.groups = {"music"};
    SqliteTableConfig artist;
    artist.table = "Artist";
    artist.mapping.text = {"Name"};
    config.tables = {track, artist};
    return config;
}

std::map<std::string, std::string> snapshot_state(Source& source) {
    std::map<std::string, std::string> state;
    sluice::testing::apply(state, drain(source, "", 700).events);
    return state;
}

std::vector<std::string> describe(const std::vector<ChangeEvent>& events) {
    std::vector<std::string> out;
    for (const auto& event : events) {
        out.push_back(std::string(op_name(event.op)) + " " + event.key + " @" + event.offset);
    }
    return out;
}

}  // namespace

TEST_CASE("sqlite source: chinook snapshot, then inserts, updates, deletes and key updates") {
    Database database("chinook/Chinook_Sqlite.sqlite");
    auto source = SqliteSource::open(chinook_config(database.path));
    REQUIRE_MESSAGE(source.ok(), source.status().to_string());

    auto snapshot = drain(**source, "", 500);
    const auto tracks = database.count("SELECT count(*) FROM Track");
    const auto artists = database.count("SELECT count(*) FROM Artist");
    CHECK(tracks == 3503);
    CHECK(snapshot.events.size() == static_cast<std::size_t>(tracks + artists));
    CHECK(snapshot.batches > 2);
    std::set<std::string> keys;
    for (const auto& event : snapshot.events) {
        CHECK(event.op == Op::kUpsert);
        keys.insert(event.key);
    }
    CHECK(keys.size() == snapshot.events.size());
    const ChangeEvent& first = snapshot.events.front();
    CHECK(first.key == "Track/1");
    CHECK(first.document.text ==
          "Name: For Those About To Rock (We Salute You)\n"
          "Composer: Angus Young, Malcolm Young, Brian Johnson\n");
    CHECK(first.document.metadata["table"] == "Track");
    CHECK(first.document.metadata["AlbumId"] == 1);
    CHECK(first.document.metadata["UnitPrice"] == 0.99);
    CHECK(first.document.acl.groups == std::vector<std::string>{"music"});
    CHECK(snapshot.events.back().key == "Artist/275");
    CHECK(snapshot.events.back().document.text == "Philip Glass Ensemble");

    database.exec("INSERT INTO Track(TrackId, Name, MediaTypeId, Milliseconds, UnitPrice) "
                  "VALUES (5000, 'New Song', 1, 1000, 1.29)");
    database.exec("UPDATE Track SET Name = 'Renamed' WHERE TrackId = 2");
    database.exec("DELETE FROM Track WHERE TrackId = 3");
    database.exec("UPDATE Track SET TrackId = 100000 WHERE TrackId = 1");
    database.exec("UPDATE Artist SET Name = Name || '!' WHERE ArtistId <= 3");

    auto changes = drain(**source, snapshot.checkpoint, 4);
    CHECK(describe(changes.events) ==
          std::vector<std::string>{
              "upsert Track/5000 @seq:1", "upsert Track/2 @seq:2", "delete Track/3 @seq:3",
              "delete Track/1 @seq:4", "upsert Track/100000 @seq:5",
              "upsert Artist/1 @seq:6", "upsert Artist/2 @seq:7", "upsert Artist/3 @seq:8"});
    CHECK(changes.events[1].document.text.starts_with("Name: Renamed\n"));
    CHECK(changes.events[4].document.metadata["AlbumId"] == 1);
    CHECK(changes.events[5].document.text == "AC/DC!");

    // The consumer's state equals a fresh snapshot of the changed database.
    std::map<std::string, std::string> state;
    sluice::testing::apply(state, snapshot.events);
    sluice::testing::apply(state, changes.events);
    auto fresh = SqliteSource::open(chinook_config(database.path));
    REQUIRE(fresh.ok());
    CHECK(state == snapshot_state(**fresh));

    // Re-polling from the older checkpoint re-delivers the same events in the same order.
    auto again = drain(**source, snapshot.checkpoint, 3);
    CHECK(describe(again.events) == describe(changes.events));
    CHECK(again.checkpoint == changes.checkpoint);
}

TEST_CASE("sqlite source: a change to a row deleted later becomes a delete") {
    Database database("");
    database.exec("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)");
    SqliteSourceConfig config;
    config.path = database.path;
    config.tables = {{"notes", {}}};
    auto source = SqliteSource::open(config);
    REQUIRE(source.ok());
    auto start = drain(**source, "");
    CHECK(start.events.empty());
    database.exec("INSERT INTO notes VALUES (1, 'a')");
    database.exec("DELETE FROM notes WHERE id = 1");
    auto changes = drain(**source, start.checkpoint);
    CHECK(describe(changes.events) ==
          std::vector<std::string>{"delete notes/1 @seq:1", "delete notes/1 @seq:2"});
}

TEST_CASE("sqlite source: restart from an acknowledged checkpoint redelivers nothing") {
    Database database("northwind/northwind.sqlite");
    database.exec("ALTER TABLE Customers ADD COLUMN readers TEXT");
    database.exec("UPDATE Customers SET readers = 'alice, bob' WHERE Country = 'Germany'");
    SqliteSourceConfig config;
    config.path = database.path;
    SqliteTableConfig customers;
    customers.table = "Customers";
    customers.mapping.text = {"CompanyName", "ContactName", "City"};
    customers.mapping.metadata = {"Country"};
    customers.mapping.acl_principals = "readers";
    customers.mapping.default_acl.groups = {"sales"};
    SqliteTableConfig details;
    details.table = "Order Details";
    details.mapping.key = "rowid";
    config.tables = {customers, details};

    std::string checkpoint;
    {
        auto source = SqliteSource::open(config);
        REQUIRE_MESSAGE(source.ok(), source.status().to_string());
        auto snapshot = drain(**source, "", 1000, /*acknowledge=*/true);
        CHECK(snapshot.events.size() ==
              static_cast<std::size_t>(database.count("SELECT count(*) FROM Customers") +
                                       database.count("SELECT count(*) FROM [Order Details]")));
        const ChangeEvent* alfki = nullptr;
        for (const auto& event : snapshot.events) {
            if (event.key == "Customers/ALFKI") {
                alfki = &event;
            }
        }
        REQUIRE(alfki != nullptr);
        CHECK(alfki->document.acl.principals == std::vector<std::string>{"alice", "bob"});
        CHECK(alfki->document.metadata["Country"] == "Germany");
        database.exec("UPDATE Customers SET City = 'Bonn' WHERE CustomerID = 'ALFKI'");
        database.exec("DELETE FROM [Order Details] WHERE rowid = 1");
        auto changes = drain(**source, snapshot.checkpoint);
        REQUIRE(changes.events.size() == 2);
        CHECK(changes.events[0].key == "Customers/ALFKI");
        CHECK(changes.events[1].key == "Order Details/1");
        CHECK(changes.events[1].op == Op::kDelete);
        checkpoint = changes.checkpoint;
        REQUIRE((*source)->acknowledge(checkpoint).ok());
        auto status = (*source)->status();
        REQUIRE(status.ok());
        CHECK((*status)["pending_changes"] == 0);
        // Acknowledged change rows are pruned; the older checkpoint can no longer be served.
        CHECK(database.count("SELECT count(*) FROM _sluice_changes") == 0);
        auto stale = (*source)->poll(snapshot.checkpoint, {});
        CHECK(stale.status().code() == StatusCode::kFailedPrecondition);
    }
    database.exec("UPDATE Customers SET City = 'Köln' WHERE CustomerID = 'ANATR'");
    auto reopened = SqliteSource::open(config);
    REQUIRE(reopened.ok());
    auto after = drain(**reopened, checkpoint);
    REQUIRE(after.events.size() == 1);
    CHECK(after.events[0].key == "Customers/ANATR");
    CHECK(after.events[0].document.text.find("City: Köln") != std::string::npos);
    CHECK(after.events[0].document.acl.groups == std::vector<std::string>{"sales"});
}

TEST_CASE("sqlite source: 100,000-row table snapshot in pages") {
    Database database("");
    database.exec("CREATE TABLE docs(id INTEGER PRIMARY KEY, title TEXT, body TEXT)");
    database.exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < "
                  "100000) INSERT INTO docs SELECT i, 'title ' || i, 'body of ' || i FROM n");
    SqliteSourceConfig config;
    config.path = database.path;
    config.tables = {{"docs", {}}};
    config.tables[0].mapping.text = {"body"};
    config.tables[0].mapping.metadata = {"title"};
    auto source = SqliteSource::open(config);
    REQUIRE(source.ok());
    auto snapshot = drain(**source, "", 1000);
    REQUIRE(snapshot.events.size() == 100000);
    CHECK(snapshot.batches == 101);  // the last poll finds the snapshot done and no changes
    for (std::size_t i = 0; i < snapshot.events.size(); i += 9973) {
        CHECK(snapshot.events[i].key == "docs/" + std::to_string(i + 1));
        CHECK(snapshot.events[i].document.text == "body of " + std::to_string(i + 1));
    }
    database.exec("UPDATE docs SET body = 'changed' WHERE id % 1000 = 0");
    auto changes = drain(**source, snapshot.checkpoint, 1000);
    CHECK(changes.events.size() == 100);
}

TEST_CASE("sqlite source: configuration and checkpoint errors") {
    Database database("chinook/Chinook_Sqlite.sqlite");
    SqliteSourceConfig config;
    config.path = database.path;
    config.tables = {{"NoSuchTable", {}}};
    CHECK(SqliteSource::open(config).status().code() == StatusCode::kNotFound);
    config.tables = {{"PlaylistTrack", {}}};  // composite primary key
    CHECK(SqliteSource::open(config).status().code() == StatusCode::kInvalidArgument);
    config.tables = {{"Track", {}}};
    config.tables[0].mapping.text = {"Lyrics"};
    auto missing_column = SqliteSource::open(config);
    CHECK(missing_column.status().code() == StatusCode::kNotFound);
    CHECK(missing_column.status().message().find("'Lyrics'") != std::string::npos);
    config.path = (database.dir.path / "absent.sqlite").string();
    CHECK(SqliteSource::open(config).status().code() == StatusCode::kNotFound);

    auto source = SqliteSource::open(chinook_config(database.path));
    REQUIRE(source.ok());
    CHECK((*source)->poll("not json", {}).status().code() == StatusCode::kInvalidArgument);
    CHECK((*source)->poll("{\"v\":2}", {}).status().code() == StatusCode::kInvalidArgument);
    // A version that is not a number is malformed too (it used to throw out of poll).
    for (const char* bad : {R"({"v":"1","seq":3})", R"({"v":{},"seq":3})"}) {
        CHECK_MESSAGE((*source)->poll(bad, {}).status().code() == StatusCode::kInvalidArgument,
                      bad);
    }

    auto parsed = sqlite_config_from_json(json::parse(
        R"({"path": "x.db", "tables": [{"table": "Track", "text": ["Name"], "bogus": 1}]})"));
    CHECK(parsed.status().code() == StatusCode::kInvalidArgument);
    CHECK(parsed.status().message().find("tables[0].bogus") != std::string::npos);
    auto round = sqlite_config_from_json(to_json(chinook_config("x.db")));
    REQUIRE(round.ok());
    CHECK(round->tables.size() == 2);
    CHECK(round->tables[0].mapping.default_acl.groups == std::vector<std::string>{"music"});
}

TEST_CASE("sqlite source: wait returns on a commit from another connection") {
    Database database("");
    database.exec("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)");
    SqliteSourceConfig config;
    config.path = database.path;
    config.tables = {{"notes", {}}};
    auto source = SqliteSource::open(config);
    REQUIRE(source.ok());
    auto idle = (*source)->wait(std::chrono::milliseconds(20));
    REQUIRE(idle.ok());
    CHECK_FALSE(*idle);
    database.exec("INSERT INTO notes VALUES (1, 'a')");
    auto woke = (*source)->wait(std::chrono::seconds(10));
    REQUIRE(woke.ok());
    CHECK(*woke);
}

TEST_CASE("sqlite source: rows with a null key are reported, not keyed, and never stall a page") {
    Database database("");
    database.exec("CREATE TABLE items(code TEXT UNIQUE, body TEXT)");
    // More keyless rows than a page holds: a page of them must not restart the table forever.
    database.exec(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 250) "
        "INSERT INTO items SELECT NULL, 'keyless ' || i FROM n");
    database.exec("INSERT INTO items VALUES ('a', 'first'), ('b', 'second')");
    SqliteSourceConfig config;
    config.path = database.path;
    config.tables = {{"items", {}}};
    config.tables[0].mapping.key = "code";
    config.tables[0].mapping.text = {"body"};

    SUBCASE("skip: the keyed rows are delivered, the keyless ones reported once by count") {
        auto source = SqliteSource::open(config);
        REQUIRE(source.ok());
        auto snapshot = drain(**source, "", 100);
        CHECK(describe(snapshot.events) ==
              std::vector<std::string>{"upsert items/a @snapshot:items/a",
                                       "upsert items/b @snapshot:items/b"});
        REQUIRE(snapshot.errors.size() == 1);
        CHECK(snapshot.errors[0].key == "items");
        CHECK(snapshot.errors[0].message.find("250 row(s)") != std::string::npos);
        CHECK(snapshot.errors[0].message.find("'code'") != std::string::npos);

        // Streaming: an update of a keyless row is reported; giving a row a key upserts it under
        // that key; the keyless row's own delete removes nothing and reports nothing.
        database.exec("UPDATE items SET body = 'edited' WHERE body = 'keyless 1'");
        database.exec("UPDATE items SET code = 'c' WHERE body = 'keyless 2'");
        database.exec("DELETE FROM items WHERE body = 'keyless 3'");
        database.exec("UPDATE items SET body = 'second, edited' WHERE code = 'b'");
        auto changes = drain(**source, snapshot.checkpoint, 100);
        std::vector<std::string> keys;
        for (const auto& event : changes.events) {
            keys.push_back(std::string(op_name(event.op)) + " " + event.key);
        }
        CHECK(keys == std::vector<std::string>{"upsert items/c", "upsert items/b"});
        REQUIRE(changes.errors.size() == 1);
        CHECK(changes.errors[0].key == "items");
        CHECK(changes.errors[0].message.find("null key") != std::string::npos);
    }

    SUBCASE("pause: the snapshot holds at the table until its rows have keys") {
        config.on_error = ErrorPolicy::kPause;
        auto source = SqliteSource::open(config);
        REQUIRE(source.ok());
        auto first = (*source)->poll("", PollOptions{1000});
        REQUIRE(first.ok());
        CHECK(first->paused);
        CHECK(first->events.size() == 2);  // the keyed rows stay delivered
        REQUIRE(first->errors.size() == 1);
        auto again = (*source)->poll(first->checkpoint, PollOptions{1000});
        REQUIRE(again.ok());
        CHECK(again->paused);
        CHECK(again->events.empty());
        database.exec("DELETE FROM items WHERE code IS NULL");
        auto resumed = drain(**source, first->checkpoint, 1000);
        CHECK(resumed.errors.empty());
        CHECK(resumed.events.empty());  // nothing left to deliver; the deletes touch no key
    }
}

TEST_CASE("sqlite source: removing capture drops its triggers and tables in the database") {
    Database database("");
    database.exec("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)");
    database.exec("CREATE TABLE tags(id INTEGER PRIMARY KEY, name TEXT)");
    SqliteSourceConfig config;
    config.path = database.path;
    config.tables = {{"notes", {}}, {"tags", {}}};
    {
        auto source = SqliteSource::open(config);
        REQUIRE(source.ok());
        database.exec("INSERT INTO notes VALUES (1, 'a')");
    }
    const std::string installed =
        "SELECT count(*) FROM sqlite_master WHERE name LIKE '\\_sluice\\_%' ESCAPE '\\'";
    CHECK(database.count(installed) == 8);

    SUBCASE("dropped in one transaction; later writes are not logged") {
        CaptureRemoval removal = remove_sqlite_capture(database.path, {"notes", "tags"});
        CHECK(removal.left_behind.empty());
        CHECK(removal.dropped.size() == 8);
        CHECK(removal.dropped.back() == "table _sluice_state");
        CHECK(database.count(installed) == 0);
        database.exec("INSERT INTO notes VALUES (2, 'b')");  // no trigger, no change table
        CHECK(database.count("SELECT count(*) FROM notes") == 2);
        // Nothing left: removing again drops nothing and reports nothing.
        removal = remove_sqlite_capture(database.path, {"notes", "tags"});
        CHECK(removal.dropped.empty());
        CHECK(removal.left_behind.empty());
    }

    SUBCASE("a database that cannot be written: the objects are named with their cleanup") {
        database.exec("BEGIN EXCLUSIVE");  // another writer holds the database
        CaptureRemoval removal = remove_sqlite_capture(database.path, {"notes", "tags"});
        database.exec("ROLLBACK");
        CHECK(removal.dropped.empty());
        CHECK(removal.left_behind.size() == 8);
        CHECK(std::find(removal.left_behind.begin(), removal.left_behind.end(),
                        "trigger _sluice_notes_insert") != removal.left_behind.end());
        CHECK_FALSE(removal.reason.empty());
        CHECK(removal.cleanup_sql.find("DROP TABLE IF EXISTS \"_sluice_changes\";") !=
              std::string::npos);
        CHECK(database.count(installed) == 8);
        // The statements it names remove them.
        database.exec(removal.cleanup_sql);
        CHECK(database.count(installed) == 0);
    }

    SUBCASE("a database file that is gone has nothing to remove") {
        std::filesystem::remove(database.path);
        CaptureRemoval removal = remove_sqlite_capture(database.path, {"notes"});
        CHECK(removal.dropped.empty());
        CHECK(removal.left_behind.empty());
    }
}

TEST_CASE("sqlite source: an open that fails installs no capture") {
    Database database("");
    database.exec("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)");
    database.exec("CREATE VIEW recent AS SELECT * FROM notes");
    SqliteSourceConfig config;
    config.path = database.path;
    config.tables = {{"notes", {}}, {"recent", {}}};
    config.tables[1].mapping.key = "id";
    CHECK_FALSE(SqliteSource::open(config).ok());
    CHECK(database.count("SELECT count(*) FROM sqlite_master WHERE name LIKE '\\_sluice\\_%' "
                         "ESCAPE '\\'") == 0);
}

TEST_CASE("sqlite source: a key on several rows is reported; its first row by rowid is kept") {
    Database database("northwind/northwind.sqlite");
    SqliteSourceConfig config;
    config.path = database.path;
    config.tables = {{"Customers", {}}};
    config.tables[0].mapping.key = "Country";
    config.tables[0].mapping.text = {"CompanyName"};
    const auto rows = database.count("SELECT count(*) FROM Customers");
    const auto countries = database.count("SELECT count(DISTINCT Country) FROM Customers");
    const auto repeated = database.count(
        "SELECT count(*) FROM (SELECT Country FROM Customers GROUP BY Country "
        "HAVING count(*) > 1)");
    REQUIRE(rows > countries);
    REQUIRE(repeated > 0);
    auto first_company = [&](const std::string& country) {
        auto stmt = detail::prepare(
            database.db.get(), "SELECT CompanyName FROM Customers WHERE Country = '" + country +
                                   "' ORDER BY rowid LIMIT 1");
        REQUIRE(stmt.ok());
        REQUIRE(sqlite3_step(stmt->get()) == SQLITE_ROW);
        return detail::column_text(stmt->get(), 0);
    };

    SUBCASE("skip: one document per key, one record per repeated key") {
        auto source = SqliteSource::open(config);
        REQUIRE(source.ok());
        // Small pages: a key's rows straddle page boundaries.
        auto snapshot = drain(**source, "", 4);
        std::map<std::string, std::string> state;
        sluice::testing::apply(state, snapshot.events);
        CHECK(snapshot.events.size() == static_cast<std::size_t>(countries));
        CHECK(state.size() == static_cast<std::size_t>(countries));
        CHECK(state["Customers/Germany"] == first_company("Germany"));
        CHECK(state["Customers/USA"] == first_company("USA"));
        REQUIRE(snapshot.errors.size() == static_cast<std::size_t>(repeated));
        for (const auto& error : snapshot.errors) {
            CHECK(error.key == "Customers");
            CHECK(error.offset == "snapshot:Customers");
        }
        const auto germany = database.count(
            "SELECT count(*) FROM Customers "
            "WHERE Country = 'Germany'");
        bool named = false;
        for (const auto& error : snapshot.errors) {
            named =
                named || error.message.find("key 'Germany' of table 'Customers' is on " +
                                            std::to_string(germany) + " rows") != std::string::npos;
        }
        CHECK(named);

        // Changes: deleting a key's first row makes the next its document; a new row under a
        // key already taken is reported and changes no document; a new key is a document.
        const std::string old_first = first_company("Germany");
        database.exec(
            "DELETE FROM Customers WHERE rowid = (SELECT min(rowid) FROM Customers "
            "WHERE Country = 'Germany')");
        database.exec(
            "INSERT INTO Customers(CustomerID, CompanyName, Country) "
            "VALUES ('ZZZZZ', 'Late Comer', 'USA')");
        database.exec(
            "INSERT INTO Customers(CustomerID, CompanyName, Country) "
            "VALUES ('YYYYY', 'Only One', 'Atlantis')");
        auto changes = drain(**source, snapshot.checkpoint, 100);
        sluice::testing::apply(state, changes.events);
        CHECK(state["Customers/Germany"] != old_first);
        CHECK(state["Customers/Germany"] == first_company("Germany"));
        CHECK(state["Customers/USA"] == first_company("USA"));
        CHECK(state["Customers/Atlantis"] == "Only One");
        REQUIRE(changes.errors.size() == 2);  // Germany still repeats, USA repeats
        CHECK(changes.errors[0].key == "Customers");
        CHECK(changes.errors[0].offset == "seq:1");
        CHECK(changes.errors[1].message.find("key 'USA'") != std::string::npos);

        // The consumer's state equals a fresh snapshot.
        auto fresh = SqliteSource::open(config);
        REQUIRE(fresh.ok());
        CHECK(state == snapshot_state(**fresh));
    }

    SUBCASE("pause: the snapshot holds at the table until its keys are unique") {
        config.on_error = ErrorPolicy::kPause;
        auto source = SqliteSource::open(config);
        REQUIRE(source.ok());
        auto first = (*source)->poll("", PollOptions{1000});
        REQUIRE(first.ok());
        CHECK(first->paused);
        CHECK(first->events.size() == static_cast<std::size_t>(countries));
        CHECK(first->errors.size() == static_cast<std::size_t>(repeated));
    }

    SUBCASE("a unique index on the key column is trusted: no check") {
        database.exec("CREATE TABLE codes(code TEXT UNIQUE, body TEXT)");
        database.exec("INSERT INTO codes VALUES ('a', 'x'), ('b', 'y')");
        config.tables = {{"codes", {}}};
        config.tables[0].mapping.key = "code";
        auto source = SqliteSource::open(config);
        REQUIRE(source.ok());
        auto snapshot = drain(**source, "", 1);
        CHECK(snapshot.events.size() == 2);
        CHECK(snapshot.errors.empty());
    }
}

TEST_CASE("sqlite source: a database file replaced by rename is opened again and re-snapshot") {
    Database database("");
    database.exec("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)");
    database.exec("INSERT INTO notes VALUES (1, 'one'), (2, 'two')");
    SqliteSourceConfig config;
    config.path = database.path;
    config.tables = {{"notes", {}}};
    config.tables[0].mapping.text = {"body"};
    auto source = SqliteSource::open(config);
    REQUIRE(source.ok());
    auto snapshot = drain(**source, "", 100, /*acknowledge=*/true);
    CHECK(snapshot.events.size() == 2);

    // cp db new && edit new && mv new db, as a restore or an atomic writer does.
    const std::string replacement = (database.dir.path / "new.sqlite").string();
    std::filesystem::copy_file(database.path, replacement);
    {
        auto edit = detail::open_db(replacement, /*create=*/false);
        REQUIRE(edit.ok());
        REQUIRE(detail::exec(edit->get(),
                             "DELETE FROM notes WHERE id = 1; "
                             "INSERT INTO notes VALUES (3, 'three')")
                    .ok());
    }
    std::filesystem::rename(replacement, database.path);

    auto woke = (*source)->wait(std::chrono::seconds(10));
    REQUIRE(woke.ok());
    CHECK(*woke);
    // The old file's checkpoint cannot be followed: the consumer starts again from "".
    auto stale = (*source)->poll(snapshot.checkpoint, {});
    CHECK(stale.status().code() == StatusCode::kFailedPrecondition);
    CHECK(stale.status().message().find("replaced") != std::string::npos);
    CHECK((*source)->acknowledge(snapshot.checkpoint).ok());
    auto again = drain(**source, "", 100, /*acknowledge=*/true);
    std::map<std::string, std::string> state;
    sluice::testing::apply(state, again.events);
    CHECK(state == std::map<std::string, std::string>{{"notes/2", "two"}, {"notes/3", "three"}});

    // Capture is in the new file: its later changes reach the source.
    auto writer = detail::open_db(database.path, /*create=*/false);
    REQUIRE(writer.ok());
    REQUIRE(detail::exec(writer->get(), "UPDATE notes SET body = 'TWO' WHERE id = 2").ok());
    auto changes = drain(**source, again.checkpoint, 100);
    // (The copy kept the triggers, so the edits made in it are its seqs 1 and 2.)
    CHECK(describe(changes.events) == std::vector<std::string>{"upsert notes/2 @seq:3"});
    REQUIRE(changes.events.size() == 1);
    CHECK(changes.events[0].document.text == "TWO");
}

TEST_CASE("sqlite source: a view is refused as invalid_argument before anything is installed") {
    Database database("northwind/northwind.sqlite");
    database.exec(
        "CREATE VIEW german_customers AS SELECT * FROM Customers "
        "WHERE Country = 'Germany'");
    SqliteSourceConfig config;
    config.path = database.path;
    config.tables = {{"german_customers", {}}};
    config.tables[0].mapping.key = "CustomerID";
    auto opened = SqliteSource::open(config);
    CHECK(opened.status().code() == StatusCode::kInvalidArgument);
    CHECK(opened.status().message().find("'german_customers' is a view") != std::string::npos);
    CHECK(opened.status().message().find("views are not supported") != std::string::npos);
    CHECK(database.count("SELECT count(*) FROM sqlite_master WHERE name LIKE '\\_sluice\\_%' "
                         "ESCAPE '\\'") == 0);
}

TEST_CASE("sqlite source: a BOOLEAN column's 0 and 1 stay the integers SQLite holds") {
    // SQLite has no boolean type: BOOLEAN is a name with integer affinity, and a value read back
    // carries no trace of it. The source passes the integers on rather than guess.
    Database database("");
    database.exec("CREATE TABLE flags(id INTEGER PRIMARY KEY, body TEXT, published BOOLEAN)");
    database.exec("INSERT INTO flags VALUES (1, 'one', TRUE), (2, 'two', 0)");
    SqliteSourceConfig config;
    config.path = database.path;
    SqliteTableConfig flags;
    flags.table = "flags";
    flags.mapping.text = {"body"};
    flags.mapping.metadata = {"published"};
    config.tables = {flags};
    auto source = SqliteSource::open(config);
    REQUIRE_MESSAGE(source.ok(), source.status().to_string());
    auto events = drain(**source, "", 10).events;
    REQUIRE(events.size() == 2);
    CHECK(events[0].document.metadata["published"] == json(1));
    CHECK(events[0].document.metadata["published"].is_number_integer());
    CHECK(events[1].document.metadata["published"] == json(0));
}
