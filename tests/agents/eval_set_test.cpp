// Evaluation sets: JSON lines with errors that name the line and field, versions in catalog.db,
// and feedback records.

#include "agents/evaluation/eval_set.h"

#include "agents/evaluation/eval_store.h"
#include "agents_fixture.h"
#include "doctest/doctest.h"

namespace sluice::agents::evaluation {
namespace {

using nlohmann::json;

std::string error_of(std::string_view text) {
    auto parsed = parse_eval_jsonl(text);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.status().code() == StatusCode::kInvalidArgument);
    return parsed.status().message();
}

}  // namespace

TEST_CASE("eval set: every field parses and round-trips through JSON lines") {
    std::string text =
        R"({"request": "How many days?", "expected_response": "25", "accepted_responses": ["twenty five"], "expected_facts": ["25 days"], "expected_retrieved_context": [{"doc_uri": "file:///h.md", "content": "25 days"}], "guidelines": "Be brief.", "response": "25.", "retrieved_context": [{"doc_uri": "file:///h.md", "content": "Employees get 25 days."}]})"
        "\n\n"
        R"({"request": "Second?"})"
        "\n";
    auto rows = parse_eval_jsonl(text);
    REQUIRE_MESSAGE(rows.ok(), rows.status().to_string());
    REQUIRE(rows->size() == 2);
    const EvalRow& first = (*rows)[0];
    CHECK(first.gold_answers() == std::vector<std::string>{"25", "twenty five"});
    CHECK(first.guidelines == std::vector<std::string>{"Be brief."});
    REQUIRE(first.retrieved_context.has_value());
    CHECK((*first.retrieved_context)[0].content == "Employees get 25 days.");
    CHECK_FALSE((*rows)[1].response.has_value());
    auto again = parse_eval_jsonl(eval_rows_to_jsonl(*rows));
    REQUIRE(again.ok());
    CHECK(eval_row_to_json((*again)[0]) == eval_row_to_json(first));
    CHECK(eval_row_to_json((*again)[1]) == json{{"request", "Second?"}});
}

TEST_CASE("eval set: errors name the line and the field") {
    CHECK(error_of("{\"request\": \"a\"}\n{\"request\": 3}") ==
          "line 2: request: expected a non-empty string");
    CHECK(error_of("{\"request\": \"a\"}\n\n{nope") == "line 3: not valid JSON");
    CHECK(error_of(R"({"request": "a", "x": 1e400})") == "line 1: not valid JSON");
    // A name given twice is refused, as in request bodies: the last one used to win.
    CHECK(error_of("{\"request\": \"a\"}\n{\"request\": \"b\", \"request\": \"c\"}") ==
          "line 2: the name 'request' appears twice in one object");
    const std::string context_twice =
        R"({"request": "a", "expected_retrieved_context": [{"content": "x"}, )"
        R"({"doc_uri": "u", "content": "y", "content": "z"}]})";
    CHECK(error_of(context_twice) == "line 1: the name 'content' appears twice in one object");
    // The same name in different objects is no repetition.
    CHECK(
        parse_eval_jsonl(
            R"({"request": "a", "expected_retrieved_context": [{"content": "x"}, {"content": "y"}]})")
            .ok());
    CHECK(error_of(R"({"request": "a", "expected_reponse": "b"})") ==
          "line 1: unknown field 'expected_reponse'");
    CHECK(error_of(R"({"request": "a", "expected_facts": ["x", 2]})") ==
          "line 1: expected_facts[1]: expected a string, found number");
    CHECK(error_of(R"({"request": "a", "expected_retrieved_context": [{"uri": "x"}]})") ==
          "line 1: expected_retrieved_context[0]: unknown field 'uri' (expected doc_uri, content)");
    CHECK(error_of(R"({"request": "a", "retrieved_context": []})") ==
          "line 1: retrieved_context: given without the response it led to");
    CHECK(error_of(R"({"expected_response": "b"})") == "line 1: request: required");
    CHECK(error_of("[1]") == "line 1: expected a JSON object, found array");
    CHECK(error_of("\n \n") == "the evaluation set has no rows");
    auto array = eval_rows_from_json(json::array({{{"request", "a"}}, {{"request", ""}}}));
    CHECK(array.status().message() == "rows[1]: request: expected a non-empty string");
    CHECK(eval_rows_from_json(json::object()).status().message() ==
          "rows: expected an array of objects, found object");
}

TEST_CASE("eval store: each import is a new version; rows, versions and listings read back") {
    testing::TempDir dir("evalstore");
    auto store = EvalStore::open(dir.path / "catalog.db");
    REQUIRE(store.ok());
    auto one = *parse_eval_jsonl("{\"request\": \"a\"}\n{\"request\": \"b\"}\n");
    auto two = *parse_eval_jsonl("{\"request\": \"c\"}\n");
    auto v1 = (*store)->add_version("main.qa.set", one, "alice");
    auto v2 = (*store)->add_version("main.qa.set", two, "bob");
    REQUIRE((v1.ok() && v2.ok()));
    CHECK(v1->version == 1);
    CHECK(v2->version == 2);
    REQUIRE((*store)->add_version("main.qa.other", one, "alice").ok());
    auto sets = (*store)->list_sets();
    REQUIRE(sets.ok());
    REQUIRE(sets->size() == 2);
    CHECK((*sets)[0].name == "main.qa.other");
    CHECK((*sets)[1].version == 2);
    CHECK((*sets)[1].n_rows == 1);
    EvalSetVersion resolved;
    auto latest = (*store)->rows("main.qa.set", 0, &resolved);
    REQUIRE(latest.ok());
    CHECK(resolved.version == 2);
    CHECK((*latest)[0].request == "c");
    CHECK((*store)->rows("main.qa.set", 1)->size() == 2);
    CHECK((*store)->rows("main.qa.set", 3).status().message() ==
          "evaluation set 'main.qa.set' has no version 3");
    CHECK((*store)->versions("main.qa.none").status().code() == StatusCode::kNotFound);
    CHECK((*store)->versions("main.qa.set")->size() == 2);
}

TEST_CASE("feedback: validated, stored, labelled") {
    const std::string trace(32, 'a');
    CHECK(feedback_from_json({{"trace_id", trace}, {"rating", 6}}).status().message() ==
          "rating: expected an integer 1 to 5, or \"up\" / \"down\", found 6");
    // A misspelt member is refused: the correction would have been lost.
    CHECK(feedback_from_json({{"trace_id", trace}, {"rating", 1}, {"corection", "Paris"}})
              .status()
              .message() ==
          "feedback: unknown field 'corection' (expected trace_id, rating, correction, comment)");
    // 2^32 + 1 is out of range, not a rating of 1 (a "no").
    CHECK(feedback_from_json({{"trace_id", trace}, {"rating", 4294967297LL}}).status().message() ==
          "rating: expected an integer 1 to 5, or \"up\" / \"down\", found 4294967297");
    CHECK(feedback_from_json({{"trace_id", "x"}, {"rating", 5}}).status().message() ==
          "trace_id: expected 32 lower-case hex digits");
    CHECK(feedback_from_json({{"trace_id", trace}}).status().code() ==
          StatusCode::kInvalidArgument);
    testing::TempDir dir("feedback");
    auto store = EvalStore::open(dir.path / "catalog.db");
    REQUIRE(store.ok());
    auto up = feedback_from_json({{"trace_id", trace}, {"rating", "up"}, {"comment", "good"}});
    auto three = feedback_from_json({{"trace_id", trace}, {"rating", 3}, {"correction", "X"}});
    REQUIRE((up.ok() && three.ok()));
    up->principal = "alice";
    REQUIRE((*store)->add_feedback(*up).ok());
    REQUIRE((*store)->add_feedback(*three).ok());
    auto back = (*store)->feedback(trace);
    REQUIRE(back.ok());
    REQUIRE(back->size() == 2);
    CHECK((*back)[0].label() == std::optional<bool>(true));
    CHECK((*back)[0].comment == std::optional<std::string>("good"));
    CHECK_FALSE((*back)[1].label().has_value());
    CHECK((*back)[1].correction == std::optional<std::string>("X"));
    CHECK((*store)->feedback(std::string(32, 'b'))->empty());
}

}  // namespace sluice::agents::evaluation
