#include "governance/authorizer.h"

#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include "governance/governance.h"
#include "test_dir.h"

using namespace sluice::governance;
using sluice::Status;
using sluice::StatusCode;
using sluice::testing::TempDir;

namespace {

// "p" + i, by append: GCC 12 reports a false -Wrestrict on user_name(i).
std::string user_name(int i) { return std::string("p").append(std::to_string(i)); }

struct Catalog {
    TempDir dir{"authz"};
    std::unique_ptr<Governance> gov;
    Principal owner, alice, analysts, team;

    Catalog() {
        auto opened = Governance::open(dir.path);
        REQUIRE(opened.ok());
        gov = std::move(*opened);
        Store& s = gov->store();
        owner = *s.create_principal("owner", PrincipalKind::kUser, false);
        alice = *s.create_principal("alice", PrincipalKind::kUser, false);
        analysts = *s.create_principal("analysts", PrincipalKind::kGroup, false);
        team = *s.create_principal("team", PrincipalKind::kGroup, false);
        REQUIRE(s.add_member("analysts", "team").ok());
        REQUIRE(s.add_member("team", "alice").ok());
        REQUIRE(s.create_securable(SecurableType::kCatalog, "main", owner.id, "", {}).ok());
        REQUIRE(s.create_securable(SecurableType::kSchema, "main.sales", owner.id, "", {}).ok());
        REQUIRE(s.create_securable(SecurableType::kTable, "main.sales.orders", owner.id, "", {})
                    .ok());
    }

    Status grant(SecurableType type, const std::string& name, const std::string& who,
                 std::vector<Privilege> add, std::vector<Privilege> remove = {}) {
        auto s = gov->store().securable(type, name);
        REQUIRE(s.ok());
        return gov->store().update_permissions(s->id, type, {{who, add, remove}}, owner.id);
    }

    RequestContext as(const Principal& p) {
        return RequestContext{p.id, p.name, "req_test", "127.0.0.1", "tok_test"};
    }
};

}  // namespace

TEST_CASE("usage privileges are needed on the containers, and the decision names the grant") {
    Catalog c;
    Authorizer& authz = c.gov->authorizer();
    REQUIRE(c.grant(SecurableType::kCatalog, "main", "analysts", {Privilege::kSelect}).ok());
    auto denied = authz.check(c.alice.id, Privilege::kSelect, SecurableType::kTable,
                              "main.sales.orders");
    REQUIRE(denied.ok());
    CHECK_FALSE(denied->allowed);
    CHECK(denied->reason.find("missing USE_SCHEMA on schema 'main.sales'") != std::string::npos);

    REQUIRE(c.grant(SecurableType::kCatalog, "main", "team",
                    {Privilege::kUseCatalog, Privilege::kUseSchema})
                .ok());
    auto allowed = authz.check(c.alice.id, Privilege::kSelect, SecurableType::kTable,
                               "main.sales.orders");
    REQUIRE(allowed.ok());
    CHECK(allowed->allowed);
    CHECK(allowed->source == DecisionSource::kGrant);
    CHECK(allowed->via_principal == "analysts");
    CHECK(allowed->reason == "grant SELECT on catalog 'main' to group 'analysts'");

    auto owner = authz.check(c.owner.id, Privilege::kManage, SecurableType::kTable,
                             "main.sales.orders");
    CHECK(owner->source == DecisionSource::kOwner);
    CHECK(authz.check(c.alice.id, Privilege::kSelect, SecurableType::kTable, "main.sales.nope")
              .status()
              .code() == StatusCode::kNotFound);
}

TEST_CASE("a revoke takes effect on the very next check") {
    Catalog c;
    Authorizer& authz = c.gov->authorizer();
    REQUIRE(c.grant(SecurableType::kCatalog, "main", "alice",
                    {Privilege::kUseCatalog, Privilege::kUseSchema, Privilege::kSelect})
                .ok());
    CHECK(authz.check(c.alice.id, Privilege::kSelect, SecurableType::kTable, "main.sales.orders")
              ->allowed);
    REQUIRE(c.grant(SecurableType::kCatalog, "main", "alice", {}, {Privilege::kSelect}).ok());
    CHECK_FALSE(authz
                    .check(c.alice.id, Privilege::kSelect, SecurableType::kTable,
                           "main.sales.orders")
                    ->allowed);
    // Membership changes too.
    REQUIRE(c.grant(SecurableType::kCatalog, "main", "analysts", {Privilege::kSelect}).ok());
    CHECK(authz.check(c.alice.id, Privilege::kSelect, SecurableType::kTable, "main.sales.orders")
              ->allowed);
    REQUIRE(c.gov->store().remove_member("team", "alice").ok());
    CHECK_FALSE(authz
                    .check(c.alice.id, Privilege::kSelect, SecurableType::kTable,
                           "main.sales.orders")
                    ->allowed);
}

TEST_CASE("require audits allows and denies with the deciding grant") {
    Catalog c;
    Authorizer& authz = c.gov->authorizer();
    std::int64_t before = c.gov->audit().appended();
    auto denied = authz.require(c.as(c.alice), Privilege::kSelect, SecurableType::kTable,
                                "main.sales.orders");
    CHECK(denied.code() == StatusCode::kPermissionDenied);
    CHECK(authz.require(c.as(c.owner), Privilege::kSelect, SecurableType::kTable,
                        "main.sales.orders")
              .ok());
    CHECK(authz.require(c.as(c.owner), Privilege::kSelect, SecurableType::kTable, "main.x.y")
              .code() == StatusCode::kNotFound);
    CHECK(c.gov->audit().appended() == before + 3);
    std::ostringstream out;
    REQUIRE(export_audit_log(c.dir.path / "catalog.db", 0, 0, out).ok());
    std::string text = out.str();
    CHECK(text.find("\"principal\":\"alice\",\"request_id\":\"req_test\",\"result\":\"deny\"") !=
          std::string::npos);
    CHECK(text.find("ownership of table 'main.sales.orders' by user 'owner'") != std::string::npos);
}

TEST_CASE("parallel grants and checks lose no update") {
    Catalog c;
    Store& s = c.gov->store();
    Authorizer& authz = c.gov->authorizer();
    constexpr int kUsers = 16;
    for (int i = 0; i < kUsers; ++i) {
        REQUIRE(s.create_principal(user_name(i), PrincipalKind::kUser, false).ok());
    }
    std::atomic<bool> stop{false};
    std::vector<std::jthread> checkers;
    for (int t = 0; t < 2; ++t) {
        checkers.emplace_back([&] {
            while (!stop.load()) {
                REQUIRE(authz.check(c.alice.id, Privilege::kSelect, SecurableType::kTable,
                                    "main.sales.orders")
                            .ok());
            }
        });
    }
    {
        std::vector<std::jthread> granters;
        for (int i = 0; i < kUsers; ++i) {
            granters.emplace_back([&c, i] {
                std::string who = user_name(i);
                REQUIRE(c.grant(SecurableType::kCatalog, "main", who,
                                {Privilege::kUseCatalog, Privilege::kUseSchema, Privilege::kSelect})
                            .ok());
            });
        }
    }
    stop = true;
    checkers.clear();
    auto catalog = s.securable(SecurableType::kCatalog, "main");
    CHECK(s.grants_on(catalog->id)->size() == kUsers * 3);
    for (int i = 0; i < kUsers; ++i) {
        auto p = s.principal(user_name(i));
        CHECK(authz.check(p->id, Privilege::kSelect, SecurableType::kTable, "main.sales.orders")
                  ->allowed);
    }
}

TEST_CASE("bootstrap creates one admin once; authenticate audits both outcomes") {
    TempDir dir("bootstrap");
    auto gov = Governance::open(dir.path);
    REQUIRE(gov.ok());
    auto first = (*gov)->bootstrap_admin();
    REQUIRE(first.ok());
    REQUIRE(first->has_value());
    auto second = (*gov)->bootstrap_admin();
    REQUIRE(second.ok());
    CHECK_FALSE(second->has_value());
    auto ctx = (*gov)->authenticate("Bearer " + (*first)->secret, "req_1", "10.0.0.1");
    REQUIRE(ctx.ok());
    CHECK(ctx->principal == "admin");
    CHECK((*gov)->authenticate("Bearer nope", "req_2", "10.0.0.1").status().code() ==
          StatusCode::kUnauthenticated);
    CHECK((*gov)->authenticate("", "req_3", "10.0.0.1").status().code() ==
          StatusCode::kUnauthenticated);
    CHECK((*gov)->audit().appended() == 4);  // bootstrap, one success, two failures
    CHECK(*(*gov)->authorizer().is_admin(ctx->principal_id));
}
