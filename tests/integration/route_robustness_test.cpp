// Every HTTP route of the real `sluice serve`, sent bodies of the wrong shape and odd query
// strings: each answers with a client error that says what is wrong (the JSON error envelope),
// never a 5xx, and the server keeps running. The routes are those the server registers
// (app/*_routes.cpp); paths with a parameter get a name that does not exist.
#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "sluice_server.h"

namespace {

using nlohmann::json;
using sluice::testing::ok_json;
using sluice::testing::ServerProcess;
using sluice::testing::tiny_model_dir;
using namespace std::chrono_literals;

struct Route {
    std::string method;
    std::string path;
};

// Routes that read a JSON body.
const std::vector<Route> kBodyRoutes = {
    {"POST", "/v1/chat/completions"},
    {"POST", "/v1/completions"},
    {"POST", "/v1/embeddings"},
    {"POST", "/tokenize"},
    {"POST", "/detokenize"},
    {"POST", "/api/2.0/sluice/limits"},
    {"POST", "/api/2.0/sluice/principals"},
    {"POST", "/api/2.0/token/create"},
    {"POST", "/api/2.0/token/delete"},
    {"POST", "/api/2.1/lineage/edges"},
    {"POST", "/api/agents/nobody"},
    {"POST", "/api/eval/best-of-n"},
    {"POST", "/api/eval/runs"},
    {"POST", "/api/eval/sets"},
    {"POST", "/api/eval/sets/nothing/corrections"},
    {"POST", "/api/feedback"},
    {"POST", "/api/qa"},
    {"POST", "/api/sources"},
    {"POST", "/api/connections"},
    {"POST", "/api/2.0/vector-search/indexes"},
    {"POST", "/api/2.0/vector-search/indexes/nothing/query"},
    {"POST", "/api/2.0/vector-search/indexes/nothing/upsert-data"},
    {"POST", "/api/2.0/vector-search/indexes/nothing/delete-data"},
    {"POST", "/api/2.1/unity-catalog/catalogs"},
    {"POST", "/api/2.1/unity-catalog/schemas"},
    {"POST", "/api/2.1/unity-catalog/tables"},
    {"POST", "/api/2.0/serving-endpoints"},
    {"PUT", "/api/2.0/serving-endpoints/nothing/ai-gateway"},
    {"PUT", "/api/eval/monitor"},
    {"PATCH", "/api/2.1/unity-catalog/permissions/table/a.b.c"},
};

const std::vector<std::string> kBadBodies = {
    "",
    "[]",
    "[{}]",
    "null",
    "1",
    "\"text\"",
    "true",
    "{\"unterminated",
    "{\"x\": 1}",
    // Well-formed JSON that no field can hold, and a name given twice.
    "{\"x\": 1e400}",
    "{\"x\": 1, \"x\": 2}",
    // Arrays nested 200,000 deep in a member (400 KB): a copy of the member overflowed the
    // request thread's stack (POST /api/qa's "options") and ended the server.
    "{\"options\": " + std::string(200000, '[') + std::string(200000, ']') + "}",
};

const std::vector<std::string> kGetPaths = {
    "/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/v1/models",
    "/v1/models/nothing",
    "/api/2.0/serving-endpoints",
    "/api/2.0/serving-endpoints/nothing",
    "/api/2.0/sluice/limits",
    "/api/2.0/sluice/usage?start=yesterday&end=-1",
    "/api/2.0/token/list?all=maybe",
    "/api/eval/calibration?set=nothing",
    "/api/eval/compare?a=nothing&b=",
    "/api/eval/monitor",
    "/api/eval/runs?limit=many",
    "/api/eval/runs/nothing",
    "/api/eval/sets",
    "/api/eval/sets/nothing",
    "/api/feedback?limit=-5",
    "/api/sources",
    "/api/sources/nothing",
    "/api/traces/nothing",
    "/api/agents",
    "/api/agents/nothing",
    "/api/connections",
    "/api/tools",
    "/tables/nothing",
    "/api/2.0/vector-search/indexes?page_token=%ff",
    "/api/2.0/vector-search/indexes/nothing",
    "/api/2.1/unity-catalog/catalogs",
    "/api/2.1/unity-catalog/schemas?catalog_name=",
    "/api/2.1/unity-catalog/tables?catalog_name=a&schema_name=",
    "/api/2.1/unity-catalog/tables/a.b",
    "/api/2.1/unity-catalog/permissions/table/a.b.c",
    "/api/2.1/unity-catalog/effective-permissions/table/a.b.c",
    "/api/2.1/lineage/table-lineage?table_name=..",
};

const std::vector<Route> kDeleteRoutes = {
    {"DELETE", "/api/2.0/sluice/limits/999999"},
    {"DELETE", "/api/2.0/vector-search/indexes/nothing"},
    {"DELETE", "/api/2.1/unity-catalog/tables/a.b.c"},
    {"DELETE", "/api/sources/nothing"},
    {"DELETE", "/api/2.0/serving-endpoints/nothing"},
};

httplib::Result send(const ServerProcess& server, const std::string& method,
                     const std::string& path, const std::string& body) {
    httplib::Client client("127.0.0.1", server.port);
    client.set_read_timeout(60, 0);
    const httplib::Headers headers = {{"Authorization", "Bearer " + server.admin_token}};
    if (method == "GET") {
        return client.Get(path, headers);
    }
    if (method == "DELETE") {
        return client.Delete(path, headers);
    }
    if (method == "PUT") {
        return client.Put(path, headers, body, "application/json");
    }
    if (method == "PATCH") {
        return client.Patch(path, headers, body, "application/json");
    }
    return client.Post(path, headers, body, "application/json");
}

// The server's stderr, read so that its pipe never fills while the test sends.
void drain(const ServerProcess& server) {
    while (server.process->read_line(1ms)) {
    }
}

bool running(const ServerProcess& server) { return !server.process->wait(50ms).has_value(); }

// A client error carries the envelope with a message.
bool explains(const httplib::Result& result) {
    const json body = json::parse(result->body, nullptr, false);
    return body.is_object() && body.contains("error") && body["error"].is_object() &&
           body["error"].value("message", std::string()).size() > 5;
}

// A request body sent to a route, and a fragment of the 400's error message it must get.
struct BadBody {
    std::string path;
    std::string body;
    std::string fragment;
};

}  // namespace

TEST_CASE("every route answers malformed requests with a client error, and the server lives") {
    ServerProcess server("robust", tiny_model_dir());
    server.wait_model_ready(true);
    int sent = 0;
    for (const Route& route : kBodyRoutes) {
        for (const std::string& body : kBadBodies) {
            const auto result = send(server, route.method, route.path, body);
            ++sent;
            INFO(route.method, " ", route.path, " with body ", body.substr(0, 80));
            REQUIRE_MESSAGE(result, "no answer: the server is ", running(server) ? "up" : "down");
            CHECK(result->status < 500);
            if (body != "{\"x\": 1}") {  // an object may be enough for some routes
                CHECK(result->status >= 400);
                CHECK_MESSAGE(explains(result), result->body);
            }
            drain(server);
        }
    }
    for (const std::string& path : kGetPaths) {
        const auto result = send(server, "GET", path, "");
        ++sent;
        INFO("GET ", path);
        REQUIRE_MESSAGE(result, "no answer: the server is ", running(server) ? "up" : "down");
        CHECK(result->status < 500);
        drain(server);
    }
    for (const Route& route : kDeleteRoutes) {
        const auto result = send(server, route.method, route.path, "");
        ++sent;
        INFO(route.method, " ", route.path);
        REQUIRE(result);
        CHECK(result->status < 500);
        CHECK(result->status >= 400);  // none of them exists
        drain(server);
    }
    CHECK(running(server));
    CHECK(sent > 300);
    // Still serving the model after all of it.
    const auto chat = send(server, "POST", "/v1/chat/completions",
                           R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})");
    REQUIRE(chat);
    CHECK(chat->status == 200);
}

TEST_CASE("fields of the wrong type or out of range are 400s that name them") {
    ServerProcess server("robust_fields", tiny_model_dir());
    server.wait_model_ready(true);
    const std::vector<BadBody> cases = {
        {"/api/2.0/token/create", R"({"comment": 123})", "\"comment\""},
        {"/api/2.0/token/create", R"({"principal": 5})", "\"principal\""},
        {"/api/2.0/token/create", R"({"lifetime_seconds": 9223372036854775807})", "lifetime"},
        {"/api/2.0/sluice/principals", R"({"name": "p1", "kind": 5})", "\"kind\""},
        {"/api/2.0/sluice/principals", R"({"name": "p1", "is_admin": "yes"})", "\"is_admin\""},
        {"/api/2.1/unity-catalog/catalogs", R"({"name": "c1", "comment": 5})", "\"comment\""},
        {"/api/2.1/unity-catalog/catalogs", "{\"name\": \"\xc3\xa4\"}", "'\\xc3'"},
        {"/tokenize", R"({"prompt": "a", "model": 5})", "'model'"},
        {"/tokenize", R"({"prompt": "a", "add_special_tokens": true})", "add_special_tokens"},
        {"/detokenize", R"({"tokens": [4294967296]})", "token id 4294967296"},
        {"/v1/embeddings", R"({"input": [1, 4294967297]})", "token id 4294967297 at position 1"},
        {"/v1/completions", R"({"prompt": [[4294967296]], "max_tokens": 1})", "prompt[0]"},
        {"/v1/chat/completions",
         R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1,
             "response_format": {"type": "json_schema", "json_schema": {"schema": {}}}})",
         "json_schema.name"},
        {"/v1/chat/completions",
         R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1,
             "response_format": {"type": "json_object", "strict": true}})",
         "response_format: unrecognized request parameters: 'strict'"},
        {"/v1/chat/completions", R"({"messages": [], "temperature": -1e400})", "overflow"},
        // Members of the wrong type inside messages, tools and their tags.
        {"/v1/chat/completions", R"({"messages": [{"role": 5, "content": "hi"}]})",
         "'messages[0].role' must be a string"},
        {"/v1/chat/completions",
         R"({"messages": [{"role": "user", "content": [{"type": 5, "text": "x"}]}]})",
         "'messages[0].content'"},
        {"/v1/chat/completions", R"({"messages": [{"role": "assistant", "tool_calls": [1]}]})",
         "'messages[0].tool_calls[0]' must be an object"},
        {"/v1/chat/completions",
         R"({"messages": [{"role": "assistant", "tool_calls": [{"id": 5, "type": "function",
             "function": {"name": "f", "arguments": "{}"}}]}]})",
         "'messages[0].tool_calls[0].id' must be a string"},
        {"/v1/chat/completions",
         R"({"messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": "x"}]})",
         "'messages[1].tool_call_id'"},
        {"/v1/chat/completions",
         R"({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": 5}]})",
         "'tools[0]'"},
        {"/v1/chat/completions",
         R"({"messages": [{"role": "user", "content": "hi"}],
             "tools": [{"type": "function", "function": {"name": "f", "description": 5}}]})",
         "'tools[0].function.description' must be a string"},
        {"/v1/chat/completions",
         R"({"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": 5}})",
         "'response_format'"},
        {"/v1/chat/completions",
         R"({"messages": [{"role": "user", "content": "hi"}],
             "tools": [{"type": "function", "function": {"name": "f"}}],
             "tool_choice": {"type": 5, "function": {"name": "f"}}})",
         "'tool_choice'"},
        {"/tokenize", R"({"messages": [{"role": "assistant", "tool_calls": [[]]}]})",
         "'messages[0].tool_calls[0]' must be an object"},
        // Only an assistant message may leave out its content.
        {"/v1/chat/completions", R"({"messages": [{"role": "user"}], "max_tokens": 1})",
         "'messages[0].content' must be a string or an array of text parts (required for role "
         "\"user\")"},
        {"/v1/chat/completions",
         R"({"messages": [{"role": "system", "content": null}, {"role": "user", "content": "hi"}],
             "max_tokens": 1})",
         "'messages[0].content'"},
        {"/v1/embeddings", R"({"input": "hi", "user": 5})", "'user' must be a string"},
        // Inside tools and tool_choice too, a misspelt member is refused, never ignored.
        {"/v1/chat/completions",
         R"({"messages": [{"role": "user", "content": "hi"}],
             "tools": [{"type": "function", "function": {"name": "f", "paramaters": {}}}]})",
         "tools[0].function: unrecognized request parameters: 'paramaters'"},
        {"/v1/chat/completions",
         R"({"messages": [{"role": "user", "content": "hi"}],
             "tools": [{"type": "function", "function": {"name": "f"}, "strict": true}]})",
         "tools[0]: unrecognized request parameters: 'strict'"},
        {"/v1/chat/completions",
         R"({"messages": [{"role": "user", "content": "hi"}],
             "tools": [{"type": "function", "function": {"name": "f", "strict": "yes"}}]})",
         "'tools[0].function.strict' must be a boolean"},
        {"/v1/chat/completions",
         R"({"messages": [{"role": "user", "content": "hi"}],
             "tools": [{"type": "function", "function": {"name": "f"}}],
             "tool_choice": {"type": "function", "function": {"name": "f", "arguments": "{}"}}})",
         "tool_choice.function: unrecognized request parameters: 'arguments'"},
        {"/v1/chat/completions", R"({"max_tokens": 1, "max_tokens": 2})", "'max_tokens'"},
    };
    for (const BadBody& c : cases) {
        INFO("POST ", c.path, " ", c.body);
        const auto result = send(server, "POST", c.path, c.body);
        REQUIRE(result);
        CHECK(result->status == 400);
        const json body = json::parse(result->body, nullptr, false);
        const std::string message =
            body.is_object() ? body["error"].value("message", std::string()) : result->body;
        CHECK_MESSAGE(message.find(c.fragment) != std::string::npos, message);
        drain(server);
    }
    CHECK(running(server));
}

TEST_CASE("vector search: integer metadata comes back as integers, and filters meet floats") {
    ServerProcess server("vector_integers", tiny_model_dir());
    const std::string indexes = "/api/2.0/vector-search/indexes";
    auto post = [&](const std::string& path, const json& body) {
        return server.send(server.admin_token, "POST", path, body);
    };
    ok_json(post(indexes, {{"name", "numbers"}, {"embedding_dimension", 64}}));
    const json acl = {{"principals", {"admin"}}};
    const json rows = {
        {{"id", "a"}, {"text", "river delta"}, {"year", 2020}, {"rating", 2.5}, {"acl", acl}},
        {{"id", "b"}, {"text", "river mouth"}, {"year", 2018}, {"rating", 3.0}, {"acl", acl}}};
    ok_json(post(indexes + "/numbers/upsert-data", {{"inputs_json", rows.dump()}}));
    auto query = [&](const json& filters) {
        const auto answer = post(indexes + "/numbers/query", {{"query_text", "river"},
                                                              {"query_type", "LEXICAL"},
                                                              {"columns", {"id", "year", "rating"}},
                                                              {"filters_json", filters.dump()}});
        REQUIRE(answer);
        INFO(answer->body);
        REQUIRE(answer->status == 200);
        return answer->body;
    };
    // As a client reads it: 2020 without a fraction, the floats with theirs.
    const std::string later = query({{"year >=", 2019}});
    CHECK(later.find(R"("data_array":[["a",2020,2.5,)") != std::string::npos);
    CHECK(query({{"year", 2018.0}}).find(R"(["b",2018,3.0,)") != std::string::npos);
    CHECK(query({{"rating", 3}}).find(R"(["b",2018,3.0,)") != std::string::npos);
    CHECK(query({{"year", {2019, 2020}}}).find(R"("row_count":1)") != std::string::npos);
}

TEST_CASE("vector search: boolean metadata comes back as true and false, and filters match it") {
    ServerProcess server("vector_booleans", tiny_model_dir());
    const std::string indexes = "/api/2.0/vector-search/indexes";
    auto post = [&](const std::string& path, const json& body) {
        return server.send(server.admin_token, "POST", path, body);
    };
    ok_json(post(indexes, {{"name", "flags"}, {"embedding_dimension", 64}}));
    const json acl = {{"principals", {"admin"}}};
    const json rows = {{{"id", "a"}, {"text", "river delta"}, {"published", true}, {"acl", acl}},
                       {{"id", "b"}, {"text", "river mouth"}, {"published", false}, {"acl", acl}},
                       {{"id", "c"}, {"text", "river bend"}, {"published", 1}, {"acl", acl}}};
    ok_json(post(indexes + "/flags/upsert-data", {{"inputs", rows}}));
    auto query = [&](const json& filters) {
        return post(indexes + "/flags/query", {{"query_text", "river"},
                                               {"query_type", "LEXICAL"},
                                               {"columns", {"id", "published"}},
                                               {"filters_json", filters.dump()}});
    };
    auto rows_of = [&](const json& filters) {
        json answer = ok_json(query(filters));
        std::map<std::string, json> out;
        for (const auto& row : answer["result"]["data_array"]) {
            out[row[0].get<std::string>()] = row[1];
        }
        return out;
    };
    using Rows = std::map<std::string, json>;
    CHECK(rows_of({{"published", true}}) == Rows{{"a", true}});
    CHECK(rows_of({{"published", false}}) == Rows{{"b", false}});
    CHECK(rows_of({{"published", {true, false}}}) == Rows{{"a", true}, {"b", false}});
    CHECK(rows_of({{"published NOT", true}}) == Rows{{"b", false}, {"c", 1}});
    CHECK(rows_of({{"published", 1}}) == Rows{{"c", 1}});
    // As a client reads the body: JSON true, not 1.0.
    CHECK(query({{"published", true}})->body.find(R"(["a",true,)") != std::string::npos);
    auto refused = query({{"published >", false}});
    REQUIRE(refused);
    CHECK(refused->status == 400);
    CHECK(refused->body.find("published >") != std::string::npos);
    CHECK(refused->body.find("boolean has no order") != std::string::npos);
}

TEST_CASE("vector search bodies: an unknown member is a 400 that names it and lists the others") {
    ServerProcess server("vector_bodies", tiny_model_dir());
    const std::string indexes = "/api/2.0/vector-search/indexes";
    auto post = [&](const std::string& path, const std::string& body) {
        return send(server, "POST", path, body);
    };
    auto refused = [&](const httplib::Result& result, const std::string& fragment) {
        REQUIRE(result);
        INFO(result->body);
        CHECK(result->status == 400);
        const json body = json::parse(result->body, nullptr, false);
        const bool envelope =
            body.is_object() && body.contains("error") && body["error"].is_object();
        const std::string message = envelope ? body["error"].value("message", std::string()) : "";
        CHECK(message.find(fragment) != std::string::npos);
        CHECK(message.find("; accepted: ") != std::string::npos);
    };
    // A misspelt setting used to create an index with the default instead.
    refused(post(indexes, R"({"name": "typo", "embedding_dimensions": 64})"),
            "unrecognized request parameters: 'embedding_dimensions'");
    CHECK(send(server, "GET", indexes + "/typo", "")->status == 404);
    // Databricks' shape is taken, endpoint_name included.
    REQUIRE(post(indexes, R"({"name": "docs", "endpoint_name": "vs", "primary_key": "id",
                              "index_type": "DIRECT_ACCESS", "direct_access_index_spec":
                              {"embedding_vector_columns":
                                  [{"name": "vector", "embedding_dimension": 4}]}})")
                ->status == 200);
    REQUIRE(post(indexes + "/docs/upsert-data",
                 R"({"inputs": [{"id": "a", "text": "tides", "vector": [1, 0, 0, 0],
                                 "acl": {"principals": ["admin"]}}]})")
                ->status == 200);
    // A misspelt upsert member was ignored beside the one given.
    refused(post(indexes + "/docs/upsert-data",
                 R"({"inputs": [{"id": "b", "text": "x", "vector": [0, 1, 0, 0]}],
                     "inputs_jsn": "[]"})"),
            "'inputs_jsn'");
    // A misspelt query member used to return default results.
    refused(post(indexes + "/docs/query", R"({"query_vector": [1, 0, 0, 0], "num_result": 1})"),
            "'num_result'");
    refused(post(indexes + "/docs/query",
                 R"({"query_vector": [1, 0, 0, 0], "filter_json": "{\"id\": \"b\"}"})"),
            "'filter_json'");
    // What a Databricks client sends is answered.
    const auto answered = post(indexes + "/docs/query",
                               R"({"query_vector": [1, 0, 0, 0], "query_type": "ANN",
                                   "num_results": 1, "columns": ["id"], "filters_json": null,
                                   "debug_level": 1})");
    REQUIRE(answered);
    CHECK(answered->status == 200);
    CHECK(answered->body.find(R"("row_count":1)") != std::string::npos);

    // A delete without primary_keys deleted nothing and answered 200, with either method.
    httplib::Client client("127.0.0.1", server.port);
    const httplib::Headers headers = {{"Authorization", "Bearer " + server.admin_token}};
    const std::string delete_data = indexes + "/docs/delete-data";
    const auto deleted = [&](const std::string& method, const std::string& body) {
        return method == "DELETE" ? client.Delete(delete_data, headers, body, "application/json")
                                  : client.Post(delete_data, headers, body, "application/json");
    };
    for (const char* method : {"DELETE", "POST"}) {
        CAPTURE(method);
        const auto empty = deleted(method, "{}");
        REQUIRE(empty);
        CHECK(empty->status == 400);
        CHECK(empty->body.find("primary_keys is required") != std::string::npos);
        refused(deleted(method, R"({"primary_key": ["a"]})"), "'primary_key'");
        const auto none = deleted(method, R"({"primary_keys": []})");
        REQUIRE(none);
        CHECK(none->status == 200);
        CHECK(none->body.find(R"("deleted_row_count":0)") != std::string::npos);
    }
    const auto gone = deleted("DELETE", R"({"primary_keys": ["a"]})");
    REQUIRE(gone);
    CHECK(gone->status == 200);
    CHECK(gone->body.find(R"("deleted_row_count":1)") != std::string::npos);
    drain(server);
    CHECK(running(server));
}

TEST_CASE("vector search: a filter nested past the limit is a 400, and the server lives") {
    ServerProcess server("vector_deep_filter", tiny_model_dir());
    const std::string indexes = "/api/2.0/vector-search/indexes";
    ok_json(server.send(server.admin_token, "POST", indexes,
                        {{"name", "deep"}, {"embedding_dimension", 64}}));
    // 20,000 nots (160 KB) overflowed the request thread's stack and ended the process.
    const std::size_t depth = 20000;
    std::string filter;
    for (std::size_t i = 0; i < depth; ++i) {
        filter += R"({"not": )";
    }
    filter += R"({"lang": "en"})" + std::string(depth, '}');
    // In the body the request's JSON is refused as a whole (past 512 levels); in
    // filters_json, a string, the filter is.
    const std::pair<std::string, std::string> cases[] = {
        {R"({"query_text": "river", "filters": )" + filter + "}",
         "JSON in request body nested more than 512 deep"},
        {json{{"query_text", "river"}, {"filters_json", filter}}.dump(),
         "filters: and/or/not nested more than 100 deep"}};
    for (const auto& [body, message] : cases) {
        const auto answer = send(server, "POST", indexes + "/deep/query", body);
        REQUIRE(answer);
        CHECK(answer->status == 400);
        CHECK(answer->body.find(message) != std::string::npos);
        drain(server);
        REQUIRE(running(server));
    }
}

TEST_CASE("document QA and agent bodies: a misspelt member is a 400 that names it") {
    ServerProcess server("robust_agents", tiny_model_dir());
    server.wait_model_ready(true);
    const std::vector<BadBody> cases = {
        {"/api/qa", R"({"question": "q", "index": "docs", "option": {"k": 1}})",
         "unrecognized request parameters: 'option'; accepted: index, options, question, stream"},
        {"/api/qa", R"({"question": "q", "index": "docs", "options": {"top_k": 1}})",
         "options: unknown field 'top_k'"},
        {"/api/agents/main.tools.nobody/invoke", R"({"input": "hi", "budgets": {}})",
         "unrecognized request parameters: 'budgets'; accepted: input, messages, stream"},
        {"/api/agents/main.tools.nobody/invoke",
         R"({"input": "hi", "messages": [{"role": "user", "content": "hi"}]})",
         "give input or messages, not both"},
        {"/api/agents/main.tools.nobody/invoke",
         R"({"messages": [{"role": "user", "content": "hi", "nmae": "x"}]})",
         "messages[0]: unrecognized request parameters: 'nmae'"},
        // What an agent served as a model cannot give: one choice came back for three.
        {"/v1/chat/completions",
         R"({"model": "agents/main.tools.nobody", "n": 3,
             "messages": [{"role": "user", "content": "hi"}]})",
         "n: an agent gives one answer; expected 1, found 3"},
        {"/v1/chat/completions",
         R"({"model": "agents/main.tools.nobody", "response_format": {"type": "json_object"},
             "messages": [{"role": "user", "content": "hi"}]})",
         "response_format: an agent answers in text"},
    };
    for (const BadBody& c : cases) {
        INFO(c.path, " with body ", c.body);
        const auto answer = send(server, "POST", c.path, c.body);
        REQUIRE(answer);
        CHECK(answer->status == 400);
        CHECK_MESSAGE(answer->body.find(c.fragment) != std::string::npos, answer->body);
        drain(server);
    }
    CHECK(running(server));
}
