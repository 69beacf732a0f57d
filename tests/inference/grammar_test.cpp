// Grammars written as text (docs/grammar.md), tool-call grammars, and matcher state handling.
#include "inference/grammar.h"

#include <doctest/doctest.h>

#include "grammar_test_support.h"

namespace sluice::inference {
namespace {

using testing::accepts;
using testing::accepts_prefix;
using testing::compile_text;

std::string parse_error(const std::string& text) {
    auto grammar = parse_grammar(text);
    REQUIRE_FALSE(grammar.ok());
    return grammar.status().message();
}

std::shared_ptr<const CompiledGrammar> tools_grammar(ToolChoice choice) {
    std::vector<ToolSpec> tools = {
        {"search", nlohmann::ordered_json::parse(
                       R"({"type":"object","properties":{"query":{"type":"string","maxLength":20}},"required":["query"]})")},
        {"get_time", nullptr}};
    auto grammar = tool_call_grammar(tools, choice);
    REQUIRE_MESSAGE(grammar.ok(), grammar.status().to_string());
    auto compiled = testing::grammar_compiler().compile(std::move(*grammar));
    REQUIRE(compiled.ok());
    return *compiled;
}

}  // namespace

TEST_CASE("grammar text: literals, classes, groups, repetition, comments") {
    const auto g = compile_text(R"(
        # a greeting, then digits
        root ::= greeting " " ("x" | "yz")* [0-9]{2,3} tail?
        greeting ::= "hi" | 'hello'
        tail ::= [^a-z\n] .
    )");
    CHECK(accepts(g, "hi 12"));
    CHECK(accepts(g, "hello xyzx123"));
    CHECK(accepts(g, "hi 99Aé"));
    CHECK_FALSE(accepts(g, "hi 1"));
    CHECK_FALSE(accepts(g, "hi 123456"));
    CHECK_FALSE(accepts(g, "hi 12a"));
    CHECK(accepts_prefix(g, "hel"));
    CHECK_FALSE(accepts_prefix(g, "hx"));
}

TEST_CASE("grammar text: recursion and escapes") {
    const auto g = compile_text(R"g(root ::= "(" root ")" | "\x41" | "\u00e9")g");
    CHECK(accepts(g, "((A))"));
    CHECK(accepts(g, "(é)"));
    CHECK_FALSE(accepts(g, "(()"));
}

TEST_CASE("grammar text: errors name the place") {
    CHECK(parse_error("root ::= \"a").find("unterminated string literal at line 1") != std::string::npos);
    CHECK(parse_error("root ::= x").find("rule 'x' is used but not defined") != std::string::npos);
    CHECK(parse_error("start ::= \"a\"").find("no rule named 'root'") != std::string::npos);
    CHECK(parse_error("root ::= root \"a\" | \"b\"").find("left-recursive") != std::string::npos);
    CHECK(parse_error("root ::= \"a\"{3,2}").find("malformed repetition") != std::string::npos);
    CHECK(parse_error("root ::= \"a\"\nroot ::= \"b\"").find("defined twice") != std::string::npos);
    CHECK(parse_error("root ::= x\nx ::= x").find("matches no string") != std::string::npos);
}

TEST_CASE("tool calls: auto allows text, then calls constrained to their schema") {
    const auto g = tools_grammar({ToolChoiceMode::kAuto, ""});
    CHECK(accepts(g, "Plain answer, no tools."));
    CHECK(accepts(g, ""));
    CHECK(accepts(g, "Let me look.\n<tool_call>{\"name\": \"search\", \"arguments\": {\"query\": \"refund\"}}</tool_call>"));
    CHECK(accepts(g, "<tool_call>{\"name\":\"get_time\",\"arguments\":{}}</tool_call>\n"
                     "<tool_call>{\"name\": \"search\", \"arguments\": {\"query\": \"x\"}}</tool_call>"));
    CHECK(accepts(g, "a < b <tool_cal"));
    CHECK_FALSE(accepts(g, "<tool_call>{\"name\": \"search\", \"arguments\": {}}</tool_call>"));
    CHECK_FALSE(accepts(g, "<tool_call>{\"name\": \"nope\", \"arguments\": {}}</tool_call>"));
    CHECK_FALSE(accepts_prefix(g, "text <tool_call>hello"));
    CHECK_FALSE(accepts(g, "<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call> trailing"));
}

TEST_CASE("tool calls: required, none and a named function") {
    const auto required = tools_grammar({ToolChoiceMode::kRequired, ""});
    CHECK(accepts(required, "<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>"));
    CHECK_FALSE(accepts(required, "no call"));
    const auto none = tools_grammar({ToolChoiceMode::kNone, ""});
    CHECK(accepts(none, "just text"));
    CHECK_FALSE(accepts(none, "<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>"));
    const auto named = tools_grammar({ToolChoiceMode::kNamed, "search"});
    CHECK(accepts(named, "<tool_call>{\"name\": \"search\", \"arguments\": {\"query\": \"q\"}}</tool_call>"));
    CHECK_FALSE(accepts(named, "<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>"));
    std::vector<ToolSpec> tools = {{"search", nullptr}};
    CHECK_FALSE(tool_call_grammar(tools, {ToolChoiceMode::kNamed, "missing"}).ok());
    CHECK_FALSE(tool_call_grammar({}, {ToolChoiceMode::kAuto, ""}).ok());
    std::vector<ToolSpec> bad = {{"a\"b", nullptr}};
    CHECK_FALSE(tool_call_grammar(bad, {ToolChoiceMode::kAuto, ""}).ok());
}

TEST_CASE("tool calls: parallel_tool_calls false admits one call") {
    const std::string call = "<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>";
    ToolChoice required{ToolChoiceMode::kRequired, ""};
    CHECK(accepts_prefix(tools_grammar(required), call + "\n<tool_call>"));
    required.parallel = false;
    const auto one = tools_grammar(required);
    CHECK(accepts(one, call));
    CHECK_FALSE(accepts_prefix(one, call + "\n"));
    ToolChoice automatic{ToolChoiceMode::kAuto, ""};
    automatic.parallel = false;
    const auto text_then_one = tools_grammar(automatic);
    CHECK(accepts(text_then_one, "Let me look.\n" + call));
    CHECK_FALSE(accepts_prefix(text_then_one, "Let me look.\n" + call + "\n"));
}

TEST_CASE("tool calls: arguments are a JSON object whatever the parameters leave open") {
    auto grammar_for = [](const std::string& parameters) {
        std::vector<ToolSpec> tools = {{"f", nlohmann::ordered_json::parse(parameters)}};
        return tool_call_grammar(tools, {ToolChoiceMode::kRequired, ""});
    };
    auto call = [](const std::string& arguments) {
        return "<tool_call>{\"name\": \"f\", \"arguments\": " + arguments + "}</tool_call>";
    };
    // No parameters (`{}` or `true`, as OpenAI reads them) take `{}`.
    for (const std::string open : {"{}", "true", R"({"properties":{"q":{"type":"string"}}})"}) {
        CAPTURE(open);
        auto grammar = grammar_for(open);
        REQUIRE_MESSAGE(grammar.ok(), grammar.status().to_string());
        auto compiled = testing::grammar_compiler().compile(std::move(*grammar));
        REQUIRE(compiled.ok());
        CHECK(accepts(*compiled, call(open.starts_with("{\"") ? R"({"q": "x"})" : "{}")));
        CHECK_FALSE(accepts(*compiled, call("5")));
        CHECK_FALSE(accepts(*compiled, call("[1]")));
        CHECK_FALSE(accepts(*compiled, call(R"("text")")));
    }
    auto integer = grammar_for(R"({"type":"integer"})");
    REQUIRE_FALSE(integer.ok());
    CHECK(integer.status().message().find("'type' must be \"object\", found \"integer\"") !=
          std::string::npos);
    auto untyped_union = grammar_for(R"({"anyOf":[{"type":"object"},{"type":"string"}]})");
    REQUIRE_FALSE(untyped_union.ok());
    CHECK(untyped_union.status().message().find("'anyOf'") != std::string::npos);
}

TEST_CASE("tool calls: OpenAI request shapes") {
    auto tools = parse_openai_tools(nlohmann::json::parse(
        R"([{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}])"));
    REQUIRE(tools.ok());
    CHECK(tools->at(0).name == "f");
    CHECK_FALSE(parse_openai_tools(nlohmann::json::parse(R"([{"type":"x"}])")).ok());
    CHECK(parse_openai_tool_choice("required")->mode == ToolChoiceMode::kRequired);
    auto named = parse_openai_tool_choice(
        nlohmann::json::parse(R"({"type":"function","function":{"name":"f"}})"));
    REQUIRE(named.ok());
    CHECK(named->name == "f");
    CHECK_FALSE(parse_openai_tool_choice("sometimes").ok());
    // A tag of the wrong type is an error, not an exception.
    CHECK_FALSE(parse_openai_tools(nlohmann::json::parse(R"([{"type":5}])")).ok());
    CHECK_FALSE(
        parse_openai_tool_choice(nlohmann::json::parse(R"({"type":5,"function":{"name":"f"}})"))
            .ok());
}

TEST_CASE("grammar matcher: end of turn only where complete, rollback, copies, termination") {
    const auto g = testing::compile_schema_text(R"({"enum":["ab","abc"]})");
    const Tokenizer& tokenizer = testing::dbrx_tokenizer();
    GrammarMatcher matcher(g);
    std::vector<uint64_t> bits(g->mask_words());
    auto allowed = [&](int32_t id) { return ((bits[static_cast<size_t>(id) >> 6] >> (id & 63)) & 1u) != 0; };
    matcher.fill_next_token_mask(bits);
    CHECK_FALSE(allowed(dbrx::kImEnd));
    CHECK_FALSE(allowed(dbrx::kImStart));
    CHECK_FALSE(matcher.accept_token(dbrx::kImEnd).ok());
    auto ids = tokenizer.encode("\"ab\"");
    REQUIRE(ids.ok());
    for (int32_t id : *ids) {
        REQUIRE(matcher.accept_token(id).ok());
    }
    CHECK(matcher.is_accepting());
    CHECK(matcher.is_terminated());  // nothing but the end can follow
    matcher.fill_next_token_mask(bits);
    CHECK(allowed(dbrx::kImEnd));
    CHECK(allowed(dbrx::kEndOfText));
    CHECK_FALSE(allowed(dbrx::kImStart));
    GrammarMatcher copy = matcher;
    REQUIRE(matcher.rollback(static_cast<int32_t>(ids->size())).ok());
    CHECK_FALSE(matcher.is_accepting());
    CHECK(copy.is_accepting());
    REQUIRE(copy.accept_token(dbrx::kImEnd).ok());
    copy.fill_next_token_mask(bits);
    CHECK(std::all_of(bits.begin(), bits.end(), [](uint64_t w) { return w == 0; }));
    CHECK(copy.accept_token(ids->front()).code() == StatusCode::kFailedPrecondition);
    CHECK_FALSE(matcher.rollback(100).ok());
    CHECK(matcher.accept_bytes("\"x").code() == StatusCode::kInvalidArgument);
    CHECK(matcher.n_steps() == 0);
}

}  // namespace sluice::inference
