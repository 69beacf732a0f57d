// Structured output through the real `sluice serve` binary and a tiny random model: whatever the
// random weights prefer, response_format and tool_choice hold the answer to its schema. Outputs
// are checked by an independent validator (tests/inference/schema_validator.h).
#include <doctest/doctest.h>

#include "../inference/schema_validator.h"
#include "sluice_server.h"

namespace {

using nlohmann::json;
using sluice::inference::testing::SchemaValidator;
using sluice::testing::ServerProcess;
using sluice::testing::tiny_model_dir;

httplib::Result post(const ServerProcess& server, const json& body) {
    return server.client().Post("/v1/chat/completions", body.dump(), "application/json");
}

json ask(const std::string& question, int max_tokens, uint64_t seed) {
    return {{"messages", json::array({{{"role", "user"}, {"content", question}}})},
            {"max_tokens", max_tokens},
            {"temperature", 1},
            {"seed", seed}};
}

const json& weather_schema() {
    static const json schema = json::parse(R"({
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 12},
            "unit": {"enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 1, "maximum": 7}
        },
        "required": ["city", "unit", "days"],
        "additionalProperties": false
    })");
    return schema;
}

json weather_tools() {
    return json::array(
        {{{"type", "function"},
          {"function", {{"name", "get_weather"}, {"parameters", weather_schema()}}}},
         {{"type", "function"},
          {"function",
           {{"name", "get_time"},
            {"parameters",
             {{"type", "object"},
              {"properties", {{"zone", {{"enum", json::array({"utc", "local"})}}}}},
              {"required", json::array({"zone"})},
              {"additionalProperties", false}}}}}}});
}

// A finished answer must validate; one cut by max_tokens must be a valid prefix.
void check_content(const json& choice, const SchemaValidator& validator) {
    const std::string content = choice["message"]["content"];
    const std::string finish = choice["finish_reason"];
    CAPTURE(content);
    CAPTURE(finish);
    if (finish == "length") {
        CHECK(validator.validate_prefix(content) == "");
        return;
    }
    REQUIRE(finish == "stop");
    const json parsed = json::parse(content, nullptr, false);
    REQUIRE_FALSE(parsed.is_discarded());
    CHECK(validator.validate(parsed) == "");
}

}  // namespace

TEST_CASE("response_format json_schema holds every choice to the schema, streamed or not") {
    ServerProcess server("jsonschema", tiny_model_dir());
    server.wait_model_ready(true);
    const SchemaValidator validator(weather_schema());
    int finished = 0;
    for (uint64_t seed : {1, 2, 3, 4}) {
        CAPTURE(seed);
        json body = ask("Weather in Oslo as JSON", 120, seed);
        body["n"] = 2;
        body["response_format"] = {
            {"type", "json_schema"},
            {"json_schema", {{"name", "weather"}, {"strict", seed % 2 == 0}, {"schema",
                                                                              weather_schema()}}}};
        auto result = post(server, body);
        REQUIRE(result);
        REQUIRE_MESSAGE(result->status == 200, result->body);
        const json answer = json::parse(result->body);
        REQUIRE(answer["choices"].size() == 2);
        for (const json& choice : answer["choices"]) {
            check_content(choice, validator);
            finished += choice["finish_reason"] == "stop" ? 1 : 0;
        }
    }
    // The schema's values are short and bounded: most answers end well before 120 tokens.
    CHECK(finished >= 4);

    // Streamed: the concatenated deltas form a valid document.
    json body = ask("Weather in Oslo as JSON", 120, 9);
    body["stream"] = true;
    body["response_format"] = {
        {"type", "json_schema"},
        {"json_schema", {{"name", "weather"}, {"schema", weather_schema()}}}};
    auto result = post(server, body);
    REQUIRE(result);
    REQUIRE(result->status == 200);
    std::string content;
    std::string finish;
    size_t at = 0;
    while ((at = result->body.find("data: ", at)) != std::string::npos) {
        const size_t end = result->body.find("\n\n", at);
        const std::string data = result->body.substr(at + 6, end - at - 6);
        at = end;
        if (data == "[DONE]") {
            break;
        }
        const json chunk = json::parse(data);
        for (const json& choice : chunk["choices"]) {
            content += choice["delta"].value("content", "");
            if (!choice["finish_reason"].is_null()) {
                finish = choice["finish_reason"];
            }
        }
    }
    check_content({{"message", {{"content", content}}}, {"finish_reason", finish}}, validator);
}

TEST_CASE("the schema's property order is the author's, not alphabetical") {
    ServerProcess server("jsonorder", tiny_model_dir());
    server.wait_model_ready(true);
    // Written by hand: "zeta" before "alpha"; a sorted parse would put "alpha" first.
    const std::string raw = R"({"messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 60, "temperature": 1, "seed": 5,
        "response_format": {"type": "json_schema", "json_schema": {"name": "o", "schema":
            {"type": "object", "properties": {"zeta": {"enum": [1, 2]}, "alpha": {"enum": [3]}},
             "required": ["zeta", "alpha"], "additionalProperties": false}}}})";
    auto result = server.client().Post("/v1/chat/completions", raw, "application/json");
    REQUIRE(result);
    REQUIRE_MESSAGE(result->status == 200, result->body);
    const std::string content = json::parse(result->body)["choices"][0]["message"]["content"];
    CAPTURE(content);
    REQUIRE(content.find("\"alpha\"") != std::string::npos);
    CHECK(content.find("\"zeta\"") < content.find("\"alpha\""));
}

TEST_CASE("response_format json_object returns a JSON object") {
    ServerProcess server("jsonobject", tiny_model_dir());
    server.wait_model_ready(true);
    const SchemaValidator any_object(json{{"type", "object"}});
    for (uint64_t seed : {1, 2, 3}) {
        CAPTURE(seed);
        json body = ask("Reply in JSON", 80, seed);
        body["response_format"] = {{"type", "json_object"}};
        auto result = post(server, body);
        REQUIRE(result);
        REQUIRE_MESSAGE(result->status == 200, result->body);
        const json choice = json::parse(result->body)["choices"][0];
        const std::string content = choice["message"]["content"];
        CAPTURE(content);
        REQUIRE(!content.empty());
        CHECK(content[0] == '{');
        check_content(choice, any_object);
    }
}

TEST_CASE("tool_choice required and named produce calls whose arguments match the schema") {
    ServerProcess server("toolchoice", tiny_model_dir());
    server.wait_model_ready(true);
    const SchemaValidator weather(weather_schema());
    int calls = 0;
    for (uint64_t seed : {1, 2, 3, 4}) {
        CAPTURE(seed);
        json body = ask("What is the weather in Oslo?", 150, seed);
        body["tools"] = weather_tools();
        body["tool_choice"] = "required";
        auto result = post(server, body);
        REQUIRE(result);
        REQUIRE_MESSAGE(result->status == 200, result->body);
        const json choice = json::parse(result->body)["choices"][0];
        CAPTURE(choice.dump());
        if (choice["finish_reason"] == "length") {
            // Cut before the calls closed: the calls as far as they were generated, as the
            // stream sends them (the last one's arguments incomplete), or, cut inside the first
            // call's header, the text as content.
            if (choice["message"].contains("tool_calls")) {
                CHECK(choice["message"]["content"].is_null());
                for (const json& call : choice["message"]["tool_calls"]) {
                    const std::string name = call["function"]["name"];
                    CHECK((name == "get_weather" || name == "get_time"));
                }
            } else {
                CHECK(choice["message"]["content"].get<std::string>().rfind("<tool_call>", 0) == 0);
            }
            continue;
        }
        REQUIRE(choice["finish_reason"] == "tool_calls");
        const json& tool_calls = choice["message"]["tool_calls"];
        REQUIRE(tool_calls.size() >= 1);
        for (const json& call : tool_calls) {
            const std::string name = call["function"]["name"];
            const json arguments = json::parse(call["function"]["arguments"].get<std::string>());
            if (name == "get_weather") {
                CHECK(weather.validate(arguments) == "");
            } else {
                REQUIRE(name == "get_time");
                CHECK((arguments == json{{"zone", "utc"}} || arguments == json{{"zone", "local"}}));
            }
            ++calls;
        }
    }
    CHECK(calls >= 1);

    // Named: exactly one call, to that function.
    for (uint64_t seed : {5, 6, 7}) {
        CAPTURE(seed);
        json body = ask("What time is it?", 150, seed);
        body["tools"] = weather_tools();
        body["tool_choice"] = {{"type", "function"}, {"function", {{"name", "get_time"}}}};
        auto result = post(server, body);
        REQUIRE(result);
        REQUIRE_MESSAGE(result->status == 200, result->body);
        const json choice = json::parse(result->body)["choices"][0];
        CAPTURE(choice.dump());
        REQUIRE(choice["finish_reason"] == "tool_calls");
        const json& tool_calls = choice["message"]["tool_calls"];
        REQUIRE(tool_calls.size() == 1);
        CHECK(tool_calls[0]["function"]["name"] == "get_time");
        const json arguments =
            json::parse(tool_calls[0]["function"]["arguments"].get<std::string>());
        CHECK((arguments == json{{"zone", "utc"}} || arguments == json{{"zone", "local"}}));
    }
}

TEST_CASE("structured output errors are 400s naming the problem") {
    ServerProcess server("jsonerrors", tiny_model_dir());
    server.wait_model_ready(true);
    auto expect_400 = [&](const json& body, const std::string& fragment) {
        auto result = post(server, body);
        REQUIRE(result);
        CHECK(result->status == 400);
        const std::string message = json::parse(result->body)["error"]["message"];
        CHECK_MESSAGE(message.find(fragment) != std::string::npos, message);
    };
    json unsupported = ask("hi", 8, 1);
    unsupported["response_format"] = {
        {"type", "json_schema"},
        {"json_schema",
         {{"name", "x"},
          {"schema",
           {{"type", "object"},
            {"properties", {{"tags", {{"type", "array"}, {"uniqueItems", true}}}}}}}}}};
    expect_400(unsupported, "uniqueItems");
    json no_schema = ask("hi", 8, 1);
    no_schema["response_format"] = {{"type", "json_schema"}, {"json_schema", {{"name", "x"}}}};
    expect_400(no_schema, "response_format.json_schema.schema");
    json unknown_tool = ask("hi", 8, 1);
    unknown_tool["tools"] = weather_tools();
    unknown_tool["tool_choice"] = {{"type", "function"}, {"function", {{"name", "nope"}}}};
    expect_400(unknown_tool, "nope");
    json required_without_tools = ask("hi", 8, 1);
    required_without_tools["tool_choice"] = "required";
    expect_400(required_without_tools, "'tools'");
    // A call's arguments are an object: parameters of another type could never be one.
    json scalar_parameters = ask("hi", 8, 1);
    scalar_parameters["tools"] =
        json::array({{{"type", "function"},
                      {"function", {{"name", "count"}, {"parameters", {{"type", "integer"}}}}}}});
    expect_400(scalar_parameters, "tool 'count' parameters: the arguments are a JSON object");
}

TEST_CASE("tool arguments are a JSON object when the parameters schema leaves the type open") {
    ServerProcess server("toolobject", tiny_model_dir());
    server.wait_model_ready(true);
    // `{}` is OpenAI's way to declare a function without parameters; a schema with properties
    // but no "type" describes an object too. Either way every finished choice is the one call.
    for (const json& parameters :
         {json::object(), json{{"properties", {{"q", {{"type", "string"}, {"maxLength", 8}}}}}}}) {
        CAPTURE(parameters.dump());
        json body = ask("Call it.", 120, 11);
        body["n"] = 6;
        body["tools"] = json::array(
            {{{"type", "function"}, {"function", {{"name", "f"}, {"parameters", parameters}}}}});
        body["tool_choice"] = {{"type", "function"}, {"function", {{"name", "f"}}}};
        auto result = post(server, body);
        REQUIRE(result);
        REQUIRE_MESSAGE(result->status == 200, result->body);
        const json answer = json::parse(result->body);
        REQUIRE(answer["choices"].size() == 6);
        for (const json& choice : answer["choices"]) {
            CAPTURE(choice.dump());
            if (choice["finish_reason"] == "length") {
                continue;  // cut inside the call: its arguments are incomplete
            }
            REQUIRE(choice["finish_reason"] == "tool_calls");
            REQUIRE(choice["message"]["tool_calls"].size() == 1);
            const json& call = choice["message"]["tool_calls"][0];
            CHECK(json::parse(call["function"]["arguments"].get<std::string>()).is_object());
        }
    }
}

TEST_CASE("parallel_tool_calls false ends generation after the first call") {
    ServerProcess server("toolsingle", tiny_model_dir());
    server.wait_model_ready(true);
    json body = ask("What time is it?", 200, 21);
    body["n"] = 16;
    body["tools"] = json::array({weather_tools()[1]});  // get_time: short calls
    body["tool_choice"] = "required";
    body["parallel_tool_calls"] = false;
    body["logprobs"] = true;  // the tokens generated, also those a dropped call would take
    auto result = post(server, body);
    REQUIRE(result);
    REQUIRE_MESSAGE(result->status == 200, result->body);
    const json answer = json::parse(result->body);
    REQUIRE(answer["choices"].size() == 16);
    for (const json& choice : answer["choices"]) {
        std::string generated;
        for (const json& token : choice["logprobs"]["content"]) {
            generated += token["token"].get<std::string>();
        }
        CAPTURE(generated);
        size_t opened = 0;
        for (size_t at = generated.find("<tool_call>"); at != std::string::npos;
             at = generated.find("<tool_call>", at + 1)) {
            ++opened;
        }
        CHECK(opened == 1);
        if (choice["finish_reason"] != "length") {
            CHECK(choice["finish_reason"] == "tool_calls");
            CHECK(choice["message"]["tool_calls"].size() == 1);
        }
    }
}
