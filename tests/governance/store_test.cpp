#include "governance/store.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <thread>

#include "governance/token_format.h"
#include "test_dir.h"

using namespace sluice::governance;
using sluice::Status;
using sluice::StatusCode;
using sluice::testing::TempDir;

namespace {

std::unique_ptr<Store> open_store(const TempDir& dir) {
    auto store = Store::open(dir.path / "catalog.db");
    REQUIRE_MESSAGE(store.ok(), store.status().to_string());
    return std::move(*store);
}

}  // namespace

TEST_CASE("names are validated and three-level names split") {
    CHECK(split_full_name(SecurableType::kTable, "main.sales.orders")->size() == 3);
    CHECK(split_full_name(SecurableType::kTable, "main.sales").status().code() ==
          StatusCode::kInvalidArgument);
    CHECK(split_full_name(SecurableType::kSchema, "main.sa les").status().message().find(
              "character ' '") != std::string::npos);
    CHECK(split_full_name(SecurableType::kCatalog, "").status().code() ==
          StatusCode::kInvalidArgument);
    CHECK(split_full_name(SecurableType::kCatalog, "x;drop").status().code() ==
          StatusCode::kInvalidArgument);
    CHECK(validate_principal_name("alice@example.com").ok());
    CHECK_FALSE(validate_principal_name("alice smith").ok());
    CHECK(parse_privilege("use catalog").value() == Privilege::kUseCatalog);
    CHECK(parse_securable_type("TABLE").value() == SecurableType::kTable);
    CHECK_FALSE(privilege_grantable_on(Privilege::kSelect, SecurableType::kVolume));
    CHECK(privilege_grantable_on(Privilege::kSelect, SecurableType::kCatalog));
    CHECK_FALSE(privilege_grantable_on(Privilege::kUseCatalog, SecurableType::kSchema));
}

TEST_CASE("catalog tree: create, list, update, delete with owners, comments and tags") {
    TempDir dir("catalog");
    auto store = open_store(dir);
    auto alice = store->create_principal("alice", PrincipalKind::kUser, false);
    REQUIRE(alice.ok());

    auto main = store->create_securable(SecurableType::kCatalog, "main", alice->id, "prod data",
                                        {{"team", "finance"}});
    REQUIRE(main.ok());
    CHECK(main->owner == "alice");
    CHECK(main->tags.at("team") == "finance");
    CHECK(store->create_securable(SecurableType::kCatalog, "main", alice->id, "", {})
              .status()
              .code() == StatusCode::kAlreadyExists);
    CHECK(store->create_securable(SecurableType::kSchema, "nope.s", alice->id, "", {})
              .status()
              .code() == StatusCode::kNotFound);
    REQUIRE(store->create_securable(SecurableType::kSchema, "main.sales", alice->id, "", {}).ok());
    REQUIRE(store->create_securable(SecurableType::kTable, "main.sales.orders", alice->id, "", {})
                .ok());
    REQUIRE(store->create_securable(SecurableType::kVolume, "main.sales.files", alice->id, "", {})
                .ok());
    auto tables = store->list_securables(SecurableType::kTable, "main.sales");
    REQUIRE(tables.ok());
    REQUIRE(tables->size() == 1);
    CHECK((*tables)[0].full_name == "main.sales.orders");

    auto bob = store->create_principal("bob", PrincipalKind::kUser, false);
    REQUIRE(bob.ok());
    std::uint64_t before = store->generation();
    auto updated = store->update_securable(SecurableType::kTable, "main.sales.orders", bob->id,
                                           std::string("orders"), std::nullopt);
    REQUIRE(updated.ok());
    CHECK(updated->owner == "bob");
    CHECK(updated->comment == "orders");
    CHECK(store->generation() > before);  // an owner change can change decisions

    CHECK(store->delete_securable(SecurableType::kCatalog, "main", false).code() ==
          StatusCode::kFailedPrecondition);
    CHECK(store->delete_principal("bob").code() == StatusCode::kFailedPrecondition);
    // What must stay stops a forced delete whole: nothing below is deleted either.
    std::vector<std::string> asked;
    Status kept =
        store->delete_securable(SecurableType::kCatalog, "main", true, [&](const Securable& below) {
            asked.push_back(below.full_name);
            return below.type == SecurableType::kVolume && below.tags.empty()
                       ? sluice::failed_precondition("volume '" + below.full_name + "' stays")
                       : Status();
        });
    CHECK(kept.code() == StatusCode::kFailedPrecondition);
    CHECK(kept.message().find("main.sales.files") != std::string::npos);
    CHECK(std::find(asked.begin(), asked.end(), "main.sales") != asked.end());
    CHECK(store->securable(SecurableType::kTable, "main.sales.orders").ok());
    CHECK(store->securable(SecurableType::kSchema, "main.sales").ok());
    CHECK(store->delete_securable(SecurableType::kCatalog, "main", true).ok());
    CHECK(store->securable(SecurableType::kTable, "main.sales.orders").status().code() ==
          StatusCode::kNotFound);
    CHECK(store->delete_principal("bob").ok());
}

TEST_CASE("nested groups refuse cycles") {
    TempDir dir("groups");
    auto store = open_store(dir);
    for (const char* name : {"a", "b", "c"}) {
        REQUIRE(store->create_principal(name, PrincipalKind::kGroup, false).ok());
    }
    REQUIRE(store->create_principal("u", PrincipalKind::kUser, false).ok());
    REQUIRE(store->add_member("a", "b").ok());
    REQUIRE(store->add_member("b", "c").ok());
    REQUIRE(store->add_member("c", "u").ok());
    auto cycle = store->add_member("c", "a");
    CHECK(cycle.code() == StatusCode::kFailedPrecondition);
    CHECK(cycle.message().find("cycle") != std::string::npos);
    CHECK(store->add_member("a", "a").code() == StatusCode::kFailedPrecondition);
    CHECK(store->add_member("u", "a").code() == StatusCode::kFailedPrecondition);  // not a group
    CHECK(store->members("c").value() == std::vector<std::string>{"u"});
}

TEST_CASE("grants are validated per securable type and applied all or nothing") {
    TempDir dir("grants");
    auto store = open_store(dir);
    auto alice = store->create_principal("alice", PrincipalKind::kUser, false);
    auto main = store->create_securable(SecurableType::kCatalog, "main", alice->id, "", {});
    REQUIRE(main.ok());
    auto bad = store->update_permissions(main->id, SecurableType::kCatalog,
                                         {{"alice", {Privilege::kUseSchema}, {}}}, 0);
    CHECK(bad.ok());  // USE_SCHEMA on a catalog reaches its schemas
    auto wrong = store->update_permissions(main->id, SecurableType::kCatalog,
                                           {{"alice", {Privilege::kCreateCatalog}, {}}}, 0);
    CHECK(wrong.code() == sluice::StatusCode::kInvalidArgument);
    auto unknown = store->update_permissions(
        main->id, SecurableType::kCatalog,
        {{"alice", {Privilege::kBrowse}, {}}, {"nobody", {Privilege::kBrowse}, {}}}, 0);
    CHECK(unknown.code() == StatusCode::kNotFound);
    auto grants = store->grants_on(main->id);
    REQUIRE(grants.ok());
    CHECK(grants->size() == 1);  // BROWSE for alice rolled back with the failed change
}

TEST_CASE("tokens: format, checksum, hash-only storage, expiry, revocation, last use") {
    TempDir dir("tokens");
    auto store = open_store(dir);
    auto alice = store->create_principal("alice", PrincipalKind::kUser, false);
    auto token = store->create_token(alice->id, "ci", std::nullopt);
    REQUIRE(token.ok());
    CHECK(token->secret.rfind("slc_", 0) == 0);
    CHECK(token->secret.size() == kTokenLength);
    CHECK(is_well_formed_token(token->secret));
    std::string flipped = token->secret;
    flipped[10] = flipped[10] == 'a' ? 'b' : 'a';
    CHECK_FALSE(is_well_formed_token(flipped));  // checksum catches the typo

    auto auth = store->authenticate(token->secret);
    REQUIRE(auth.ok());
    CHECK(auth->principal.name == "alice");
    CHECK(auth->token_id == token->info.id);
    CHECK(store->token(token->info.id)->last_used_at_ms.has_value());
    CHECK(store->authenticate(flipped).status().code() == StatusCode::kUnauthenticated);
    auto forged = generate_token();  // well formed, never issued
    CHECK(store->authenticate(*forged).status().message() == "bearer token is not known");

    // The secret is not stored anywhere in the database file.
    std::ifstream file(dir.path / "catalog.db", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    std::ifstream wal(dir.path / "catalog.db-wal", std::ios::binary);
    bytes.append((std::istreambuf_iterator<char>(wal)), std::istreambuf_iterator<char>());
    CHECK(bytes.find(token->secret.substr(4, 64)) == std::string::npos);

    CHECK(store->revoke_token(token->info.id).ok());
    CHECK(store->authenticate(token->secret).status().message().find("revoked") !=
          std::string::npos);

    auto short_lived = store->create_token(alice->id, "", 1);
    REQUIRE(short_lived.ok());
    CHECK(store->authenticate(short_lived->secret).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    CHECK(store->authenticate(short_lived->secret).status().message().find("expired") !=
          std::string::npos);
    CHECK(store->tokens(alice->id)->size() == 2);
}

TEST_CASE("reopening keeps data and does not re-run migrations") {
    TempDir dir("reopen");
    {
        auto store = open_store(dir);
        REQUIRE(store->create_principal("alice", PrincipalKind::kUser, true).ok());
    }
    auto store = open_store(dir);
    CHECK(store->schema_version() == 3);
    CHECK(store->principal("alice")->is_admin);
}
