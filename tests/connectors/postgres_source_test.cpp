#include "connectors/postgres_source.h"

#include <doctest/doctest.h>

#include <map>
#include <thread>

#include "connectors/detail/pg_util.h"
#include "connectors/detail/postgres_state.h"
#include "connectors/postgres_cluster.h"
#include "connectors_test_support.h"

using namespace sluice::connectors;
using nlohmann::json;
using sluice::StatusCode;
using sluice::testing::drain;
using sluice::testing::TempDir;

namespace {

bool have_postgres() { return PostgresCluster::find_binaries().has_value(); }

// One cluster for the whole run (initdb takes seconds); each test case uses its own database.
struct SharedCluster {
    TempDir dir{"pg"};
    std::unique_ptr<PostgresCluster> cluster;
    int databases = 0;

    static SharedCluster& get() {
        static SharedCluster shared;
        return shared;
    }
    SharedCluster() {
        auto started = PostgresCluster::start(dir.path / "cluster");
        REQUIRE_MESSAGE(started.ok(), started.status().to_string());
        cluster = std::move(*started);
    }
    ~SharedCluster() { cluster.reset(); }
};

struct Database {
    std::string conninfo;
    detail::PgConn conn;

    Database() {
        SharedCluster& shared = SharedCluster::get();
        const std::string name = "db" + std::to_string(++shared.databases);
        auto admin = detail::pg_connect(shared.cluster->conninfo());
        REQUIRE(admin.ok());
        REQUIRE(detail::pg_exec(admin->get(), "CREATE DATABASE " + name, PGRES_COMMAND_OK, "db")
                    .ok());
        conninfo = shared.cluster->conninfo(name);
        reconnect();
    }
    void reconnect() {
        auto connected = detail::pg_connect(conninfo);
        REQUIRE_MESSAGE(connected.ok(), connected.status().to_string());
        conn = std::move(*connected);
    }
    void exec(const std::string& sql) {
        auto result = detail::pg_exec(conn.get(), sql, PGRES_COMMAND_OK, "test sql");
        if (!result.ok() && PQstatus(conn.get()) != CONNECTION_OK) {
            reconnect();
            result = detail::pg_exec(conn.get(), sql, PGRES_COMMAND_OK, "test sql");
        }
        REQUIRE_MESSAGE(result.ok(), result.status().to_string());
    }
    std::string value(const std::string& sql) {
        auto result = detail::pg_exec(conn.get(), sql, PGRES_TUPLES_OK, "test query");
        REQUIRE_MESSAGE(result.ok(), result.status().to_string());
        REQUIRE(PQntuples(result->get()) == 1);
        return PQgetvalue(result->get(), 0, 0);
    }
};

PostgresSourceConfig tickets_config(const Database& db, const std::string& slot) {
    PostgresSourceConfig config;
    config.conninfo = db.conninfo;
    config.slot = slot;
    config.publication = slot + "_pub";
    PostgresTableConfig tickets;
    tickets.table = "public.tickets";
    tickets.mapping.text = {"title", "body"};
    tickets.mapping.metadata = {"team", "priority"};
    tickets.mapping.acl_groups = "readers";
    config.tables = {tickets};
    config.heartbeat_interval = std::chrono::milliseconds(100);
    return config;
}

void create_tickets(Database& db, int rows) {
    db.exec("CREATE TABLE tickets(id bigint PRIMARY KEY, title text, body text, team text, "
            "priority int, readers text)");
    db.exec("INSERT INTO tickets SELECT i, 'ticket ' || i, 'body ' || i, 'team' || (i % 3), "
            "i % 5, 'support,eng' FROM generate_series(1, " + std::to_string(rows) + ") i");
}

struct Collected {
    std::vector<ChangeEvent> events;
    std::vector<ErrorRecord> errors;
    std::string checkpoint;
};

// Polls (waiting between polls) until `count` events and errors have arrived or 30 s pass.
Collected collect(Source& source, std::string checkpoint, std::size_t count,
                  std::size_t max_events = 1000, bool acknowledge = false) {
    Collected out;
    out.checkpoint = checkpoint;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (out.events.size() + out.errors.size() < count &&
           std::chrono::steady_clock::now() < deadline) {
        auto batch = source.poll(out.checkpoint, PollOptions{max_events});
        if (!batch.ok()) {
            REQUIRE_MESSAGE(batch.status().code() == StatusCode::kUnavailable,
                            batch.status().to_string());
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            continue;
        }
        for (auto& event : batch->events) {
            out.events.push_back(std::move(event));
        }
        for (auto& error : batch->errors) {
            out.errors.push_back(std::move(error));
        }
        out.checkpoint = batch->checkpoint;
        if (acknowledge) {
            REQUIRE(source.acknowledge(out.checkpoint).ok());
        }
        if (batch->caught_up && out.events.size() + out.errors.size() < count) {
            auto waited = source.wait(std::chrono::milliseconds(200));
            REQUIRE(waited.ok());
        }
    }
    CHECK(out.events.size() + out.errors.size() == count);
    return out;
}

std::vector<std::string> describe(const std::vector<ChangeEvent>& events) {
    std::vector<std::string> out;
    for (const auto& event : events) {
        out.push_back(std::string(op_name(event.op)) + " " + event.key);
    }
    return out;
}

std::map<std::string, std::string> table_state(Database& db) {
    std::map<std::string, std::string> state;
    auto result = detail::pg_exec(db.conn.get(),
                                  "SELECT id, coalesce('title: ' || title || E'\\n', '') || "
                                  "coalesce('body: ' || body || E'\\n', '') FROM tickets",
                                  PGRES_TUPLES_OK, "state");
    REQUIRE(result.ok());
    for (int r = 0; r < PQntuples(result->get()); ++r) {
        state["public.tickets/" + std::string(PQgetvalue(result->get(), r, 0))] =
            PQgetvalue(result->get(), r, 1);
    }
    return state;
}

}  // namespace

TEST_CASE("postgres: server binaries") {
    if (!have_postgres()) {
        MESSAGE("postgresql server binaries not found (set SLUICE_PG_BIN or install "
                "postgresql): the postgres source tests are skipped");
    }
    CHECK(redact_conninfo("host=/tmp port=5 password=s3cret user=u") ==
          "host=/tmp port=5 password=*** user=u");
    CHECK(redact_conninfo("password = 'a b\\'c' dbname=x") == "password = *** dbname=x");
    CHECK(redact_conninfo("postgresql://alice:s3cret@db.example:5432/app") ==
          "postgresql://alice:***@db.example:5432/app");
    auto config = postgres_config_from_json(json::parse(
        R"({"conninfo": "host=x password=p", "slot": "Bad-Slot", "publication": "p",
            "tables": [{"table": "t"}]})"));
    CHECK(config.status().code() == StatusCode::kInvalidArgument);
    CHECK(config.status().message().starts_with("slot"));
}

TEST_CASE("postgres: the servers a connection string sends libpq to") {
    auto servers = [](const std::string& conninfo) {
        auto parsed = conninfo_servers(conninfo);
        REQUIRE_MESSAGE(parsed.ok(), parsed.status().to_string());
        return parsed->servers;
    };
    using List = std::vector<std::string>;
    CHECK(servers("host=DB.internal dbname=crm user=u") == List{"db.internal:5432"});
    CHECK(servers("host=a,b port=6000,6001") == List{"a:6000", "b:6001"});
    CHECK(servers("host=a,b port=6000") == List{"a:6000", "b:6000"});
    CHECK(servers("host=db.internal hostaddr=10.0.0.9") ==
          List{"db.internal:5432", "10.0.0.9:5432"});
    CHECK(servers("postgresql://u:p@evil.example:15999/db") == List{"evil.example:15999"});
    CHECK(servers("postgresql://u@/db?host=/var/run/postgresql") ==
          List{"/var/run/postgresql:5432"});
    CHECK(servers("dbname=crm").empty());  // libpq's default: a socket of this machine
    auto service = conninfo_servers("service=crm");
    REQUIRE(service.ok());
    CHECK(service->service);
    CHECK(conninfo_servers("host='unterminated").status().code() == StatusCode::kInvalidArgument);
    CHECK(conninfo_servers("bogus=1").status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("postgres: consistent snapshot then streaming of inserts, updates, deletes and key "
          "updates" * doctest::skip(!have_postgres())) {
    Database db;
    create_tickets(db, 250);
    auto source = PostgresSource::open(tickets_config(db, "s_stream"));
    REQUIRE_MESSAGE(source.ok(), source.status().to_string());

    // The first page exports the snapshot; changes made during the snapshot are streamed.
    auto first = (*source)->poll("", PollOptions{100});
    REQUIRE_MESSAGE(first.ok(), first.status().to_string());
    CHECK(first->events.size() == 100);
    db.exec("UPDATE tickets SET title = 'changed during snapshot' WHERE id = 200");
    db.exec("DELETE FROM tickets WHERE id = 201");
    std::vector<ChangeEvent> snapshot = first->events;
    std::string checkpoint = first->checkpoint;
    while (json::parse(checkpoint).contains("snapshot")) {
        auto batch = (*source)->poll(checkpoint, PollOptions{100});
        REQUIRE_MESSAGE(batch.ok(), batch.status().to_string());
        snapshot.insert(snapshot.end(), batch->events.begin(), batch->events.end());
        checkpoint = batch->checkpoint;
    }
    REQUIRE(snapshot.size() == 250);
    CHECK(snapshot[199].key == "public.tickets/200");
    CHECK(snapshot[199].document.text == "title: ticket 200\nbody: body 200\n");
    CHECK(snapshot[200].key == "public.tickets/201");
    CHECK(snapshot[0].document.metadata["priority"] == 1);
    CHECK(snapshot[0].document.metadata["team"] == "team1");
    CHECK(snapshot[0].document.metadata["table"] == "public.tickets");
    CHECK(snapshot[0].document.acl.groups == std::vector<std::string>{"support", "eng"});

    db.exec("INSERT INTO tickets VALUES (1000, 'new', 'fresh', 'team0', 2, 'eng')");
    db.exec("UPDATE tickets SET body = 'edited' WHERE id = 5");
    db.exec("DELETE FROM tickets WHERE id = 6");
    db.exec("UPDATE tickets SET id = 5000 WHERE id = 7");
    auto streamed = collect(**source, checkpoint, 7);
    CHECK(describe(streamed.events) ==
          std::vector<std::string>{"upsert public.tickets/200", "delete public.tickets/201",
                                   "upsert public.tickets/1000", "upsert public.tickets/5",
                                   "delete public.tickets/6", "delete public.tickets/7",
                                   "upsert public.tickets/5000"});
    CHECK(streamed.events[0].document.text ==
          "title: changed during snapshot\nbody: body 200\n");
    CHECK(streamed.events[3].document.text == "title: ticket 5\nbody: edited\n");
    CHECK(streamed.events[2].document.metadata["priority"] == 2);

    std::map<std::string, std::string> state;
    sluice::testing::apply(state, snapshot);
    sluice::testing::apply(state, streamed.events);
    CHECK(state == table_state(db));

    // Re-polling from the snapshot's end re-delivers the same stream.
    auto again = collect(**source, checkpoint, 7);
    CHECK(describe(again.events) == describe(streamed.events));
    CHECK(again.checkpoint == streamed.checkpoint);

    db.exec("TRUNCATE tickets");
    auto truncated = collect(**source, streamed.checkpoint, 1);
    REQUIRE(truncated.errors.size() == 1);
    CHECK(truncated.errors[0].key == "public.tickets");
    {
        auto dropped = (*source)->drop_slot();
        CHECK_MESSAGE(dropped.ok(), dropped.to_string());
    }
}

TEST_CASE("postgres: a mapped column renamed or dropped while streaming is an error record with "
          "the row's key, and the rest goes on" * doctest::skip(!have_postgres())) {
    Database db;
    create_tickets(db, 3);
    auto source = PostgresSource::open(tickets_config(db, "s_schema"));
    REQUIRE_MESSAGE(source.ok(), source.status().to_string());
    auto snapshot = collect(**source, "", 3);

    // Without the column the row's text would silently lose its body.
    db.exec("ALTER TABLE tickets RENAME COLUMN body TO details");
    db.exec("INSERT INTO tickets VALUES (10, 'after rename', 'lost?', 'team0', 1, 'eng')");
    db.exec("DELETE FROM tickets WHERE id = 2");
    db.exec("ALTER TABLE tickets RENAME COLUMN details TO body");
    db.exec("UPDATE tickets SET title = 'renamed back' WHERE id = 10");
    db.exec("ALTER TABLE tickets DROP COLUMN priority");
    db.exec("UPDATE tickets SET title = 'no priority' WHERE id = 3");
    auto streamed = collect(**source, snapshot.checkpoint, 4);
    REQUIRE(streamed.errors.size() == 2);
    CHECK(streamed.errors[0].key == "public.tickets/10");
    CHECK(streamed.errors[0].message ==
          "table 'public.tickets' has no column 'body' any more (dropped or renamed?); the "
          "source's mapping reads it");
    CHECK(streamed.errors[0].offset.rfind("lsn:", 0) == 0);
    CHECK(streamed.errors[1].key == "public.tickets/3");
    CHECK(streamed.errors[1].message.find("'priority'") != std::string::npos);
    CHECK(describe(streamed.events) ==
          std::vector<std::string>{"delete public.tickets/2", "upsert public.tickets/10"});
    CHECK(streamed.events[1].document.text == "title: renamed back\nbody: lost?\n");
    {
        auto dropped = (*source)->drop_slot();
        CHECK_MESSAGE(dropped.ok(), dropped.to_string());
    }
}

TEST_CASE("postgres: a restarted consumer gets everything after its acknowledged checkpoint "
          "and nothing before" * doctest::skip(!have_postgres())) {
    Database db;
    create_tickets(db, 10);
    const PostgresSourceConfig config = tickets_config(db, "s_restart");
    std::string acknowledged;
    std::vector<std::string> after_ack;
    {
        auto source = PostgresSource::open(config);
        REQUIRE(source.ok());
        auto snapshot = collect(**source, "", 10, 1000, /*acknowledge=*/true);
        // One transaction of 10 inserts, delivered 3 at a time: checkpoints inside it.
        db.exec("INSERT INTO tickets SELECT i, 'bulk ' || i, 'b', 't', 1, 'x' FROM "
                "generate_series(100, 109) i");
        auto part = collect(**source, snapshot.checkpoint, 3, 3);
        CHECK(json::parse(part.checkpoint).contains("txn"));
        REQUIRE((*source)->acknowledge(part.checkpoint).ok());
        acknowledged = part.checkpoint;
        db.exec("UPDATE tickets SET title = 'late' WHERE id = 1");
        auto rest = collect(**source, part.checkpoint, 8, 3);
        after_ack = describe(rest.events);
        CHECK(after_ack.front() == "upsert public.tickets/103");
        CHECK(after_ack.back() == "upsert public.tickets/1");
        // The consumer crashes here, before committing `rest`.
    }
    auto source = PostgresSource::open(config);
    REQUIRE(source.ok());
    auto replay = collect(**source, acknowledged, 8, 5);
    CHECK(describe(replay.events) == after_ack);
    REQUIRE((*source)->acknowledge(replay.checkpoint).ok());
    // A checkpoint older than the acknowledged one can no longer be served.
    auto stale = (*source)->poll(acknowledged, {});
    if (stale.ok()) {
        // The running stream serves positions at or past its floor from memory only.
        CHECK(stale->events.empty());
    }
    auto fresh = PostgresSource::open(config);
    REQUIRE(fresh.ok());
    CHECK((*fresh)->poll(acknowledged, {}).status().code() == StatusCode::kFailedPrecondition);
    {
        auto dropped = (*source)->drop_slot();
        CHECK_MESSAGE(dropped.ok(), dropped.to_string());
    }
}

TEST_CASE("postgres: a dropped connection and a server restart lose and repeat nothing" *
          doctest::skip(!have_postgres())) {
    Database db;
    create_tickets(db, 3);
    auto source = PostgresSource::open(tickets_config(db, "s_drop"));
    REQUIRE(source.ok());
    auto snapshot = collect(**source, "", 3, 1000, true);
    db.exec("INSERT INTO tickets VALUES (10, 'a', 'a', 't', 1, 'x')");
    auto one = collect(**source, snapshot.checkpoint, 1, 1000, true);

    auto killed = detail::pg_exec(
        db.conn.get(),
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = "
        "'s_drop'",
        PGRES_TUPLES_OK, "terminate");
    REQUIRE(killed.ok());
    db.exec("INSERT INTO tickets VALUES (11, 'b', 'b', 't', 1, 'x')");
    auto two = collect(**source, one.checkpoint, 1, 1000, true);
    CHECK(describe(two.events) == std::vector<std::string>{"upsert public.tickets/11"});

    REQUIRE(SharedCluster::get().cluster->restart().ok());
    db.reconnect();
    db.exec("INSERT INTO tickets VALUES (12, 'c', 'c', 't', 1, 'x')");
    db.exec("DELETE FROM tickets WHERE id = 10");
    auto three = collect(**source, two.checkpoint, 2, 1000, true);
    CHECK(describe(three.events) ==
          std::vector<std::string>{"upsert public.tickets/12", "delete public.tickets/10"});
    {
        auto dropped = (*source)->drop_slot();
        CHECK_MESSAGE(dropped.ok(), dropped.to_string());
    }
}

TEST_CASE("postgres: unchanged TOAST columns are filled in" * doctest::skip(!have_postgres())) {
    Database db;
    db.exec("CREATE TABLE docs(id int PRIMARY KEY, title text, body text)");
    db.exec("CREATE TABLE docs_full(id int PRIMARY KEY, title text, body text)");
    db.exec("ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL");
    db.exec("ALTER TABLE docs_full ALTER COLUMN body SET STORAGE EXTERNAL");
    db.exec("INSERT INTO docs VALUES (1, 'short', repeat('x', 20000))");
    db.exec("INSERT INTO docs_full VALUES (1, 'short', repeat('y', 20000))");
    PostgresSourceConfig config;
    config.conninfo = db.conninfo;
    config.slot = "s_toast";
    config.publication = "s_toast_pub";
    PostgresTableConfig docs;
    docs.table = "docs";
    docs.mapping.text = {"title", "body"};
    PostgresTableConfig full = docs;
    full.table = "docs_full";
    config.tables = {docs, full};
    auto source = PostgresSource::open(config);
    REQUIRE(source.ok());
    auto snapshot = collect(**source, "", 2);
    db.exec("ALTER TABLE docs_full REPLICA IDENTITY FULL");
    db.exec("UPDATE docs SET title = 'renamed' WHERE id = 1");
    db.exec("UPDATE docs_full SET title = 'renamed' WHERE id = 1");
    auto streamed = collect(**source, snapshot.checkpoint, 2);
    REQUIRE(streamed.events.size() == 2);
    CHECK(streamed.events[0].document.text ==
          "title: renamed\nbody: " + std::string(20000, 'x') + "\n");
    CHECK(streamed.events[1].document.text ==
          "title: renamed\nbody: " + std::string(20000, 'y') + "\n");
    {
        auto dropped = (*source)->drop_slot();
        CHECK_MESSAGE(dropped.ok(), dropped.to_string());
    }
}

TEST_CASE("postgres: the heartbeat advances the slot of an idle source" *
          doctest::skip(!have_postgres())) {
    Database db;
    create_tickets(db, 1);
    db.exec("CREATE TABLE other(id serial PRIMARY KEY, payload text)");
    auto source = PostgresSource::open(tickets_config(db, "s_idle"));
    REQUIRE(source.ok());
    auto snapshot = collect(**source, "", 1, 1000, true);
    auto streaming = (*source)->poll(snapshot.checkpoint, {});
    REQUIRE(streaming.ok());
    const std::string before = db.value(
        "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 's_idle'");
    db.exec("INSERT INTO other(payload) SELECT repeat('z', 200) FROM generate_series(1, 5000)");
    const std::string target = db.value("SELECT pg_current_wal_lsn()::text");
    std::string checkpoint = streaming->checkpoint;
    bool advanced = false;
    for (int i = 0; i < 100 && !advanced; ++i) {
        auto waited = (*source)->wait(std::chrono::milliseconds(150));
        REQUIRE(waited.ok());
        auto batch = (*source)->poll(checkpoint, {});
        REQUIRE(batch.ok());
        CHECK(batch->events.empty());
        checkpoint = batch->checkpoint;
        REQUIRE((*source)->acknowledge(checkpoint).ok());
        advanced = db.value("SELECT (confirmed_flush_lsn >= '" + target +
                            "'::pg_lsn)::text FROM pg_replication_slots WHERE slot_name = "
                            "'s_idle'") == "true";
    }
    CHECK_MESSAGE(advanced, "slot stayed at " << before << ", target " << target);
    auto status = (*source)->status();
    REQUIRE(status.ok());
    CHECK((*status)["slot"] == "s_idle");
    CHECK(status->dump().find("conninfo") == std::string::npos);
    {
        auto dropped = (*source)->drop_slot();
        CHECK_MESSAGE(dropped.ok(), dropped.to_string());
    }
}

namespace {

// tickets (the mapping reads title and body) and notes, a table nothing happens to.
PostgresSourceConfig two_tables(Database& db, const std::string& slot, ErrorPolicy policy) {
    create_tickets(db, 3);
    db.exec("CREATE TABLE notes(id int PRIMARY KEY, note text, done boolean)");
    db.exec("INSERT INTO notes VALUES (1, 'first', true), (2, 'second', false)");
    PostgresSourceConfig config = tickets_config(db, slot);
    PostgresTableConfig notes;
    notes.table = "notes";
    notes.mapping.text = {"note"};
    notes.mapping.metadata = {"done"};
    config.tables.push_back(notes);
    config.on_error = policy;
    return config;
}

void drop_slot(PostgresSource& source) {
    auto dropped = source.drop_slot();
    CHECK_MESSAGE(dropped.ok(), dropped.to_string());
}

}  // namespace

TEST_CASE("postgres: column values by type: bool as a boolean, integers and floats as numbers") {
    CHECK(detail::pg_value_json(16, "t") == json(true));
    CHECK(detail::pg_value_json(16, "f") == json(false));
    CHECK(detail::pg_value_json(23, "7") == json(7));
    CHECK(detail::pg_value_json(23, "7").is_number_integer());
    CHECK(detail::pg_value_json(701, "2.5") == json(2.5));
    CHECK(detail::pg_value_json(1700, "NaN") == json("NaN"));
    CHECK(detail::pg_value_json(25, "t") == json("t"));  // text stays text
}

TEST_CASE("postgres: a bool column is a JSON boolean in the snapshot and in the stream" *
          doctest::skip(!have_postgres())) {
    Database db;
    db.exec("CREATE TABLE flags(id bigint PRIMARY KEY, body text, published bool)");
    db.exec("INSERT INTO flags VALUES (1, 'one', true), (2, 'two', false), (3, 'three', NULL)");
    PostgresSourceConfig config;
    config.conninfo = db.conninfo;
    config.slot = "s_bool";
    config.publication = "s_bool_pub";
    PostgresTableConfig flags;
    flags.table = "public.flags";
    flags.mapping.text = {"body"};
    flags.mapping.metadata = {"published"};
    config.tables = {flags};
    config.heartbeat_interval = std::chrono::milliseconds(100);
    auto source = PostgresSource::open(config);
    REQUIRE_MESSAGE(source.ok(), source.status().to_string());
    auto snapshot = collect(**source, "", 3);
    REQUIRE(snapshot.events.size() == 3);
    CHECK(snapshot.events[0].document.metadata["published"] == json(true));
    CHECK(snapshot.events[1].document.metadata["published"] == json(false));
    CHECK(snapshot.events[2].document.metadata["published"].is_null());
    // pgoutput sends the same text form ('t', 'f') as a query result.
    db.exec("UPDATE flags SET published = NOT published WHERE id = 1");
    db.exec("INSERT INTO flags VALUES (4, 'four', true)");
    auto streamed = collect(**source, snapshot.checkpoint, 2);
    REQUIRE(streamed.events.size() == 2);
    CHECK(streamed.events[0].key == "public.flags/1");
    CHECK(streamed.events[0].document.metadata["published"] == json(false));
    CHECK(streamed.events[1].document.metadata["published"] == json(true));
    CHECK((*source)->drop_slot().ok());
}

TEST_CASE("postgres: on_error is parsed and written like the sqlite source's") {
    const json base = json::parse(R"({"conninfo": "host=x", "slot": "s", "publication": "p",
                                       "tables": [{"table": "t"}]})");
    auto plain = postgres_config_from_json(base);
    REQUIRE(plain.ok());
    CHECK(plain->on_error == ErrorPolicy::kSkip);
    json paused = base;
    paused["on_error"] = "pause";
    auto parsed = postgres_config_from_json(paused);
    REQUIRE(parsed.ok());
    CHECK(parsed->on_error == ErrorPolicy::kPause);
    CHECK(to_json(*parsed, false)["on_error"] == "pause");
    CHECK(postgres_config_from_json(to_json(*parsed, true))->on_error == ErrorPolicy::kPause);
    json wrong = base;
    wrong["on_error"] = "stop";
    auto refused = postgres_config_from_json(wrong);
    CHECK(refused.status().code() == StatusCode::kInvalidArgument);
    CHECK(refused.status().message().starts_with("on_error"));
    wrong["on_error"] = 1;
    CHECK(postgres_config_from_json(wrong).status().message().starts_with("on_error"));
}

TEST_CASE(
    "postgres: a mapped column dropped before the snapshot is an error record per row, "
    "and skip goes on with the other tables and the stream" *
    doctest::skip(!have_postgres())) {
    Database db;
    const PostgresSourceConfig config = two_tables(db, "s_snap_skip", ErrorPolicy::kSkip);
    auto source = PostgresSource::open(config);
    REQUIRE_MESSAGE(source.ok(), source.status().to_string());
    db.exec("ALTER TABLE tickets DROP COLUMN body");
    auto snapshot = drain(**source, "", 2);
    REQUIRE(snapshot.errors.size() == 3);
    CHECK(snapshot.errors[0].key == "public.tickets/1");
    CHECK(snapshot.errors[2].key == "public.tickets/3");
    CHECK(snapshot.errors[0].message ==
          "table 'public.tickets' has no column 'body' any more (dropped or renamed?); the "
          "source's mapping reads it");
    CHECK(snapshot.errors[0].offset == "snapshot:public.tickets/1");
    CHECK(describe(snapshot.events) ==
          std::vector<std::string>{"upsert public.notes/1", "upsert public.notes/2"});
    // Read as the server writes each value (pgoutput's form), so booleans are booleans.
    CHECK(snapshot.events[0].document.metadata["done"] == true);
    CHECK(snapshot.events[1].document.metadata["done"] == false);

    db.exec("INSERT INTO notes VALUES (3, 'third', true)");
    db.exec("UPDATE tickets SET title = 'still broken' WHERE id = 1");
    auto streamed = collect(**source, snapshot.checkpoint, 2);
    CHECK(describe(streamed.events) == std::vector<std::string>{"upsert public.notes/3"});
    REQUIRE(streamed.errors.size() == 1);
    CHECK(streamed.errors[0].key == "public.tickets/1");
    CHECK(streamed.events[0].document.metadata["done"] == true);
    drop_slot(**source);
}

TEST_CASE(
    "postgres: a table whose key column is renamed before the snapshot is one error "
    "record for the table; skip reads the others" *
    doctest::skip(!have_postgres())) {
    Database db;
    auto source = PostgresSource::open(two_tables(db, "s_snap_key", ErrorPolicy::kSkip));
    REQUIRE_MESSAGE(source.ok(), source.status().to_string());
    db.exec("ALTER TABLE tickets RENAME COLUMN id TO ticket_id");
    auto snapshot = drain(**source, "", 1);
    REQUIRE(snapshot.errors.size() == 1);
    CHECK(snapshot.errors[0].key == "public.tickets");
    CHECK(snapshot.errors[0].offset == "snapshot:public.tickets");
    CHECK(snapshot.errors[0].message.find("cannot read table 'public.tickets' as mapped") == 0);
    CHECK(snapshot.errors[0].message.find("does not exist") != std::string::npos);
    CHECK(describe(snapshot.events) ==
          std::vector<std::string>{"upsert public.notes/1", "upsert public.notes/2"});
    // The snapshot's transaction survived the failed page: the stream starts after it.
    db.exec("INSERT INTO notes VALUES (3, 'third', true)");
    auto streamed = collect(**source, snapshot.checkpoint, 1);
    CHECK(describe(streamed.events) == std::vector<std::string>{"upsert public.notes/3"});
    drop_slot(**source);
}

TEST_CASE(
    "postgres: pause holds the snapshot before a row that cannot be mapped until the "
    "table is fixed, then nothing is lost" *
    doctest::skip(!have_postgres())) {
    Database db;
    auto source = PostgresSource::open(two_tables(db, "s_snap_pause", ErrorPolicy::kPause));
    REQUIRE_MESSAGE(source.ok(), source.status().to_string());
    db.exec("ALTER TABLE tickets RENAME COLUMN body TO details");
    auto first = (*source)->poll("", PollOptions{100});
    REQUIRE_MESSAGE(first.ok(), first.status().to_string());
    CHECK(first->paused);
    CHECK_FALSE(first->caught_up);
    CHECK(first->events.empty());
    REQUIRE(first->errors.size() == 1);
    CHECK(first->errors[0].key == "public.tickets/1");
    // Held: the same position, the same record, until someone fixes the table.
    auto again = (*source)->poll(first->checkpoint, PollOptions{100});
    REQUIRE_MESSAGE(again.ok(), again.status().to_string());
    CHECK(again->paused);
    CHECK(again->checkpoint == first->checkpoint);
    REQUIRE(again->errors.size() == 1);
    CHECK(again->errors[0].key == "public.tickets/1");
    // A paused snapshot holds no lock on the table: the fix does not wait for it.
    db.exec("ALTER TABLE tickets RENAME COLUMN details TO body");
    db.exec("UPDATE tickets SET body = 'fixed' WHERE id = 2");
    auto rest = drain(**source, again->checkpoint, 100);
    CHECK(rest.errors.empty());
    std::map<std::string, std::string> state;
    sluice::testing::apply(state, rest.events);
    auto streamed = collect(**source, rest.checkpoint, 1);  // the update, replayed from L
    sluice::testing::apply(state, streamed.events);
    std::map<std::string, std::string> expected = table_state(db);
    expected["public.notes/1"] = "first";
    expected["public.notes/2"] = "second";
    CHECK(state == expected);
    CHECK(state["public.tickets/2"] == "title: ticket 2\nbody: fixed\n");
    drop_slot(**source);
}

TEST_CASE(
    "postgres: pause holds the stream at a change that cannot be mapped; a fixed mapping "
    "resumes there" *
    doctest::skip(!have_postgres())) {
    Database db;
    PostgresSourceConfig config = two_tables(db, "s_stream_pause", ErrorPolicy::kPause);
    std::string checkpoint;
    {
        auto source = PostgresSource::open(config);
        REQUIRE_MESSAGE(source.ok(), source.status().to_string());
        checkpoint = drain(**source, "", 100, /*acknowledge=*/true).checkpoint;
        // One transaction: an insert before the rename is delivered, the one after holds.
        db.exec(
            "BEGIN; INSERT INTO notes VALUES (3, 'before', true); "
            "ALTER TABLE tickets RENAME COLUMN body TO details; "
            "INSERT INTO tickets VALUES (10, 'after', 'renamed', 't', 1, 'eng'); "
            "INSERT INTO notes VALUES (4, 'behind', false); COMMIT");
        auto held = collect(**source, checkpoint, 2);
        CHECK(describe(held.events) == std::vector<std::string>{"upsert public.notes/3"});
        REQUIRE(held.errors.size() == 1);
        CHECK(held.errors[0].key == "public.tickets/10");
        auto again = (*source)->poll(held.checkpoint, PollOptions{100});
        REQUIRE_MESSAGE(again.ok(), again.status().to_string());
        CHECK(again->paused);
        CHECK(again->events.empty());
        CHECK(again->checkpoint == held.checkpoint);
        REQUIRE(again->errors.size() == 1);
        CHECK(again->errors[0].key == "public.tickets/10");
        REQUIRE((*source)->acknowledge(held.checkpoint).ok());
        checkpoint = held.checkpoint;
    }
    // The operator maps the renamed column; the held change and the rest follow.
    config.tables[0].mapping.text = {"title", "details"};
    auto fixed = PostgresSource::open(config);
    REQUIRE_MESSAGE(fixed.ok(), fixed.status().to_string());
    auto resumed = collect(**fixed, checkpoint, 2);
    CHECK(resumed.errors.empty());
    CHECK(describe(resumed.events) ==
          std::vector<std::string>{"upsert public.tickets/10", "upsert public.notes/4"});
    CHECK(resumed.events[0].document.text == "title: after\ndetails: renamed\n");
    drop_slot(**fixed);
}

TEST_CASE(
    "postgres: rows whose key column is null are an error record for the table, in the "
    "snapshot and the stream; skip goes on, pause holds until they have keys" *
    doctest::skip(!have_postgres())) {
    for (ErrorPolicy policy : {ErrorPolicy::kSkip, ErrorPolicy::kPause}) {
        CAPTURE(error_policy_name(policy));
        Database db;
        db.exec("CREATE TABLE items(id serial PRIMARY KEY, code text, label text)");
        db.exec(
            "INSERT INTO items(code, label) VALUES ('a', 'alpha'), (NULL, 'lost'), "
            "('c', 'gamma'), (NULL, 'lost too')");
        PostgresSourceConfig config;
        config.conninfo = db.conninfo;
        config.slot = policy == ErrorPolicy::kSkip ? "s_null_skip" : "s_null_pause";
        config.publication = config.slot + "_pub";
        config.tables.resize(1);
        config.tables[0].table = "items";
        config.tables[0].mapping.key = "code";
        config.tables[0].mapping.text = {"label"};
        config.heartbeat_interval = std::chrono::milliseconds(100);
        config.on_error = policy;
        auto source = PostgresSource::open(config);
        REQUIRE_MESSAGE(source.ok(), source.status().to_string());
        // Not one document keyed "public.items/" for both, nor (with an integer key ending a
        // page) an empty `after` whose cast fails every poll.
        auto snapshot = drain(**source, "", 1);
        CHECK(describe(snapshot.events) ==
              std::vector<std::string>{"upsert public.items/a", "upsert public.items/c"});
        REQUIRE(snapshot.errors.size() == 1);
        CHECK(snapshot.errors[0].key == "public.items");
        CHECK(snapshot.errors[0].message ==
              "2 row(s) of table 'public.items' have a null key column 'code' and cannot be "
              "keyed; they are left out");
        std::map<std::string, std::string> state;
        sluice::testing::apply(state, snapshot.events);
        if (policy == ErrorPolicy::kSkip) {
            db.exec(
                "INSERT INTO items(code, label) VALUES (NULL, 'streamed lost'), "
                "('d', 'delta')");
            auto streamed = collect(**source, snapshot.checkpoint, 2);
            REQUIRE(streamed.errors.size() == 1);
            CHECK(streamed.errors[0].key == "public.items");
            CHECK(streamed.errors[0].message.find("has no value for its key column 'code'") !=
                  std::string::npos);
            CHECK(describe(streamed.events) == std::vector<std::string>{"upsert public.items/d"});
        } else {
            // Held at the table's end until its rows have keys; the fix then streams in.
            auto again = (*source)->poll(snapshot.checkpoint, PollOptions{10});
            REQUIRE_MESSAGE(again.ok(), again.status().to_string());
            CHECK(again->paused);
            CHECK(again->errors.size() == 1);
            CHECK(again->checkpoint == snapshot.checkpoint);
            db.exec("UPDATE items SET code = 'b' || id WHERE code IS NULL");
            auto rest = drain(**source, snapshot.checkpoint, 10);
            CHECK(rest.errors.empty());
            sluice::testing::apply(state, rest.events);
            auto streamed = collect(**source, rest.checkpoint, 2);
            sluice::testing::apply(state, streamed.events);
            CHECK(state == std::map<std::string, std::string>{{"public.items/a", "alpha"},
                                                              {"public.items/b2", "lost"},
                                                              {"public.items/b4", "lost too"},
                                                              {"public.items/c", "gamma"}});
        }
        drop_slot(**source);
    }
}
