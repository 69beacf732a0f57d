#include "connectors/push_source.h"

#include <doctest/doctest.h>

#include <thread>

#include "connectors_test_support.h"

using namespace sluice::connectors;
using nlohmann::json;
using sluice::StatusCode;
using sluice::testing::drain;
using sluice::testing::TempDir;

namespace {

PushSourceConfig config_in(const TempDir& dir) {
    PushSourceConfig config;
    config.path = (dir.path / "push.db").string();
    config.max_events_per_request = 5;
    return config;
}

json two_events() {
    return json::parse(R"({"events": [
        {"key": "kb/1", "op": "upsert",
         "document": {"text": "Reset a password from the login page.",
                      "metadata": {"lang": "en"},
                      "acl": {"principals": ["alice"], "groups": ["support"]}}},
        {"key": "kb/0", "op": "delete"}]})");
}

}  // namespace

TEST_CASE("push source: accepted events are polled back in order and survive a reopen") {
    TempDir dir("push");
    {
        auto source = PushSource::open(config_in(dir));
        REQUIRE(source.ok());
        auto result = (*source)->ingest("req-1", two_events());
        REQUIRE_MESSAGE(result.ok(), result.status().to_string());
        CHECK_FALSE(result->replayed);
        CHECK(result->response == json{{"accepted", 2}, {"first_seq", 1}, {"last_seq", 2}});
    }
    auto source = PushSource::open(config_in(dir));
    REQUIRE(source.ok());
    auto drained = drain(**source, "");
    REQUIRE(drained.events.size() == 2);
    CHECK(drained.events[0].key == "kb/1");
    CHECK(drained.events[0].offset == "seq:1");
    CHECK(drained.events[0].document.text == "Reset a password from the login page.");
    CHECK(drained.events[0].document.metadata["lang"] == "en");
    CHECK(drained.events[0].document.acl.principals == std::vector<std::string>{"alice"});
    CHECK(drained.events[1].op == Op::kDelete);
    CHECK(drained.checkpoint == R"({"seq":2,"v":1})");
    // Re-polling is idempotent; after acknowledging, older positions are gone.
    CHECK(drain(**source, "").events.size() == 2);
    REQUIRE((*source)->acknowledge(drained.checkpoint).ok());
    CHECK((*source)->poll("", {}).status().code() == StatusCode::kFailedPrecondition);
    CHECK(drain(**source, drained.checkpoint).events.empty());
    // A version that is not a number is malformed (it used to throw out of poll).
    CHECK((*source)->poll(R"({"v":"1","seq":2})", {}).status().code() ==
          StatusCode::kInvalidArgument);
}

TEST_CASE("push source: a repeated idempotency key returns the first answer and applies nothing") {
    TempDir dir("push-idem");
    auto source = PushSource::open(config_in(dir));
    REQUIRE(source.ok());
    auto first = (*source)->ingest("abc", two_events());
    REQUIRE(first.ok());
    auto second = (*source)->ingest("abc", two_events());
    REQUIRE(second.ok());
    CHECK(second->replayed);
    CHECK(second->response == first->response);
    CHECK(drain(**source, "").events.size() == 2);

    json other = two_events();
    other["events"][0]["document"]["text"] = "different";
    auto conflict = (*source)->ingest("abc", other);
    CHECK(conflict.status().code() == StatusCode::kAlreadyExists);
    auto fresh = (*source)->ingest("def", other);
    REQUIRE(fresh.ok());
    CHECK(fresh->response["first_seq"] == 3);

    // Concurrent retries of one request store it once.
    std::vector<std::jthread> threads;
    for (int i = 0; i < 4; ++i) {
        threads.emplace_back([&] { CHECK((*source)->ingest("ghi", two_events()).ok()); });
    }
    threads.clear();
    CHECK(drain(**source, "").events.size() == 6);
}

TEST_CASE("push source: validation names the bad field and stores nothing") {
    TempDir dir("push-bad");
    auto source = PushSource::open(config_in(dir));
    REQUIRE(source.ok());
    auto expect_invalid = [&](const json& body, const std::string& field) {
        auto result = (*source)->ingest("k-" + field, body);
        CHECK(result.status().code() == StatusCode::kInvalidArgument);
        CHECK_MESSAGE(result.status().message().starts_with(field), result.status().message());
    };
    expect_invalid(json::parse(R"({"evnts": []})"), "events");
    expect_invalid(json::parse(R"({"events": []})"), "events");
    json bad = two_events();
    bad["events"][1]["op"] = "merge";
    expect_invalid(bad, "events[1].op");
    bad = two_events();
    bad["events"][0]["document"]["text"] = 42;
    expect_invalid(bad, "events[0].document.text");
    bad = two_events();
    bad["events"][0]["document"]["acl"]["groups"] = json::array({""});
    expect_invalid(bad, "events[0].document.acl.groups[0]");
    bad = two_events();
    bad["events"][0].erase("key");
    expect_invalid(bad, "events[0].key");
    bad = two_events();
    bad["events"][1]["document"] = {{"text", "x"}};
    expect_invalid(bad, "events[1].document");
    CHECK((*source)->ingest("", two_events()).status().code() == StatusCode::kInvalidArgument);
    CHECK((*source)->ingest("has space", two_events()).status().code() ==
          StatusCode::kInvalidArgument);
    json many{{"events", json::array()}};
    for (int i = 0; i < 6; ++i) {
        many["events"].push_back({{"key", std::to_string(i)}, {"op", "delete"}});
    }
    CHECK((*source)->ingest("many", many).status().code() == StatusCode::kPayloadTooLarge);
    CHECK(drain(**source, "").events.empty());
}

TEST_CASE("push source: wait returns when a request is accepted") {
    TempDir dir("push-wait");
    auto source = PushSource::open(config_in(dir));
    REQUIRE(source.ok());
    auto idle = (*source)->wait(std::chrono::milliseconds(10));
    REQUIRE(idle.ok());
    CHECK_FALSE(*idle);
    std::jthread writer([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        CHECK((*source)->ingest("w", two_events()).ok());
    });
    auto woke = (*source)->wait(std::chrono::seconds(10));
    REQUIRE(woke.ok());
    CHECK(*woke);
}

TEST_CASE("push source: an idempotency window too large for a count of seconds is refused") {
    // 2^64-1 and 2^63 read as int64 are -1 and INT64_MIN: a negative window expired every key
    // before it was looked up, so each retry of a request appended its events again.
    for (const char* text : {R"({"idempotency_window_s": 18446744073709551615})",
                             R"({"idempotency_window_s": 9223372036854775808})",
                             R"({"idempotency_window_s": 3162240001})",
                             R"({"idempotency_window_s": 0})", R"({"idempotency_window_s": -5})"}) {
        auto config = push_config_from_json(json::parse(text));
        CHECK_MESSAGE(config.status().code() == StatusCode::kInvalidArgument, text);
        if (!config.ok()) {
            CHECK(config.status().message().starts_with("idempotency_window_s"));
        }
    }
    TempDir dir("push-window");
    auto config = push_config_from_json(json::parse(R"({"idempotency_window_s": 3162240000})"));
    REQUIRE_MESSAGE(config.ok(), config.status().to_string());
    CHECK(config->idempotency_window == std::chrono::seconds(3162240000));
    config->path = (dir.path / "push.db").string();
    auto source = PushSource::open(*config);
    REQUIRE(source.ok());
    REQUIRE((*source)->ingest("again", two_events()).ok());
    auto retried = (*source)->ingest("again", two_events());
    REQUIRE(retried.ok());
    CHECK(retried->replayed);
    CHECK(drain(**source, "").events.size() == 2);
}
