#include "governance/usage.h"

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <atomic>
#include <barrier>
#include <thread>

#include "governance/governance.h"
#include "test_dir.h"

using namespace sluice::governance;
using sluice::StatusCode;
using sluice::testing::TempDir;

namespace {

struct World {
    TempDir dir{"usage"};
    std::unique_ptr<Governance> gov;
    Principal alice, bob, analysts;

    World() { open(); }

    void open() {
        auto opened = Governance::open(dir.path);
        REQUIRE(opened.ok());
        gov = std::move(*opened);
        auto found = gov->store().principal("alice");
        if (found.ok()) {
            alice = *found;
            bob = *gov->store().principal("bob");
            analysts = *gov->store().principal("analysts");
            return;
        }
        Store& s = gov->store();
        alice = *s.create_principal("alice", PrincipalKind::kUser, false);
        bob = *s.create_principal("bob", PrincipalKind::kUser, false);
        analysts = *s.create_principal("analysts", PrincipalKind::kGroup, false);
        REQUIRE(s.add_member("analysts", "alice").ok());
    }

    RequestContext as(const Principal& p, std::string request = "req_1") {
        return RequestContext{p.id, p.name, std::move(request), "127.0.0.1", "tok_1"};
    }

    Limit limit(std::string principal, std::string endpoint, LimitKind kind, std::int64_t max) {
        auto set = gov->usage().set_limit(LimitSpec{std::move(principal), std::move(endpoint),
                                                    kind, max},
                                          "admin");
        REQUIRE(set.ok());
        return *set;
    }

    std::int64_t count(const std::string& sql) {
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open((dir.path / "catalog.db").c_str(), &db) == SQLITE_OK);
        sqlite3_stmt* statement = nullptr;
        REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr) == SQLITE_OK);
        REQUIRE(sqlite3_step(statement) == SQLITE_ROW);
        std::int64_t value = sqlite3_column_int64(statement, 0);
        sqlite3_finalize(statement);
        sqlite3_close(db);
        return value;
    }
};

UsageReport tokens(std::int64_t in, std::int64_t out, std::int64_t cached = 0) {
    UsageReport report;
    report.tokens = TokenUsage{in, out, cached};
    report.latency_ms = 12.5;
    return report;
}

}  // namespace

TEST_CASE("a group token budget refuses with the limit named, a retry hint and an audit record") {
    World w;
    w.limit("analysts", "dbrx", LimitKind::kTokensPerDay, 1000);
    Usage& usage = w.gov->usage();

    auto first = usage.reserve(w.as(w.alice), "dbrx", 600);
    REQUIRE(first.ok());
    REQUIRE(usage.settle(std::move(*first), tokens(700, 300)).ok());  // 1000: spent exactly

    LimitDenial denial;
    auto refused = usage.reserve(w.as(w.alice, "req_2"), "dbrx", 1, &denial);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.status().code() == StatusCode::kResourceExhausted);
    CHECK(refused.status().message().rfind(
              "token budget 'tokens/day' of group 'analysts' on endpoint 'dbrx' is spent: 1000 "
              "of 1000",
              0) == 0);
    CHECK(refused.status().message().find("retry after") != std::string::npos);
    CHECK(denial.limit.spec.principal == "analysts");
    CHECK(denial.limit.used == 1000);
    REQUIRE(denial.retry_after_s.has_value());
    CHECK(*denial.retry_after_s > 0);
    CHECK(*denial.retry_after_s <= 86'400);

    // Not a member: not limited. Another endpoint: not limited.
    CHECK(usage.reserve(w.as(w.bob), "dbrx", 5000).ok());
    CHECK(usage.reserve(w.as(w.alice), "other", 5000).ok());
    CHECK(w.count("SELECT COUNT(*) FROM audit_log WHERE action = 'usage.reserve' AND "
                  "result = 'deny' AND decided_by LIKE 'token budget%'") == 1);
}

TEST_CASE("an estimate larger than the limit itself is refused without a retry hint") {
    World w;
    w.limit("bob", "*", LimitKind::kTokensPerMinute, 100);
    LimitDenial denial;
    auto refused = w.gov->usage().reserve(w.as(w.bob), "dbrx", 101, &denial);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.status().message().find("exceeds it outright") != std::string::npos);
    CHECK(refused.status().message().find("on every endpoint") != std::string::npos);
    CHECK_FALSE(denial.retry_after_s.has_value());
}

TEST_CASE("requests per minute count reservations; an unsettled reservation gives them back") {
    World w;
    w.limit("", "dbrx", LimitKind::kRequestsPerMinute, 2);
    Usage& usage = w.gov->usage();
    {
        auto a = usage.reserve(w.as(w.alice), "dbrx", 10);
        auto b = usage.reserve(w.as(w.bob), "dbrx", 10);
        REQUIRE(a.ok());
        REQUIRE(b.ok());
        LimitDenial denial;
        auto c = usage.reserve(w.as(w.bob), "dbrx", 10, &denial);
        REQUIRE_FALSE(c.ok());
        CHECK(c.status().message().rfind(
                  "rate limit 'requests/min' of all callers on endpoint 'dbrx' is reached: 2 of 2",
                  0) == 0);
        REQUIRE(denial.retry_after_s.has_value());
        CHECK(*denial.retry_after_s >= 1);
        CHECK(*denial.retry_after_s <= 60);
        // a and b go out of scope unsettled: the calls did not happen.
    }
    auto again = usage.reserve(w.as(w.alice), "dbrx", 10);
    CHECK(again.ok());
    auto limits = usage.limits();
    REQUIRE(limits.ok());
    REQUIRE(limits->size() == 1);
    CHECK((*limits)[0].used == 1);
}

TEST_CASE("settle writes the usage row with its cost and audit record in one transaction") {
    World w;
    EndpointSettings settings;
    settings.name = "dbrx";
    settings.prices = EndpointPrices{2.0, 6.0, 0.5};
    REQUIRE(w.gov->endpoints().put(settings, "admin").ok());
    auto reservation = w.gov->usage().reserve(w.as(w.alice, "req_42"), "dbrx", 100);
    REQUIRE(reservation.ok());
    UsageReport report = tokens(1'000'000, 500'000, 200'000);
    report.agent = "support-bot";
    auto row = w.gov->usage().settle(std::move(*reservation), report);
    REQUIRE(row.ok());
    // 800k uncached * $2 + 200k cached * $0.5 + 500k out * $6, per million.
    CHECK(row->cost_usd == doctest::Approx(1.6 + 0.1 + 3.0));
    CHECK(w.count("SELECT COUNT(*) FROM usage WHERE request_id = 'req_42' AND principal = "
                  "'alice' AND agent = 'support-bot' AND input_tokens = 1000000") == 1);
    CHECK(w.count("SELECT COUNT(*) FROM audit_log WHERE action = 'usage' AND request_id = "
                  "'req_42' AND details LIKE '%\"output_tokens\":500000%'") == 1);

    auto report_query = w.gov->usage().query(UsageQuery{{UsageDimension::kPrincipal,
                                                         UsageDimension::kEndpoint,
                                                         UsageDimension::kDay},
                                                        {}, {}, {}, {}});
    REQUIRE(report_query.ok());
    REQUIRE(report_query->size() == 1);
    const UsageAggregate& a = (*report_query)[0];
    CHECK(a.principal == "alice");
    CHECK(a.endpoint == "dbrx");
    CHECK(a.day.size() == 10);
    CHECK(a.requests == 1);
    CHECK(a.tokens.output_tokens == 500'000);
    CHECK(a.cost_usd == doctest::Approx(4.7));
}

TEST_CASE("a settled or moved-from reservation cannot be settled again") {
    World w;
    auto reservation = w.gov->usage().reserve(w.as(w.alice), "dbrx", 10);
    REQUIRE(reservation.ok());
    Reservation moved = std::move(*reservation);
    CHECK_FALSE(reservation->active());
    auto twice = w.gov->usage().settle(std::move(*reservation), tokens(1, 1));
    CHECK(twice.status().code() == StatusCode::kFailedPrecondition);
    CHECK(w.gov->usage().settle(std::move(moved), tokens(1, 1)).ok());
    CHECK_FALSE(w.gov->usage().reserve(w.as(w.alice), "bad endpoint!", 1).ok());
    CHECK_FALSE(w.gov->usage().reserve(w.as(w.alice), "dbrx", -1).ok());
}

TEST_CASE("100 parallel requests against a nearly spent budget do not overshoot it") {
    World w;
    constexpr std::int64_t kBudget = 100'000;
    constexpr std::int64_t kPerCall = 300;
    w.limit("analysts", "dbrx", LimitKind::kTokensPerDay, kBudget);
    Usage& usage = w.gov->usage();
    // Spend all but 1,000 tokens: room for three calls of 300, not four.
    auto spend = usage.reserve(w.as(w.alice), "dbrx", kBudget - 1000);
    REQUIRE(spend.ok());
    REQUIRE(usage.settle(std::move(*spend), tokens(kBudget - 1000, 0)).ok());

    std::atomic<int> admitted{0};
    std::atomic<int> refused{0};
    std::barrier start(100);
    {
        std::vector<std::jthread> threads;
        for (int i = 0; i < 100; ++i) {
            threads.emplace_back([&, i] {
                RequestContext ctx = w.as(w.alice, "req_p" + std::to_string(i));
                start.arrive_and_wait();
                auto reservation = usage.reserve(ctx, "dbrx", kPerCall);
                if (!reservation.ok()) {
                    CHECK(reservation.status().code() == StatusCode::kResourceExhausted);
                    ++refused;
                    return;
                }
                ++admitted;
                auto settled = usage.settle(std::move(*reservation), tokens(200, kPerCall - 200));
                CHECK(settled.ok());
            });
        }
    }
    CHECK(admitted.load() == 3);
    CHECK(refused.load() == 97);
    std::int64_t spent =
        w.count("SELECT SUM(input_tokens + output_tokens) FROM usage WHERE endpoint = 'dbrx'");
    CHECK(spent <= kBudget);
    CHECK(spent == kBudget - 1000 + 3 * kPerCall);
    auto limits = usage.limits();
    REQUIRE(limits.ok());
    CHECK((*limits)[0].used == spent);
}

TEST_CASE("budgets survive a restart; joining a group brings today's usage into its budget") {
    World w;
    w.limit("bob", "dbrx", LimitKind::kTokensPerDay, 500);
    auto r = w.gov->usage().reserve(w.as(w.bob), "dbrx", 400);
    REQUIRE(r.ok());
    REQUIRE(w.gov->usage().settle(std::move(*r), tokens(300, 100)).ok());

    w.gov.reset();
    w.open();
    auto limits = w.gov->usage().limits();
    REQUIRE(limits.ok());
    REQUIRE(limits->size() == 1);
    CHECK((*limits)[0].used == 400);
    CHECK_FALSE(w.gov->usage().reserve(w.as(w.bob), "dbrx", 101).ok());
    CHECK(w.gov->usage().reserve(w.as(w.bob), "dbrx", 100).ok());

    w.limit("analysts", "*", LimitKind::kTokensPerDay, 10'000);
    REQUIRE(w.gov->store().add_member("analysts", "bob").ok());
    auto for_bob = w.gov->usage().limits_for(w.bob.id);
    REQUIRE(for_bob.ok());
    REQUIRE(for_bob->size() == 2);
    for (const Limit& limit : *for_bob) {
        CHECK(limit.used == 400);
    }
}

TEST_CASE("limits are validated; deleting one lifts it") {
    World w;
    Usage& usage = w.gov->usage();
    CHECK(usage.set_limit({"nobody", "dbrx", LimitKind::kTokensPerDay, 1}, "admin")
              .status()
              .code() == StatusCode::kNotFound);
    CHECK(usage.set_limit({"bob", "bad name!", LimitKind::kTokensPerDay, 1}, "admin")
              .status()
              .code() == StatusCode::kInvalidArgument);
    CHECK(usage.set_limit({"bob", "dbrx", LimitKind::kTokensPerDay, -1}, "admin")
              .status()
              .code() == StatusCode::kInvalidArgument);
    CHECK_FALSE(parse_limit_kind("tokens/week").ok());
    Limit zero = w.limit("bob", "dbrx", LimitKind::kRequestsPerMinute, 0);
    CHECK_FALSE(usage.reserve(w.as(w.bob), "dbrx", 1).ok());
    // Setting it again replaces it rather than adding a second one.
    Limit replaced = w.limit("bob", "dbrx", LimitKind::kRequestsPerMinute, 5);
    CHECK(replaced.id == zero.id);
    CHECK(usage.limits()->size() == 1);
    CHECK(usage.reserve(w.as(w.bob), "dbrx", 1).ok());
    REQUIRE(usage.delete_limit(zero.id).ok());
    CHECK(usage.delete_limit(zero.id).code() == StatusCode::kNotFound);
    CHECK(usage.limits()->empty());
}

TEST_CASE("usage queries filter by principal, endpoint and time") {
    World w;
    Usage& usage = w.gov->usage();
    REQUIRE(usage.record(w.as(w.alice), "dbrx", tokens(10, 5)).ok());
    REQUIRE(usage.record(w.as(w.alice), "embed", tokens(100, 0)).ok());
    REQUIRE(usage.record(w.as(w.bob), "dbrx", tokens(1, 1)).ok());
    auto by_principal = usage.query(UsageQuery{{UsageDimension::kPrincipal}, {}, {}, {}, {}});
    REQUIRE(by_principal.ok());
    REQUIRE(by_principal->size() == 2);
    CHECK((*by_principal)[0].principal == "alice");
    CHECK((*by_principal)[0].requests == 2);
    CHECK((*by_principal)[0].tokens.input_tokens == 110);
    auto dbrx_only = usage.query(UsageQuery{{}, {}, {}, {}, std::string("dbrx")});
    REQUIRE(dbrx_only.ok());
    REQUIRE(dbrx_only->size() == 1);
    CHECK((*dbrx_only)[0].requests == 2);
    auto future = usage.query(UsageQuery{{}, std::int64_t{4'000'000'000'000'000}, {}, {}, {}});
    REQUIRE(future.ok());
    CHECK(future->empty());
    CHECK_FALSE(parse_usage_dimension("week").ok());
}
