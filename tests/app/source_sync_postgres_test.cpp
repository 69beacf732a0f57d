// The sync engine over a real PostgreSQL source (logical replication): a continuous sync keeps an
// index equal to a table while the replication connection is dropped and the server restarts.
// Skipped, with a message, where no PostgreSQL server binaries are installed.
#include <doctest/doctest.h>
#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <thread>

#include "agents/agent_store.h"
#include "app/source_catalog.h"
#include "app/source_feed.h"
#include "connectors/postgres_cluster.h"
#include "connectors/postgres_source.h"
#include "index_contents.h"
#include "postgres_client.h"
#include "retrieval/index.h"
#include "retrieval/sync.h"

namespace {

using namespace std::chrono_literals;
using sluice::connectors::PostgresCluster;

bool have_postgres() { return PostgresCluster::find_binaries().has_value(); }

struct TempDir {
    std::filesystem::path path = std::filesystem::temp_directory_path() /
                                 ("sluice-app-pgsync-" + std::to_string(std::random_device{}()));
    TempDir() { std::filesystem::create_directories(path); }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
};

using Conn = sluice::testing::PgConn;
using sluice::testing::pg_connect;
using sluice::testing::pg_query;

// key -> body, as the table holds it and as the index holds it.
std::map<std::string, std::string> table_bodies(PGconn* conn) {
    std::map<std::string, std::string> out;
    for (const auto& row : pg_query(conn, "SELECT id, body FROM tickets")) {
        out["public.tickets/" + row[0]] = row[1];
    }
    return out;
}

std::map<std::string, std::string> index_bodies(const sluice::retrieval::Index& index,
                                                const std::map<std::string, std::string>& table) {
    std::map<std::string, std::string> out;
    REQUIRE(index.for_each_document([&](const sluice::retrieval::DocumentRecord& record) {
                     auto chunks = index.chunks_of(record.key);
                     REQUIRE(chunks.ok());
                     // The sync runs while this reads: a document listed a moment ago may be
                     // gone (or replaced) by now. That is a state not yet converged, not an error.
                     if (chunks->size() != 1) {
                         out[record.key] = std::to_string(chunks->size()) + " chunks";
                         return true;
                     }
                     // The text is "title: ...\nbody: ..."; report the table's body when the
                     // chunk carries it, else the chunk's text (which then fails the compare).
                     const std::string& text = chunks->front().text;
                     auto it = table.find(record.key);
                     out[record.key] = it != table.end() &&
                                               text.find("body: " + it->second) != std::string::npos
                                           ? it->second
                                           : text;
                     return true;
                 }).ok());
    return out;
}

// Waits (bounded) until the index holds exactly the table.
bool converges(PGconn* conn, const sluice::retrieval::Index& index) {
    for (int i = 0; i < 300; ++i) {
        auto table = table_bodies(conn);
        if (index_bodies(index, table) == table) {
            return true;
        }
        std::this_thread::sleep_for(100ms);
    }
    auto table = table_bodies(conn);
    CHECK(index_bodies(index, table) == table);
    return false;
}

// The tickets table's source (title and body as text, readers as the ACL), an index and the sync
// between them, not started.
struct CrmSync {
    std::shared_ptr<sluice::connectors::Source> source;
    std::shared_ptr<sluice::retrieval::Index> index;
    std::unique_ptr<sluice::retrieval::SourceSync> sync;
};

CrmSync open_crm_sync(
    const std::filesystem::path& dir, const std::string& conninfo, size_t max_batch,
    sluice::connectors::ErrorPolicy on_error = sluice::connectors::ErrorPolicy::kSkip) {
    sluice::connectors::PostgresSourceConfig config;
    config.conninfo = conninfo;
    config.slot = "crm";
    config.publication = "crm";
    config.tables.resize(1);
    config.tables[0].table = "public.tickets";
    config.tables[0].mapping.text = {"title", "body"};
    config.tables[0].mapping.acl_groups = "readers";
    config.heartbeat_interval = 100ms;
    config.on_error = on_error;
    auto source = sluice::connectors::PostgresSource::open(config);
    REQUIRE_MESSAGE(source.ok(), source.status().to_string());
    CrmSync crm;
    crm.source = std::move(source).value();

    sluice::retrieval::IndexSettings settings;
    settings.name = "crm";
    auto created = sluice::retrieval::Index::create(dir / "index", settings, {});
    REQUIRE(created.ok());
    crm.index = std::move(created).value();
    sluice::retrieval::SyncOptions options;
    options.max_batch = max_batch;
    options.idle_wait = 100ms;
    options.retry_max = 500ms;
    auto sync = sluice::retrieval::SourceSync::open(
        "crm", crm.index, std::make_unique<sluice::app::SourceFeed>("crm", crm.source), options);
    REQUIRE(sync.ok());
    crm.sync = std::move(sync).value();
    return crm;
}

}  // namespace

TEST_CASE("postgres sync: a dropped replication connection and a server restart lose and repeat "
          "nothing" * doctest::skip(!have_postgres())) {
    TempDir dir;
    auto cluster = PostgresCluster::start(dir.path / "pg");
    REQUIRE_MESSAGE(cluster.ok(), cluster.status().to_string());
    Conn conn = pg_connect((*cluster)->conninfo());
    pg_query(conn.get(),
             "CREATE TABLE tickets(id bigint PRIMARY KEY, title text, body text, "
             "readers text)");
    pg_query(conn.get(),
             "INSERT INTO tickets SELECT i, 'ticket ' || i, 'body ' || i, 'support' "
             "FROM generate_series(1, 300) i");

    CrmSync crm = open_crm_sync(dir.path, (*cluster)->conninfo(), 64);
    auto& index = crm.index;
    auto& sync = crm.sync;
    sync->start();
    CHECK(converges(conn.get(), *index));

    // The walsender goes away under the sync; changes made meanwhile still arrive.
    pg_query(conn.get(),
             "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE "
             "slot_name = 'crm'");
    pg_query(conn.get(),
             "INSERT INTO tickets VALUES (1001, 'new', 'inserted after the drop', "
             "'support')");
    pg_query(conn.get(), "UPDATE tickets SET body = 'edited after the drop' WHERE id = 7");
    pg_query(conn.get(), "DELETE FROM tickets WHERE id = 8");
    pg_query(conn.get(), "UPDATE tickets SET id = 2001 WHERE id = 9");
    CHECK(converges(conn.get(), *index));

    // The server restarts: the sync retries until it is back, then resumes from its checkpoint.
    REQUIRE((*cluster)->restart().ok());
    conn = pg_connect((*cluster)->conninfo());
    pg_query(conn.get(),
             "INSERT INTO tickets SELECT i, 'late ' || i, 'after restart ' || i, "
             "'support' FROM generate_series(3001, 3100) i");
    pg_query(conn.get(), "DELETE FROM tickets WHERE id BETWEEN 100 AND 150");
    CHECK(converges(conn.get(), *index));
    sync->stop();
    CHECK(sync->status().documents == table_bodies(conn.get()).size());
    CHECK(index->stats().vectors == index->stats().chunks);

    // The slot belongs to this test's cluster, which goes with the folder.
    sync.reset();
    crm.source.reset();
}

TEST_CASE("postgres sync: a dropped replication slot re-snapshots the index to the table" *
          doctest::skip(!have_postgres())) {
    TempDir dir;
    auto cluster = PostgresCluster::start(dir.path / "pg");
    REQUIRE_MESSAGE(cluster.ok(), cluster.status().to_string());
    Conn conn = pg_connect((*cluster)->conninfo());
    pg_query(conn.get(),
             "CREATE TABLE tickets(id bigint PRIMARY KEY, title text, body text, "
             "readers text)");
    pg_query(conn.get(),
             "INSERT INTO tickets SELECT i, 'ticket ' || i, 'body ' || i, 'support' "
             "FROM generate_series(1, 100) i");

    CrmSync crm = open_crm_sync(dir.path, (*cluster)->conninfo(), 32);
    auto& index = crm.index;
    auto& sync = crm.sync;
    sync->start();
    CHECK(converges(conn.get(), *index));
    sync->stop();

    // The slot goes (an operator drops it, or max_slot_wal_keep_size invalidates it), and with
    // it the changes made meanwhile: the delete is learnt only by comparing with a snapshot.
    pg_query(conn.get(),
             "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE "
             "slot_name = 'crm' AND active_pid IS NOT NULL");
    bool dropped = false;
    for (int i = 0; i < 100 && !dropped; ++i) {
        std::unique_ptr<PGresult, decltype(&PQclear)> result(
            PQexec(conn.get(), "SELECT pg_drop_replication_slot('crm')"), &PQclear);
        dropped = PQresultStatus(result.get()) == PGRES_TUPLES_OK;
        if (!dropped) {
            std::this_thread::sleep_for(100ms);  // the walsender is still exiting
        }
    }
    REQUIRE(dropped);
    pg_query(conn.get(), "DELETE FROM tickets WHERE id BETWEEN 10 AND 19");
    pg_query(conn.get(), "UPDATE tickets SET body = 'edited while the slot was gone' WHERE id = 5");
    pg_query(conn.get(), "INSERT INTO tickets VALUES (500, 'new', 'while gone', 'support')");

    sync->start();
    CHECK(converges(conn.get(), *index));
    // Streaming works again after the re-snapshot.
    pg_query(conn.get(), "INSERT INTO tickets VALUES (501, 'after', 'streamed', 'support')");
    CHECK(converges(conn.get(), *index));
    sync->stop();
    auto status = sync->status();
    CHECK(status.resnapshots == 1);
    CHECK(status.resnapshot_reason.find("slot") != std::string::npos);
    CHECK(status.documents == table_bodies(conn.get()).size());

    sync.reset();
    crm.source.reset();
}

namespace {

// The docs table's expected index contents, read with SQL alone: key -> document_line.
std::map<std::string, std::string> docs_contents(PGconn* conn) {
    std::map<std::string, std::string> out;
    for (const auto& row :
         pg_query(conn, "SELECT id, body, team, coalesce(readers, '') FROM docs")) {
        std::vector<std::string> groups;  // the column holds "a,b"
        for (std::size_t begin = 0; begin < row[3].size();) {
            const std::size_t comma = std::min(row[3].find(',', begin), row[3].size());
            groups.push_back(row[3].substr(begin, comma - begin));
            begin = comma + 1;
        }
        out["public.docs/" + row[0]] = sluice::testing::document_line(
            row[1], {{"source", "big"}, {"table", "public.docs"}, {"team", row[2]}}, groups);
    }
    return out;
}

// Runs the triggered sync until the index holds `key` (committed after everything the test
// waits for: the stream hands out transactions in commit order).
void sync_until_holds(sluice::retrieval::SourceSync& sync, sluice::connectors::Source& source,
                      const sluice::retrieval::Index& index, const std::string& key) {
    for (int i = 0; i < 600; ++i) {
        auto result = sync.run_to_caught_up();
        REQUIRE_MESSAGE(result.ok(), result.status().to_string());
        auto chunks = index.chunks_of(key);
        REQUIRE(chunks.ok());
        if (!chunks->empty()) {
            return;
        }
        REQUIRE(source.wait(100ms).ok());
    }
    FAIL("the index never received " << key);
}

}  // namespace

TEST_CASE(
    "postgres sync: a 100,000-row table through the snapshot, then streamed updates, "
    "deletes, key updates and ACL changes, end equal to the table" *
    doctest::skip(!have_postgres())) {
    TempDir dir;
    auto cluster = PostgresCluster::start(dir.path / "pg");
    REQUIRE_MESSAGE(cluster.ok(), cluster.status().to_string());
    Conn conn = pg_connect((*cluster)->conninfo());
    pg_query(conn.get(),
             "CREATE TABLE docs(id bigint PRIMARY KEY, body text NOT NULL, team text, "
             "readers text)");
    pg_query(conn.get(),
             "INSERT INTO docs SELECT i, 'record ' || i || ' about topic ' || (i % 97) "
             "|| ' filed by team ' || (i % 7), 'team' || (i % 7), CASE i % 3 WHEN 0 "
             "THEN 'staff' WHEN 1 THEN 'staff,eng' ELSE 'sales' END "
             "FROM generate_series(1, 100000) i");

    sluice::connectors::PostgresSourceConfig config;
    config.conninfo = (*cluster)->conninfo();
    config.slot = "big";
    config.publication = "big";
    config.tables.resize(1);
    config.tables[0].table = "public.docs";
    config.tables[0].mapping.text = {"body"};
    config.tables[0].mapping.metadata = {"team"};
    config.tables[0].mapping.acl_groups = "readers";
    config.heartbeat_interval = 100ms;
    auto opened = sluice::connectors::PostgresSource::open(config);
    REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
    std::shared_ptr<sluice::connectors::Source> source = std::move(opened).value();
    sluice::retrieval::IndexSettings settings;
    settings.name = "big";
    auto created = sluice::retrieval::Index::create(dir.path / "index", settings, {});
    REQUIRE(created.ok());
    std::shared_ptr<sluice::retrieval::Index> index = std::move(created).value();
    auto sync = sluice::retrieval::SourceSync::open(
        "big", index, std::make_unique<sluice::app::SourceFeed>("big", source),
        sluice::retrieval::SyncOptions{});
    REQUIRE(sync.ok());

    // The snapshot, then the stream's first (empty) poll: caught up.
    auto initial = (*sync)->run_to_caught_up();
    REQUIRE_MESSAGE(initial.ok(), initial.status().to_string());
    CHECK((*sync)->status().error_records == 0);
    sluice::testing::check_index_holds(*index, docs_contents(conn.get()));

    pg_query(conn.get(),
             "BEGIN;"
             "UPDATE docs SET body = body || ' revised' WHERE id % 101 = 0;"
             "DELETE FROM docs WHERE id % 103 = 1;"
             "UPDATE docs SET id = id + 1000000 WHERE id % 107 = 2;"
             "UPDATE docs SET readers = 'auditors' WHERE id % 109 = 3;"
             "UPDATE docs SET team = 'team-moved', readers = NULL WHERE id % 113 = 4;"
             "INSERT INTO docs SELECT id + 2000000, 'inserted ' || body, team, readers FROM docs "
             "WHERE id % 127 = 5;"
             "COMMIT;");
    pg_query(conn.get(), "UPDATE docs SET body = 'restored' WHERE id % 131 = 6");
    pg_query(conn.get(), "INSERT INTO docs VALUES (9999999, 'last', 'team0', 'staff')");
    sync_until_holds(**sync, *source, *index, "public.docs/9999999");
    CHECK((*sync)->status().error_records == 0);
    sluice::testing::check_index_holds(*index, docs_contents(conn.get()));

    sync->reset();
    source.reset();
}

TEST_CASE(
    "postgres sync: pause holds a snapshot that meets a renamed column until the table is "
    "fixed; skip reports each row and goes on" *
    doctest::skip(!have_postgres())) {
    TempDir dir;
    auto cluster = PostgresCluster::start(dir.path / "pg");
    REQUIRE_MESSAGE(cluster.ok(), cluster.status().to_string());
    Conn conn = pg_connect((*cluster)->conninfo());
    pg_query(conn.get(),
             "CREATE TABLE tickets(id bigint PRIMARY KEY, title text, body text, "
             "readers text)");
    pg_query(conn.get(),
             "INSERT INTO tickets SELECT i, 'ticket ' || i, 'body ' || i, 'support' "
             "FROM generate_series(1, 20) i");

    SUBCASE("pause") {
        CrmSync crm = open_crm_sync(dir.path, (*cluster)->conninfo(), 8,
                                    sluice::connectors::ErrorPolicy::kPause);
        // After open (which checks the mapping), before the snapshot.
        pg_query(conn.get(), "ALTER TABLE tickets RENAME COLUMN body TO details");
        auto result = crm.sync->run_to_caught_up();
        REQUIRE_MESSAGE(result.ok(), result.status().to_string());
        CHECK(result->paused);
        auto status = crm.sync->status();
        CHECK(status.state == sluice::retrieval::SyncState::kPaused);
        CHECK(status.error_records == 1);
        REQUIRE_FALSE(status.recent_errors.empty());
        CHECK(status.recent_errors.back().key == "public.tickets/1");
        CHECK(status.last_error.find("'body'") != std::string::npos);
        CHECK(crm.index->stats().documents == 0);
        // Fixed while paused: the ALTER does not wait for the sync, and the sync goes on.
        pg_query(conn.get(), "ALTER TABLE tickets RENAME COLUMN details TO body");
        pg_query(conn.get(), "UPDATE tickets SET body = 'fixed' WHERE id = 3");
        crm.sync->start();
        CHECK(converges(conn.get(), *crm.index));
        crm.sync->stop();
        CHECK(crm.sync->status().error_records == 1);
        crm.sync.reset();
        crm.source.reset();
    }
    SUBCASE("skip") {
        CrmSync crm = open_crm_sync(dir.path, (*cluster)->conninfo(), 8,
                                    sluice::connectors::ErrorPolicy::kSkip);
        // After open (which checks the mapping), before the snapshot.
        pg_query(conn.get(), "ALTER TABLE tickets RENAME COLUMN body TO details");
        auto result = crm.sync->run_to_caught_up();
        REQUIRE_MESSAGE(result.ok(), result.status().to_string());
        CHECK(result->caught_up);
        auto status = crm.sync->status();
        CHECK(status.error_records == 20);
        CHECK(crm.index->stats().documents == 0);
        // Fixed: rows come back as they change.
        pg_query(conn.get(), "ALTER TABLE tickets RENAME COLUMN details TO body");
        pg_query(conn.get(), "UPDATE tickets SET body = 'fixed' WHERE id = 3");
        crm.sync->start();
        for (int i = 0; i < 300 && crm.index->stats().documents == 0; ++i) {
            std::this_thread::sleep_for(100ms);
        }
        crm.sync->stop();
        auto chunks = crm.index->chunks_of("public.tickets/3");
        REQUIRE(chunks.ok());
        REQUIRE(chunks->size() == 1);
        CHECK((*chunks)[0].text.find("body: fixed") != std::string::npos);
        CHECK(crm.index->stats().documents == 1);
        crm.sync.reset();
        crm.source.reset();
    }
}

TEST_CASE("postgres source: the password is the secret of a catalog connection, never part of "
          "the configuration" * doctest::skip(!have_postgres())) {
    TempDir dir;
    auto cluster = PostgresCluster::start(dir.path / "pg");
    REQUIRE_MESSAGE(cluster.ok(), cluster.status().to_string());
    Conn conn = pg_connect((*cluster)->conninfo());
    pg_query(conn.get(), "CREATE TABLE tickets(id bigint PRIMARY KEY, title text, body text)");
    pg_query(conn.get(), "INSERT INTO tickets VALUES (1, 'a', 'b'), (2, 'c', 'd')");
    pg_query(conn.get(), "CREATE ROLE reader LOGIN SUPERUSER REPLICATION PASSWORD 'S3cret-pw'");
    // The cluster trusts every local user; make it ask `reader` for its password.
    const auto hba = dir.path / "pg" / "data" / "pg_hba.conf";
    std::stringstream rest;
    rest << std::ifstream(hba).rdbuf();
    {
        std::ofstream out(hba, std::ios::trunc);
        out << "local all reader scram-sha-256\nlocal replication reader scram-sha-256\n"
            << "host all reader all scram-sha-256\nhost replication reader all scram-sha-256\n"
            << rest.str();
        REQUIRE(out.good());
    }
    pg_query(conn.get(), "SELECT pg_reload_conf()");

    std::string conninfo = (*cluster)->conninfo();
    conninfo.replace(conninfo.find("user=postgres"), 13, "user=reader");
    sluice::connectors::SourceDefinition definition;
    definition.name = "crm";
    definition.kind = "postgres";
    definition.config = {{"conninfo", conninfo},
                         {"slot", "crm"},
                         {"publication", "crm"},
                         {"connection", "crm_db"},
                         {"tables", {{{"table", "public.tickets"}, {"text", {"title", "body"}}}}}};
    auto valid = sluice::connectors::validate_definition(definition);
    REQUIRE_MESSAGE(valid.ok(), valid.status().to_string());

    // The data directory's secret key, as the first start creates it.
    auto secrets = sluice::governance::SecretBox::load_or_create(dir.path / "secrets.key", true);
    REQUIRE(secrets.ok());
    // Without the connection's secret the server refuses.
    auto refused = sluice::connectors::open_source(*valid, dir.path / "state");
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.status().message().find("S3cret") == std::string::npos);
    CHECK(sluice::app::source_secret(dir.path, *valid).status().code() ==
          sluice::StatusCode::kNotFound);

    auto store = sluice::agents::AgentStore::open(dir.path / "catalog.db", **secrets);
    REQUIRE(store.ok());
    sluice::agents::Connection connection;
    connection.name = "crm_db";
    connection.allowed_hosts = {"db.internal"};
    connection.secret = "S3cret-pw";
    REQUIRE((*store)->put_connection(connection).ok());
    // libpq sends the password to the server the conninfo names: only to an allowed one.
    auto elsewhere = sluice::app::source_secret(dir.path, *valid);
    CHECK(elsewhere.status().code() == sluice::StatusCode::kPermissionDenied);
    CHECK(elsewhere.status().message().find("S3cret") == std::string::npos);
    auto servers = sluice::connectors::conninfo_servers(conninfo);
    REQUIRE(servers.ok());
    REQUIRE(servers->servers.size() == 1);
    connection.allowed_hosts = {"db.internal", servers->servers[0]};
    REQUIRE((*store)->put_connection(connection).ok());
    auto secret = sluice::app::source_secret(dir.path, *valid);
    REQUIRE(secret.ok());
    CHECK(*secret == "S3cret-pw");
    auto source = sluice::connectors::open_source(*valid, dir.path / "state", *secret);
    REQUIRE_MESSAGE(source.ok(), source.status().to_string());
    auto batch = (*source)->poll("", {100});
    REQUIRE_MESSAGE(batch.ok(), batch.status().to_string());
    CHECK(batch->events.size() == 2);
    // Listings name the connection, never its secret.
    CHECK(sluice::connectors::describe(*valid).dump().find("S3cret") == std::string::npos);
    CHECK(sluice::connectors::describe(*valid)["config"]["connection"] == "crm_db");
}

TEST_CASE("postgres sync: a bool column is a boolean in the index, filtered and answered as one" *
          doctest::skip(!have_postgres())) {
    TempDir dir;
    auto cluster = PostgresCluster::start(dir.path / "pg");
    REQUIRE_MESSAGE(cluster.ok(), cluster.status().to_string());
    Conn conn = pg_connect((*cluster)->conninfo());
    pg_query(conn.get(), "CREATE TABLE flags(id bigint PRIMARY KEY, body text, published bool)");
    pg_query(conn.get(),
             "INSERT INTO flags VALUES (1, 'river one', true), (2, 'river two', false), "
             "(3, 'river three', NULL)");
    sluice::connectors::PostgresSourceConfig config;
    config.conninfo = (*cluster)->conninfo();
    config.slot = "flags";
    config.publication = "flags";
    config.tables.resize(1);
    config.tables[0].table = "public.flags";
    config.tables[0].mapping.text = {"body"};
    config.tables[0].mapping.metadata = {"published"};
    config.tables[0].mapping.default_acl.groups = {"staff"};
    config.heartbeat_interval = 100ms;
    auto opened = sluice::connectors::PostgresSource::open(config);
    REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
    std::shared_ptr<sluice::connectors::Source> source = std::move(opened).value();
    sluice::retrieval::IndexSettings settings;
    settings.name = "flags";
    auto created = sluice::retrieval::Index::create(dir.path / "index", settings, {});
    REQUIRE(created.ok());
    std::shared_ptr<sluice::retrieval::Index> index = std::move(created).value();
    auto sync = sluice::retrieval::SourceSync::open(
        "flags", index, std::make_unique<sluice::app::SourceFeed>("flags", source),
        sluice::retrieval::SyncOptions{});
    REQUIRE(sync.ok());
    auto initial = (*sync)->run_to_caught_up();
    REQUIRE_MESSAGE(initial.ok(), initial.status().to_string());

    auto published = [&](bool value) {
        sluice::retrieval::Query query;
        query.text = "river";
        query.mode = sluice::retrieval::QueryMode::kLexical;
        query.filter = sluice::retrieval::Filter::equals("published", value);
        auto hits = index->query(query, sluice::retrieval::Reader{"ann", {"staff"}});
        REQUIRE_MESSAGE(hits.ok(), hits.status().to_string());
        std::map<std::string, sluice::retrieval::MetaValue> out;
        for (const auto& hit : *hits) {
            out.emplace(hit.chunk.doc_key, hit.chunk.metadata.at("published"));
        }
        return out;
    };
    using Found = std::map<std::string, sluice::retrieval::MetaValue>;
    CHECK(published(true) == Found{{"public.flags/1", true}});
    CHECK(published(false) == Found{{"public.flags/2", false}});

    // A streamed update flips it.
    pg_query(conn.get(), "UPDATE flags SET published = true WHERE id = 2");
    for (int i = 0; i < 100 && published(true).size() < 2; ++i) {
        REQUIRE((*sync)->run_to_caught_up().ok());
        std::this_thread::sleep_for(100ms);
    }
    CHECK(published(true) == Found{{"public.flags/1", true}, {"public.flags/2", true}});
    CHECK(published(false).empty());

    sync->reset();
    source.reset();
}
