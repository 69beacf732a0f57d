#include "app/strict_json.h"

#include <doctest/doctest.h>

using sluice::StatusCode;
using sluice::app::parse_json_unique_names;

namespace {

std::string error_of(const std::string& text, const std::string& subject = "") {
    auto parsed = parse_json_unique_names(text, subject);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.status().code() == StatusCode::kInvalidArgument);
    return parsed.status().message();
}

}  // namespace

TEST_CASE("a repeated name is refused by its JSON pointer") {
    CHECK(error_of(R"({"a": 1, "a": 2})") == "/a: the name 'a' appears twice in one object");
    CHECK(error_of(R"({"model": {"path": "x", "backend": "cpu", "path": "y"}})") ==
          "/model/path: the name 'path' appears twice in one object");
    // Array elements count from 0, objects and scalars alike; pointer tokens are escaped.
    CHECK(error_of(R"({"list": [1, {"k": 1}, [], {"k": 2, "k": 3}]})") ==
          "/list/3/k: the name 'k' appears twice in one object");
    CHECK(error_of(R"([{"a/b~": {"x": 1, "x": 2}}])") ==
          "/0/a~1b~0/x: the name 'x' appears twice in one object");
    CHECK(error_of(R"({"a": 1, "a": 2})", "request body") ==
          "malformed JSON in request body: /a: the name 'a' appears twice in one object");
}

TEST_CASE("the same name in different objects, and well-formed text, parse") {
    auto parsed = parse_json_unique_names(
        R"({"a": {"x": 1}, "b": {"x": 2}, "c": [{"x": 3}, {"x": 4}], "x": 5})", "");
    REQUIRE_MESSAGE(parsed.ok(), parsed.status().to_string());
    CHECK((*parsed)["c"][1]["x"] == 4);
    CHECK((*parsed)["x"] == 5);
    CHECK(parse_json_unique_names("[1, \"a\", null]", "")->size() == 3);
}

TEST_CASE("malformed JSON and unreadable numbers are errors, not exceptions") {
    CHECK(error_of(R"({"a": 1,})").starts_with("malformed JSON at byte "));
    CHECK(error_of(R"({"a": [1, 2})", "request body")
              .starts_with("malformed JSON in request body at byte"));
    CHECK(error_of(R"({"a": 1e400})", "request body")
              .starts_with("JSON in request body that cannot be read"));
}

TEST_CASE("arrays and objects nested past the limit are refused, not parsed") {
    using sluice::app::kMaxJsonDepth;
    auto nested = [](std::size_t depth, bool objects) {
        std::string text;
        for (std::size_t i = 0; i < depth; ++i) {
            text += objects ? "{\"a\": " : "[";
        }
        text += "1";
        for (std::size_t i = 0; i < depth; ++i) {
            text += objects ? "}" : "]";
        }
        return text;
    };
    for (bool objects : {false, true}) {
        CAPTURE(objects);
        auto deepest = parse_json_unique_names(nested(kMaxJsonDepth, objects), "request body");
        REQUIRE_MESSAGE(deepest.ok(), deepest.status().to_string());
        // A copy of what was parsed recursed once per level: 200,000 levels overflowed the
        // stack of the request's thread, which ended the server.
        for (std::size_t depth : {kMaxJsonDepth + 1, std::size_t{200000}}) {
            CAPTURE(depth);
            CHECK(error_of(nested(depth, objects), "request body") ==
                  "JSON in request body nested more than 512 deep");
        }
    }
    CHECK(error_of("{\"options\": " + nested(kMaxJsonDepth, false) + "}") ==
          "JSON nested more than 512 deep");
}
