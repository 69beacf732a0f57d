#include "governance/guardrails.h"

#include <doctest/doctest.h>

#include <sstream>

#include "governance/governance.h"
#include "test_dir.h"

using namespace sluice::governance;
using sluice::StatusCode;
using sluice::testing::TempDir;

namespace {

struct Gateway {
    TempDir dir{"guardrails"};
    std::unique_ptr<Governance> gov;
    RequestContext ctx{1, "alice", "req_g", "127.0.0.1", "tok_1"};

    Gateway() {
        auto opened = Governance::open(dir.path);
        REQUIRE(opened.ok());
        gov = std::move(*opened);
    }

    void policy(const std::string& endpoint, PiiAction input, PiiAction output,
                PiiTypeSet types = kAllPiiTypes) {
        EndpointSettings s;
        s.name = endpoint;
        s.guardrails = GuardrailPolicy{input, output, types};
        REQUIRE(gov->endpoints().put(s, "admin").ok());
    }

    std::string audit_text() {
        std::ostringstream out;
        REQUIRE(export_audit_log(dir.path / "catalog.db", 0, 0, out).ok());
        return out.str();
    }
};

const std::string kSecretCard = "4111 1111 1111 1111";
const std::string kSecretMail = "jane.doe@example.com";

}  // namespace

TEST_CASE("an endpoint without a policy passes text through and audits nothing") {
    Gateway g;
    auto out = g.gov->guardrails().check_input(g.ctx, "dbrx", "card " + kSecretCard);
    REQUIRE(out.ok());
    CHECK(out->text == "card " + kSecretCard);
    CHECK(out->total_hits() == 0);
    CHECK(g.audit_text().find("guardrail") == std::string::npos);
}

TEST_CASE("masking input: labels in the text, counts in the audit, never the data") {
    Gateway g;
    g.policy("dbrx", PiiAction::kMask, PiiAction::kNone);
    auto out = g.gov->guardrails().check_input(
        g.ctx, "dbrx", "I am " + kSecretMail + ", card " + kSecretCard + ", and " + kSecretMail);
    REQUIRE(out.ok());
    CHECK(out->text == "I am [EMAIL], card [CREDIT_CARD], and [EMAIL]");
    CHECK(out->masked);
    CHECK(out->hits[static_cast<std::size_t>(PiiType::kEmail)] == 2);
    std::string audit = g.audit_text();
    CHECK(audit.find("guardrail.input") != std::string::npos);
    CHECK(audit.find(R"({\"credit_card\":1,\"email\":2})") != std::string::npos);
    CHECK(audit.find("jane.doe") == std::string::npos);
    CHECK(audit.find("4111") == std::string::npos);
    // Text without personal data is untouched and unaudited.
    auto clean = g.gov->guardrails().check_input(g.ctx, "dbrx", "order 4111 1111 1111 1112");
    REQUIRE(clean.ok());
    CHECK_FALSE(clean->masked);
}

TEST_CASE("blocking: input refused with 400's code, output withheld with 403's") {
    Gateway g;
    g.policy("dbrx", PiiAction::kBlock, PiiAction::kBlock, pii_bit(PiiType::kIban));
    auto in = g.gov->guardrails().check_input(g.ctx, "dbrx", "IBAN DE89 3704 0044 0532 0130 00");
    CHECK(in.status().code() == StatusCode::kInvalidArgument);
    CHECK(in.status().message().find("1 iban") != std::string::npos);
    CHECK(in.status().message().find("DE89") == std::string::npos);
    // Only the selected types count: an e-mail address passes this endpoint.
    CHECK(g.gov->guardrails().check_input(g.ctx, "dbrx", kSecretMail).ok());
    auto out = g.gov->guardrails().check_output(g.ctx, "dbrx", "GB82WEST12345698765432");
    CHECK(out.status().code() == StatusCode::kPermissionDenied);
    CHECK(g.audit_text().find("\"result\":\"block\"") != std::string::npos);
}

TEST_CASE("streamed output is masked across chunk boundaries and audited once") {
    Gateway g;
    g.policy("dbrx", PiiAction::kNone, PiiAction::kMask);
    auto guard = g.gov->guardrails().guard_output(g.ctx, "dbrx");
    REQUIRE(guard.ok());
    std::string sent;
    for (std::string chunk : {"Reach me at jane", ".doe@exa", "mple.com or on +44 20 ", "7946 0958",
                              " any time."}) {
        auto piece = guard->push(chunk);
        REQUIRE(piece.ok());
        CHECK(piece->find("jane") == std::string::npos);
        sent += *piece;
    }
    auto rest = guard->finish();
    REQUIRE(rest.ok());
    sent += *rest;
    CHECK(sent == "Reach me at [EMAIL] or on [PHONE] any time.");
    CHECK_FALSE(guard->push("more").ok());
    std::string audit = g.audit_text();
    CHECK(audit.find(R"({\"email\":1,\"phone\":1})") != std::string::npos);
}

TEST_CASE("a blocking stream stops at the first match before sending any of it") {
    Gateway g;
    g.policy("dbrx", PiiAction::kNone, PiiAction::kBlock);
    auto guard = g.gov->guardrails().guard_output(g.ctx, "dbrx");
    REQUIRE(guard.ok());
    std::string sent;
    auto first = guard->push("Your number is ");
    REQUIRE(first.ok());
    sent += *first;
    auto second = guard->push("078-05-1120 and more");
    CHECK(second.status().code() == StatusCode::kPermissionDenied);
    CHECK(sent.find("078") == std::string::npos);
    CHECK(g.audit_text().find("\"guardrail.output\"") != std::string::npos);
}

TEST_CASE("endpoint settings are validated and survive a reopen") {
    Gateway g;
    EndpointSettings bad;
    bad.name = "dbrx";
    bad.prices.input_per_million = -1;
    CHECK(g.gov->endpoints().put(bad, "admin").status().code() == StatusCode::kInvalidArgument);
    bad.prices.input_per_million = 1;
    bad.name = "bad name";
    CHECK(g.gov->endpoints().put(bad, "admin").status().code() == StatusCode::kInvalidArgument);
    g.policy("dbrx", PiiAction::kMask, PiiAction::kBlock, pii_bit(PiiType::kEmail));
    g.gov.reset();
    auto reopened = Governance::open(g.dir.path);
    REQUIRE(reopened.ok());
    auto s = (*reopened)->endpoints().get("dbrx");
    REQUIRE(s.ok());
    CHECK(s->configured);
    CHECK(s->guardrails.input == PiiAction::kMask);
    CHECK(s->guardrails.output == PiiAction::kBlock);
    CHECK(s->guardrails.types == pii_bit(PiiType::kEmail));
    CHECK_FALSE((*reopened)->endpoints().get("other")->configured);
    CHECK((*reopened)->endpoints().remove("other").code() == StatusCode::kNotFound);
    CHECK(parse_pii_action("BLOCK").value() == PiiAction::kBlock);
    CHECK_FALSE(parse_pii_action("redact").ok());
}
