#include "app/structured_output.h"

#include <doctest/doctest.h>

#include <filesystem>

#include "inference/tokenizer_files.h"

namespace sluice::app {
namespace {

using nlohmann::json;

const inference::Tokenizer& tokenizer() {
    static const auto opened = inference::open_dbrx_tiktoken(
        std::filesystem::path(SLUICE_SOURCE_DIR) / "inference/assets/cl100k_base.tiktoken");
    REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
    return **opened;
}

ChatRequest chat_with(const std::string& body_text) {
    auto parsed = parse_chat_request(json::parse(body_text));
    REQUIRE_MESSAGE(parsed.ok(), parsed.status().to_string());
    return std::move(*parsed);
}

std::string schema_body(const std::string& schema) {
    return R"({"messages": [{"role": "user", "content": "hi"}], "response_format": {"type":
        "json_schema", "json_schema": {"name": "s", "schema": )" +
           schema + "}}}";
}

}  // namespace

TEST_CASE("grammar cache: hits reuse the compiled grammar; the least recently used goes first") {
    GrammarCache cache(tokenizer(), 2);
    auto a = cache.json_schema(R"({"enum": ["a"]})");
    auto b = cache.json_schema(R"({"enum": ["b"]})");
    REQUIRE((a.ok() && b.ok()));
    auto a_again = cache.json_schema(R"({"enum": ["a"]})");
    REQUIRE(a_again.ok());
    CHECK(a_again->get() == a->get());
    CHECK(cache.compiles() == 2);
    // "b" is now the least recently used: adding "c" evicts it, not "a".
    REQUIRE(cache.json_schema(R"({"enum": ["c"]})").ok());
    CHECK(cache.size() == 2);
    CHECK(cache.json_schema(R"({"enum": ["a"]})")->get() == a->get());
    CHECK(cache.compiles() == 3);
    auto b_again = cache.json_schema(R"({"enum": ["b"]})");
    REQUIRE(b_again.ok());
    CHECK(b_again->get() != b->get());
    CHECK(cache.compiles() == 4);
}

TEST_CASE("grammar cache: an unsupported keyword is an invalid argument naming it, not cached") {
    GrammarCache cache(tokenizer(), 4);
    auto refused = cache.json_schema(R"({"type": "object", "minProperties": 1})");
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.status().code() == StatusCode::kInvalidArgument);
    CHECK(refused.status().message().find("minProperties") != std::string::npos);
    CHECK(cache.size() == 0);
}

TEST_CASE("chat constraint: the schema's property order is the body text's") {
    CHECK(*schema_text_in_order(schema_body(R"({"properties": {"z": {}, "a": {}}})")) ==
          R"({"properties":{"z":{},"a":{}}})");
    GrammarCache cache(tokenizer(), 4);
    const std::string body = schema_body(
        R"({"type": "object", "properties": {"z": {"const": 1}, "a": {"const": 2}},
            "required": ["z", "a"]})");
    auto matcher = chat_constraint(chat_with(body), body, cache);
    REQUIRE_MESSAGE(matcher.ok(), matcher.status().to_string());
    REQUIRE(matcher->has_value());
    inference::GrammarMatcher author_order = **matcher;
    CHECK(author_order.accept_bytes(R"({"z":1,"a":2})").ok());
    CHECK(author_order.is_accepting());
    inference::GrammarMatcher sorted = **matcher;
    CHECK_FALSE(sorted.accept_bytes(R"({"a":2,"z":1})").ok());
}

TEST_CASE("chat constraint: free text has none; json_object and tool_choice compile") {
    GrammarCache cache(tokenizer(), 4);
    const std::string plain = R"({"messages": [{"role": "user", "content": "hi"}]})";
    auto none = chat_constraint(chat_with(plain), plain, cache);
    REQUIRE(none.ok());
    CHECK_FALSE(none->has_value());

    const std::string object =
        R"({"messages": [{"role": "user", "content": "hi"}], "response_format": {"type":
            "json_object"}})";
    auto json_object = chat_constraint(chat_with(object), object, cache);
    REQUIRE(json_object.ok());
    REQUIRE(json_object->has_value());
    inference::GrammarMatcher matcher = **json_object;
    CHECK_FALSE(matcher.accept_bytes("[1]").ok());
    CHECK(matcher.accept_bytes(R"({"k": [1, true]})").ok());
    CHECK(matcher.is_accepting());

    const std::string named = R"({"messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type":
            "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}}})";
    auto call = chat_constraint(chat_with(named), named, cache);
    REQUIRE_MESSAGE(call.ok(), call.status().to_string());
    REQUIRE(call->has_value());
    inference::GrammarMatcher tool = **call;
    CHECK_FALSE(tool.accept_bytes("Sure").ok());
    CHECK(tool.accept_bytes(R"(<tool_call>{"name": "f", "arguments": {"x": 3}}</tool_call>)").ok());
    CHECK(tool.is_accepting());

    const std::string unknown = R"({"messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": {"type": "function", "function": {"name": "g"}}})";
    auto refused = chat_constraint(chat_with(unknown), unknown, cache);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.status().message().find("'g'") != std::string::npos);
}

}  // namespace sluice::app
