// The JSON Schema compiler keyword by keyword: strings each grammar must accept and reject, and
// the errors for what it does not support.
#include "inference/json_schema_grammar.h"

#include <doctest/doctest.h>

#include "grammar_test_support.h"

namespace sluice::inference {
namespace {

using testing::accepts;
using testing::accepts_prefix;
using testing::compile_schema_text;

void check_all(const std::string& schema, std::initializer_list<const char*> good,
               std::initializer_list<const char*> bad) {
    CAPTURE(schema);
    const auto grammar = compile_schema_text(schema);
    for (const char* text : good) {
        CAPTURE(text);
        CHECK(accepts(grammar, text));
    }
    for (const char* text : bad) {
        CAPTURE(text);
        CHECK_FALSE(accepts(grammar, text));
    }
}

std::string error_of(const std::string& schema) {
    auto grammar = json_schema_text_to_grammar(schema);
    REQUIRE_FALSE(grammar.ok());
    CHECK(grammar.status().code() == StatusCode::kInvalidArgument);
    return grammar.status().message();
}

}  // namespace

TEST_CASE("json schema: objects, required and optional properties, layout") {
    check_all(R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"boolean"}},
                  "required":["b"]})",
              {R"({"b":true})", R"({"a":1,"b":false})", R"({"a": 1, "b": false})"},
              {R"({})", R"({"a":1})", R"({"b":true,"a":1})", R"({ "b":true})", R"({"b":  true})",
               R"({"b":true,"c":1})", "{\"b\":true}\n"});
    check_all(R"({"type":"object","properties":{"x":{"type":"null"}}})", {"{}", R"({"x":null})"},
              {R"({"x":0})"});
}

TEST_CASE("json schema: additionalProperties false, true and a schema") {
    check_all(R"({"type":"object","properties":{"id":{"type":"integer"}},"additionalProperties":false})",
              {R"({"id":3})", "{}"}, {R"({"id":3,"x":1})"});
    check_all(R"({"type":"object","properties":{"id":{"type":"integer"}},"additionalProperties":true})",
              {R"({"id":3,"x":[1,{"y":null}]})", R"({"x":"s"})", R"({"idx":1})", R"({"i":1})"},
              {R"({"id":3,"id":4})", R"({"x":1,"id":3})"});
    check_all(R"({"type":"object","additionalProperties":{"type":"string","maxLength":2}})",
              {R"({"k":"ab","l":""})", "{}"}, {R"({"k":"abc"})", R"({"k":1})"});
}

TEST_CASE("json schema: arrays with items, minItems and maxItems") {
    check_all(R"({"type":"array","items":{"type":"integer"},"minItems":1,"maxItems":3})",
              {"[1]", "[1,2,3]", "[1, 2]"}, {"[]", "[1,2,3,4]", "[1,]", R"(["a"])"});
    check_all(R"({"type":"array","items":false})", {"[]"}, {"[1]"});
    check_all(R"({"type":"array"})", {"[]", R"([1,"a",null,{"b":[true]}])"}, {"[,]"});
}

TEST_CASE("json schema: enum and const") {
    check_all(R"({"enum":["red","green",3,null,{"a":1}]})",
              {R"("red")", R"("green")", "3", "null", R"({"a":1})"}, {R"("blue")", "4", R"("re")"});
    check_all(R"({"type":"string","enum":["a",1]})", {R"("a")"}, {"1"});
    check_all(R"({"const":"fixed"})", {R"("fixed")"}, {R"("other")"});
}

TEST_CASE("json schema: strings with lengths, escapes and unicode") {
    check_all(R"({"type":"string","minLength":2,"maxLength":3})",
              {R"("ab")", R"("abc")", R"("\n\"")", R"("é€😀")", R"("\u00e9x")"},
              {R"("a")", R"("abcd")", R"("\x")", "\"a\nb\"", R"("\ud800x")"});
    check_all(R"({"type":"string"})", {R"("")", R"("any \\ thing / here")"}, {"\"\x01\"", "\"\xff\""});
}

TEST_CASE("json schema: formats date, date-time, time, uuid, email, ipv4") {
    check_all(R"({"type":"string","format":"date"})", {R"("2024-02-28")", R"("1999-12-31")"},
              {R"("2024-02-30")", R"("2024-13-01")", R"("24-01-01")"});
    check_all(R"({"type":"string","format":"date-time"})",
              {R"("2024-05-01T12:30:00Z")", R"("2024-05-01T23:59:59.123+05:30")"},
              {R"("2024-05-01 12:30:00Z")", R"("2024-05-01T24:00:00Z")", R"("2024-05-01T12:30:00")"});
    check_all(R"({"type":"string","format":"time"})", {R"("08:15:00Z")"}, {R"("8:15:00Z")"});
    check_all(R"({"type":"string","format":"uuid"})", {R"("123e4567-e89b-12d3-a456-426614174000")"},
              {R"("123e4567e89b12d3a456426614174000")", R"("123e4567-e89b-12d3-a456-42661417400g")"});
    check_all(R"({"type":"string","format":"email"})", {R"("a.b+c@example.co.uk")", R"("x@y.io")"},
              {R"("a@b")", R"("@b.com")", R"("a..b@c.com")"});
    check_all(R"({"type":"string","format":"ipv4"})", {R"("192.168.0.1")", R"("0.0.0.0")"},
              {R"("256.1.1.1")", R"("1.2.3")", R"("01.2.3.4")"});
}

TEST_CASE("json schema: pattern (the regular subset, search semantics)") {
    check_all(R"({"type":"string","pattern":"^[a-z]{2}-\\d+$"})", {R"("ab-12")"},
              {R"("ab-")", R"("abc-1")", R"("AB-1")"});
    check_all(R"({"type":"string","pattern":"b+c"})", {R"("abbcd")", R"("bc")"}, {R"("ac")"});
    check_all(R"x({"type":"string","pattern":"^(?:x|yz)*\\.?$"})x", {R"("")", R"("xyzx.")"}, {R"("y")"});
    check_all(R"({"type":"string","pattern":"^[^a-c\"]$"})", {R"("d")", R"("\\")", R"("é")"},
              {R"("a")", R"("\"")"});
    check_all(R"({"type":"string","pattern":"^a\\sb$"})", {R"("a b")", R"("a\tb")"}, {R"("ab")"});
    // Groups repeated around bounded repetitions and alternations, laid out as continuations.
    check_all(R"x({"type":"string","pattern":"^[a-z]{1,3}(\\.[a-z]{1,3}){0,2}@(x|yy)+$"})x",
              {R"("a@x")", R"("abc.d.ef@yyx")", R"("ab.c@xyy")"},
              {R"("abcd@x")", R"("a.b.c.d@x")", R"("a@")", R"("a.@x")", R"("@x")"});
}

TEST_CASE("json schema: a pattern too large once expanded is a named error") {
    CHECK(error_of(R"x({"type":"string","pattern":"^(a{1,200}b){1,200}$"})x").find("too large") !=
          std::string::npos);
}

TEST_CASE("json schema: integers honour bounds exactly") {
    check_all(R"({"type":"integer","minimum":-15,"maximum":120})",
              {"-15", "-9", "0", "7", "99", "120"}, {"-16", "121", "007", "-0", "1.5", "1e2"});
    check_all(R"({"type":"integer","exclusiveMinimum":9,"exclusiveMaximum":1000})", {"10", "999"},
              {"9", "1000"});
    check_all(R"({"type":"integer","minimum":5,"exclusiveMinimum":true})", {"6", "123456"}, {"5"});
    check_all(R"({"type":"integer"})", {"0", "-42", "999999999999999"}, {"1000000000000000", "+1"});
    CHECK(error_of(R"({"type":"integer","minimum":3,"maximum":2})").find("no integer") != std::string::npos);
}

TEST_CASE("json schema: numbers honour integer bounds exactly and round others inwards") {
    check_all(R"({"type":"number","minimum":0,"maximum":1})",
              {"0", "0.5", "1", "1.0", "1.000", "0.999"}, {"1.01", "-0.1", "2", "1e0", "-0"});
    check_all(R"({"type":"number","exclusiveMinimum":0,"exclusiveMaximum":10})",
              {"0.001", "9.99", "5"}, {"0", "0.0", "10", "10.5"});
    check_all(R"({"type":"number","minimum":-2.5,"maximum":2.5})", {"-2", "2", "1.5"}, {"-2.5", "2.4"});
    check_all(R"({"type":"number"})", {"-1.5e-3", "0", "12.25E+10"}, {"01", ".5", "1.", "NaN"});
}

TEST_CASE("json schema: booleans, null, type arrays, nullable") {
    check_all(R"({"type":"boolean"})", {"true", "false"}, {"null", "1"});
    check_all(R"({"type":["string","null"],"maxLength":1})", {R"("a")", "null"}, {R"("ab")", "0"});
    check_all(R"({"type":"integer","nullable":true,"minimum":0})", {"0", "null"}, {"-1"});
}

TEST_CASE("json schema: anyOf, oneOf, allOf of one, $ref into $defs and definitions, recursion") {
    check_all(R"({"anyOf":[{"type":"integer"},{"type":"string","maxLength":1}]})",
              {"1", R"("a")"}, {R"("ab")", "true"});
    check_all(R"({"oneOf":[{"const":1},{"const":2}]})", {"1", "2"}, {"3"});
    check_all(R"({"allOf":[{"type":"boolean"}]})", {"true"}, {"1"});
    check_all(R"({"$defs":{"p":{"type":"integer"}},"type":"array","items":{"$ref":"#/$defs/p"}})",
              {"[1,2]"}, {R"(["x"])"});
    check_all(R"({"definitions":{"n":{"type":"object","properties":{"c":{"type":"array",
                  "items":{"$ref":"#/definitions/n"}}}}},"$ref":"#/definitions/n"})",
              {"{}", R"({"c":[{},{"c":[{"c":[]}]}]})"}, {R"({"c":[1]})"});
    check_all(R"({"type":"object","properties":{"next":{"anyOf":[{"$ref":"#"},{"type":"null"}]}},
                  "required":["next"]})",
              {R"({"next":null})", R"({"next":{"next":null}})"}, {R"({"next":{}})"});
}

TEST_CASE("json schema: a schema without constraints is any JSON value") {
    check_all(R"({})", {"1", R"({"a":[null,true,"x",-1.5e3]})", R"([])"}, {"[1,]", R"({"a"})", ""});
    check_all("true", {"null"}, {"nul"});
}

TEST_CASE("json schema: unsupported keywords and bad schemas are named errors") {
    CHECK(error_of(R"({"type":"object","properties":{"x":{"type":"object","patternProperties":{}}}})") ==
          "unsupported JSON Schema keyword 'patternProperties' at /properties/x");
    CHECK(error_of(R"({"type":"integer","multipleOf":3})") ==
          "unsupported JSON Schema keyword 'multipleOf' at /");
    CHECK(error_of(R"({"type":"array","uniqueItems":true})").find("'uniqueItems'") != std::string::npos);
    CHECK(error_of(R"({"type":"string","format":"uri"})").find("format 'uri'") != std::string::npos);
    CHECK(error_of(R"x({"type":"string","pattern":"(a)\\1"})x").find("backreference") != std::string::npos);
    CHECK(error_of(R"x({"type":"string","pattern":"a(?=b)"})x").find("lookaround") != std::string::npos);
    CHECK(error_of(R"({"$ref":"#/$defs/missing"})").find("names nothing") != std::string::npos);
    CHECK(error_of(R"({"$ref":"https://example.com/s.json"})").find("unsupported") != std::string::npos);
    CHECK(error_of(R"({"allOf":[{"type":"string"},{"maxLength":2}]})").find("allOf") != std::string::npos);
    CHECK(error_of(R"({"type":"strin"})").find("unknown type 'strin'") != std::string::npos);
    CHECK(error_of(R"({"type":"string","pattern":"^a","maxLength":3})").find("more than one") != std::string::npos);
    CHECK(error_of("false").find("matches nothing") != std::string::npos);
    CHECK(error_of("{not json").find("not valid JSON") != std::string::npos);
}

TEST_CASE("json schema: prefixes are accepted exactly when they can be completed") {
    const auto grammar = compile_schema_text(
        R"({"type":"object","properties":{"n":{"type":"integer","maximum":50}},"required":["n"]})");
    CHECK(accepts_prefix(grammar, R"({"n":5)"));
    CHECK(accepts_prefix(grammar, R"({"n": )"));
    CHECK_FALSE(accepts_prefix(grammar, R"({"n":51)"));
    CHECK_FALSE(accepts_prefix(grammar, R"({"m")"));
}

TEST_CASE("json object mode accepts any object and nothing else") {
    auto compiled = testing::grammar_compiler().compile_json_object();
    REQUIRE(compiled.ok());
    CHECK(accepts(*compiled, R"({"a": [1, {"b": null}], "c": "d"})"));
    CHECK(accepts(*compiled, "{}"));
    CHECK_FALSE(accepts(*compiled, "[]"));
    CHECK_FALSE(accepts(*compiled, R"("x")"));
}

}  // namespace sluice::inference
