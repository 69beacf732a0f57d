// Connection secrets at rest: sealed in catalog.db, plaintext rows of older data directories
// sealed on open, and a wrong key or an altered row refused with an error naming the connection.

#include <sqlite3.h>

#include "agents/agent_store.h"
#include "agents_fixture.h"
#include "doctest/doctest.h"

namespace sluice::agents {
namespace {

using nlohmann::json;

constexpr std::string_view kSecret = "Bearer s3cr3t-token";

std::unique_ptr<governance::SecretBox> box_of(char fill) {
    auto box = governance::SecretBox::from_key(std::string(32, fill));
    REQUIRE(box.ok());
    return std::move(*box);
}

// The stored JSON of connection `name`, straight from catalog.db.
std::string stored_spec(const std::filesystem::path& db_path, const std::string& name) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(db_path.c_str(), &db) == SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    REQUIRE(sqlite3_prepare_v2(db,
                               "SELECT spec FROM agent_objects WHERE kind = 'connection' AND "
                               "name = ?",
                               -1, &stmt, nullptr) == SQLITE_OK);
    sqlite3_bind_text(stmt, 1, name.c_str(), -1, SQLITE_TRANSIENT);
    std::string spec;
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        spec = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return spec;
}

void exec(const std::filesystem::path& db_path, const std::string& sql) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(db_path.c_str(), &db) == SQLITE_OK);
    char* error = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
    std::string message = error != nullptr ? error : "";
    sqlite3_free(error);
    sqlite3_close(db);
    REQUIRE_MESSAGE(rc == SQLITE_OK, message);
}

Connection crm() {
    auto connection = connection_from_json(json{{"name", "crm"},
                                                {"allowed_hosts", {"crm.local"}},
                                                {"secret_header", "Authorization"},
                                                {"secret", std::string(kSecret)}});
    REQUIRE(connection.ok());
    return *connection;
}

}  // namespace

TEST_CASE("connection secrets: sealed in catalog.db, read back as they were put") {
    testing::TempDir dir("secrets-roundtrip");
    const auto db_path = dir.path / "catalog.db";
    auto box = box_of('a');
    auto store = AgentStore::open(db_path, *box);
    REQUIRE(store.ok());
    REQUIRE((*store)->put_connection(crm()).ok());
    const std::string spec = stored_spec(db_path, "crm");
    CHECK(spec.find("s3cr3t") == std::string::npos);
    CHECK(json::parse(spec)["secret"].get<std::string>().starts_with("sealed:v1:"));
    auto read = (*store)->connection("crm");
    REQUIRE(read.ok());
    CHECK(read->secret == kSecret);
    CHECK(read->secret_header == "Authorization");

    // A connection without a secret stores none.
    auto open_api = connection_from_json(json{{"name", "public"}, {"allowed_hosts", {"x.local"}}});
    REQUIRE(open_api.ok());
    REQUIRE((*store)->put_connection(*open_api).ok());
    CHECK(json::parse(stored_spec(db_path, "public"))["secret"] == "");
    CHECK((*store)->connection("public")->secret.empty());
}

TEST_CASE("connection secrets: a plaintext row of an older data directory is sealed on open") {
    testing::TempDir dir("secrets-migrate");
    const auto db_path = dir.path / "catalog.db";
    // The table and row as they were stored before secrets were encrypted.
    exec(db_path, R"sql(
        CREATE TABLE agent_objects (kind TEXT NOT NULL, name TEXT NOT NULL, spec TEXT NOT NULL,
                                    updated_at_us INTEGER NOT NULL, PRIMARY KEY (kind, name));
        INSERT INTO agent_objects VALUES ('connection', 'crm',
          '{"name":"crm","allowed_hosts":["crm.local"],"secret_header":"Authorization","secret":"Bearer s3cr3t-token","timeout_ms":10000,"max_response_bytes":1048576}',
          1);
    )sql");
    CHECK(stored_spec(db_path, "crm").find("s3cr3t") != std::string::npos);
    auto box = box_of('a');
    auto store = AgentStore::open(db_path, *box);
    REQUIRE(store.ok());
    CHECK(stored_spec(db_path, "crm").find("s3cr3t") == std::string::npos);
    auto read = (*store)->connection("crm");
    REQUIRE(read.ok());
    CHECK(read->secret == kSecret);
    // Opening again changes nothing (already sealed).
    const std::string sealed = stored_spec(db_path, "crm");
    store = AgentStore::open(db_path, *box);
    REQUIRE(store.ok());
    CHECK(stored_spec(db_path, "crm") == sealed);
}

TEST_CASE("connection secrets: a wrong key or an altered row is an error naming the connection") {
    testing::TempDir dir("secrets-wrong-key");
    const auto db_path = dir.path / "catalog.db";
    auto box = box_of('a');
    {
        auto store = AgentStore::open(db_path, *box);
        REQUIRE(store.ok());
        REQUIRE((*store)->put_connection(crm()).ok());
    }
    // A key made in place of the one that sealed them (secrets.key lost or replaced): the store
    // does not open, so that nothing is sealed beside secrets that can never be read.
    auto other = box_of('b');
    auto refused = AgentStore::open(db_path, *other);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.status().code() == StatusCode::kFailedPrecondition);
    const std::string message = refused.status().message();
    CHECK(message.find("'crm' (key id " + box->key_id() + ")") != std::string::npos);
    CHECK(message.find("(key id " + other->key_id() + ")") != std::string::npos);
    CHECK(message.find("sluice connection forget-secrets --data-dir " + dir.path.string()) !=
          std::string::npos);
    CHECK(message.find("s3cr3t") == std::string::npos);

    // Flip one byte of the sealed value in the row: the right key refuses it too.
    json spec = json::parse(stored_spec(db_path, "crm"));
    std::string value = spec["secret"];
    value[value.size() - 3] = value[value.size() - 3] == 'a' ? 'b' : 'a';
    spec["secret"] = value;
    exec(db_path, "UPDATE agent_objects SET spec = '" + spec.dump() +
                      "' WHERE kind = 'connection' AND name = 'crm'");
    auto right = AgentStore::open(db_path, *box);
    REQUIRE(right.ok());
    auto altered = (*right)->connection("crm");
    REQUIRE_FALSE(altered.ok());
    CHECK(altered.status().message().find("connection:crm") != std::string::npos);
    CHECK(altered.status().message().find("altered") != std::string::npos);
}

TEST_CASE("connection secrets: those sealed with a lost key are forgotten, the others kept") {
    testing::TempDir dir("secrets-forget");
    const auto db_path = dir.path / "catalog.db";
    auto box = box_of('a');
    {
        auto store = AgentStore::open(db_path, *box);
        REQUIRE(store.ok());
        REQUIRE((*store)->put_connection(crm()).ok());
        auto open_api =
            connection_from_json(json{{"name", "public"}, {"allowed_hosts", {"x.local"}}});
        REQUIRE(open_api.ok());
        REQUIRE((*store)->put_connection(*open_api).ok());
    }
    // A row sealed with a key that is gone (copied from another data directory, or stored
    // before the key file was replaced).
    auto lost = box_of('c');
    auto sealed = lost->seal("connection:hr", "hr-token");
    REQUIRE(sealed.ok());
    json hr = {
        {"name", "hr"},      {"allowed_hosts", {"hr.local"}}, {"secret_header", "X-Key"},
        {"secret", *sealed}, {"timeout_ms", 10000},           {"max_response_bytes", 1048576}};
    exec(db_path, "INSERT INTO agent_objects VALUES ('connection', 'hr', '" + hr.dump() + "', 1)");
    auto refused = AgentStore::open(db_path, *box);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.status().message().find("connection 'hr' (key id " + lost->key_id() + ")") !=
          std::string::npos);
    CHECK(refused.status().message().find("crm") == std::string::npos);

    auto forgotten = AgentStore::forget_foreign_secrets(db_path, *box);
    REQUIRE(forgotten.ok());
    REQUIRE(forgotten->size() == 1);
    CHECK((*forgotten)[0].connection == "hr");
    CHECK((*forgotten)[0].key_id == lost->key_id());
    CHECK(json::parse(stored_spec(db_path, "hr")).contains("secret") == false);
    CHECK(json::parse(stored_spec(db_path, "hr"))["allowed_hosts"] == json{"hr.local"});

    auto store = AgentStore::open(db_path, *box);
    REQUIRE(store.ok());
    CHECK((*store)->connection("crm")->secret == kSecret);
    auto read = (*store)->connection("hr");
    REQUIRE(read.ok());
    CHECK(read->secret.empty());
    CHECK(read->secret_header == "X-Key");
    auto again = AgentStore::forget_foreign_secrets(db_path, *box);
    REQUIRE(again.ok());
    CHECK(again->empty());
}

TEST_CASE(
    "connection secrets: a definition sent back without its secret keeps it, if it goes "
    "where it went") {
    Connection stored = crm();
    // As GET shows it (has_secret, no secret), edited and sent back.
    json shown = connection_to_json(stored, false);
    CHECK(shown["has_secret"] == true);
    shown["timeout_ms"] = 2000;
    shown["allowed_hosts"] = {"crm.local", "crm.local"};
    auto edited = connection_from_json(shown);
    REQUIRE(edited.ok());
    REQUIRE(keep_stored_secret(*edited, stored).ok());
    CHECK(edited->secret == kSecret);
    CHECK(edited->timeout_ms == 2000);

    // Elsewhere, or in another header, the secret is not carried: it must be sent again.
    for (const auto& [member, value] :
         {std::pair<std::string, json>{"allowed_hosts", {"crm.local", "evil.example"}},
          {"secret_header", "X-Echo"}}) {
        json moved = connection_to_json(stored, false);
        moved[member] = value;
        auto changed = connection_from_json(moved);
        REQUIRE(changed.ok());
        const Status refused = keep_stored_secret(*changed, stored);
        CHECK(refused.code() == StatusCode::kInvalidArgument);
        CHECK(refused.message().find("send the secret again") != std::string::npos);
        CHECK(changed->secret.empty());
    }
    // A stored connection without a secret has nothing to keep.
    Connection bare = stored;
    bare.secret.clear();
    json moved = connection_to_json(bare, false);
    moved["allowed_hosts"] = {"other.local"};
    auto changed = connection_from_json(moved);
    REQUIRE(changed.ok());
    CHECK(keep_stored_secret(*changed, bare).ok());
    CHECK(changed->secret.empty());
}

}  // namespace sluice::agents
