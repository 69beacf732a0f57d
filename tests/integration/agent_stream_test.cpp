// Agents through the real binary with the tiny model: served as OpenAI models they stream the
// answer's tokens as chat chunks, and a client that hangs up mid-stream cancels the run — on
// /v1/chat/completions and on /api/agents/{name}/invoke — with the engine request cancelled
// (its KV blocks freed), the cancellation in the trace and the tokens spent in usage. The
// request's max_tokens bounds the run, and its temperature, top_p and seed reach each turn.

#include <httplib.h>

#include <regex>
#include <thread>

#include <nlohmann/json.hpp>

#include "doctest/doctest.h"
#include "raw_client.h"
#include "run_sluice.h"
#include "sluice_server.h"

namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using sluice::testing::ok_json;
using sluice::testing::RawClient;
using sluice::testing::ServerProcess;
using sluice::testing::tiny_model_dir;

const std::string kUc = "/api/2.1/unity-catalog";
const std::string kAgent = "main.tools.talker";

void make_agent(const ServerProcess& server) {
    const std::string& admin = server.admin_token;
    ok_json(server.send(admin, "POST", kUc + "/catalogs", {{"name", "main"}}));
    ok_json(server.send(admin, "POST", kUc + "/schemas",
                        {{"name", "tools"}, {"catalog_name", "main"}}));
    ok_json(server.send(admin, "POST", kUc + "/agents",
                        {{"name", "talker"}, {"catalog_name", "main"}, {"schema_name", "tools"}}));
    // No tools: every model turn is answer text, streamed token by token.
    ok_json(server.send(admin, "PUT", "/api/agents/" + kAgent,
                        {{"instructions", "Answer briefly."},
                         {"tools", json::array()},
                         {"budgets", {{"max_steps", 2}, {"max_tokens", 4000}}}}));
}

// The JSON objects of a `data:` event stream, and whether it ended with [DONE].
std::vector<json> data_events(const std::string& body, bool* done) {
    std::vector<json> out;
    *done = false;
    size_t at = 0;
    while ((at = body.find("data: ", at)) != std::string::npos) {
        size_t end = body.find("\n\n", at);
        REQUIRE(end != std::string::npos);
        std::string data = body.substr(at + 6, end - at - 6);
        at = end + 2;
        if (data == "[DONE]") {
            *done = true;
            continue;
        }
        REQUIRE_FALSE(*done);  // nothing after [DONE]
        out.push_back(json::parse(data));
    }
    return out;
}

std::string trace_id_in(const std::string& text) {
    std::smatch match;
    REQUIRE(std::regex_search(text, match, std::regex("\"trace_id\":\"([0-9a-f]{32})\"")));
    return match[1].str();
}

// The trace once the run has stored it (at its end), bounded.
json stored_trace(const ServerProcess& server, const std::string& id) {
    for (int i = 0; i < 1200; ++i) {
        auto result = server.send(server.admin_token, "GET", "/api/traces/" + id);
        REQUIRE(result);
        if (result->status == 200) {
            return json::parse(result->body);
        }
        std::this_thread::sleep_for(50ms);
    }
    FAIL("trace " << id << " was never stored");
    return json();
}

// Waits (bounded) until the engine holds no sequence and no KV block.
void wait_engine_idle(const ServerProcess& server) {
    double running = -1;
    double blocks = -1;
    for (int i = 0; i < 1200 && (running != 0 || blocks != 0); ++i) {
        running = server.metric("sluice_engine_sequences_running");
        blocks = server.metric("sluice_kv_blocks_in_use");
        if (running != 0 || blocks != 0) {
            std::this_thread::sleep_for(25ms);
        }
    }
    CHECK(running == 0);
    CHECK(blocks == 0);
}

// The agent span's outputs, and the LLM spans cut short.
void check_cancelled(const json& trace) {
    REQUIRE(trace["spans"].size() >= 2);
    const json& agent = trace["spans"][0];
    CHECK(agent["kind"] == "agent");
    CHECK(agent["outputs"]["stop_reason"] == "cancelled");
    CHECK(agent["error"] == "cancelled: the client went away");
    CHECK(agent["outputs"]["answer"] == "Stopped without an answer: the client went away.");
    int cut = 0;
    for (const json& span : trace["spans"]) {
        if (span["kind"] == "llm" && span["error"] == "cancelled: the client went away") {
            ++cut;
            CHECK(span["prompt_tokens"].get<int>() > 0);
        }
    }
    CHECK(cut == 1);
    CHECK(agent["outputs"]["prompt_tokens"].get<int>() > 0);
}

json agent_usage(const ServerProcess& server) {
    json usage = ok_json(server.send(server.admin_token, "GET",
                                     "/api/2.0/sluice/usage?group_by=agent"));
    for (const json& row : usage["usage"]) {
        if (row["agent"] == kAgent) {
            return row;
        }
    }
    return json();
}

}  // namespace

TEST_CASE("an agent served as a model streams its answer's tokens as chat chunks") {
    ServerProcess server("agent-stream", tiny_model_dir());
    server.wait_model_ready(true);
    make_agent(server);
    auto streamed = server.send(server.admin_token, "POST", "/v1/chat/completions",
                                {{"model", "agents/" + kAgent},
                                 {"messages", {{{"role", "user"}, {"content", "Say hello."}}}},
                                 {"stream", true},
                                 {"stream_options", {{"include_usage", true}}}});
    REQUIRE(streamed);
    REQUIRE(streamed->status == 200);
    CHECK(streamed->get_header_value("Content-Type").starts_with("text/event-stream"));
    bool done = false;
    std::vector<json> chunks = data_events(streamed->body, &done);
    CHECK(done);
    REQUIRE(chunks.size() >= 3);
    const std::string trace_id = chunks[0]["trace_id"];
    CHECK(chunks[0]["choices"][0]["delta"]["role"] == "assistant");
    std::string text;
    int content_chunks = 0;
    std::string finish;
    for (size_t i = 0; i < chunks.size(); ++i) {
        const json& chunk = chunks[i];
        CHECK(chunk["object"] == "chat.completion.chunk");
        CHECK(chunk["model"] == "agents/" + kAgent);
        CHECK(chunk["id"] == chunks[0]["id"]);
        CHECK(chunk["trace_id"] == trace_id);
        if (i + 1 < chunks.size()) {
            CHECK(chunk["usage"].is_null());
        }
        for (const json& choice : chunk["choices"]) {
            if (i > 0 && choice["delta"].contains("content")) {
                text += choice["delta"]["content"].get<std::string>();
                ++content_chunks;
            }
            if (!choice["finish_reason"].is_null()) {
                finish = choice["finish_reason"];
            }
        }
    }
    CHECK(finish == "stop");
    const json& usage = chunks.back()["usage"];
    REQUIRE(usage.is_object());
    CHECK(chunks.back()["choices"].empty());
    // The trace agrees: the streamed text is the answer, the usage the run's tokens.
    json trace = stored_trace(server, trace_id);
    const json& agent = trace["spans"][0];
    CHECK(agent["outputs"]["stop_reason"] == "answer");
    CHECK(agent["outputs"]["answer"] == text);
    CHECK(usage["prompt_tokens"] == agent["outputs"]["prompt_tokens"]);
    CHECK(usage["completion_tokens"] == agent["outputs"]["completion_tokens"]);
    // Token by token, not one chunk at the end: a reply of several tokens came in pieces.
    if (usage["completion_tokens"].get<int>() >= 8) {
        CHECK(content_chunks >= 4);
    }
    MESSAGE("completion tokens " << usage["completion_tokens"] << ", content chunks "
                                 << content_chunks);

    // Refusals come before the stream, with HTTP statuses.
    auto unknown = server.send(server.admin_token, "POST", "/v1/chat/completions",
                               {{"model", "agents/main.tools.nobody"},
                                {"messages", {{{"role", "user"}, {"content", "hi"}}}},
                                {"stream", true}});
    REQUIRE(unknown);
    CHECK(unknown->status == 404);
    ok_json(server.send(server.admin_token, "POST", "/api/2.0/sluice/principals",
                        {{"name", "stranger"}}));
    std::string stranger = ok_json(server.send(server.admin_token, "POST",
                                               "/api/2.0/token/create",
                                               {{"principal", "stranger"}}))["token_value"];
    auto denied = server.send(stranger, "POST", "/v1/chat/completions",
                              {{"model", "agents/" + kAgent},
                               {"messages", {{{"role", "user"}, {"content", "hi"}}}},
                               {"stream", true}});
    REQUIRE(denied);
    CHECK(denied->status == 403);
}

TEST_CASE("an agent served as a model takes the request's max_tokens, temperature and seed") {
    ServerProcess server("agent-options", tiny_model_dir());
    server.wait_model_ready(true);
    make_agent(server);
    auto chat = [&](json extra) {
        json body = {{"model", "agents/" + kAgent},
                     {"messages", {{{"role", "user"}, {"content", "Tell a long story."}}}}};
        body.update(extra);
        return server.send(server.admin_token, "POST", "/v1/chat/completions", body);
    };
    // max_tokens bounds the run; the answer is cut there, as a model's is.
    json cut = ok_json(chat({{"max_tokens", 3}}));
    const auto completion = cut["usage"]["completion_tokens"].get<int>();
    CHECK(completion <= 3);
    CHECK(completion > 0);
    const bool reached = completion == 3;
    MESSAGE("an answer of at most 3 tokens took " << completion);
    CHECK(cut["choices"][0]["finish_reason"] == (reached ? "length" : "stop"));
    json trace = stored_trace(server, cut["trace_id"]);
    CHECK(trace["spans"][0]["outputs"]["stop_reason"] == (reached ? "max_tokens" : "answer"));
    CHECK(trace["spans"][0]["outputs"]["answer"] == cut["choices"][0]["message"]["content"]);
    auto streamed = chat({{"max_tokens", 3}, {"stream", true}});
    REQUIRE(streamed);
    REQUIRE(streamed->status == 200);
    bool done = false;
    std::string text;
    std::string finish;
    for (const json& chunk : data_events(streamed->body, &done)) {
        for (const json& choice : chunk["choices"]) {
            text += choice["delta"].value("content", "");
            if (!choice["finish_reason"].is_null()) {
                finish = choice["finish_reason"];
            }
        }
    }
    CHECK(done);
    CHECK(finish == (reached ? "length" : "stop"));
    // Greedy turns by default: the same answer, streamed or not.
    CHECK(text == cut["choices"][0]["message"]["content"]);

    // A temperature with a seed repeats; the turns sample (a different seed may differ).
    json sampled = {{"max_tokens", 12}, {"temperature", 1.5}, {"seed", 7}};
    json first = ok_json(chat(sampled));
    json again = ok_json(chat(sampled));
    CHECK(first["choices"][0]["message"]["content"] == again["choices"][0]["message"]["content"]);
    bool differs = false;
    for (int seed = 8; seed < 12 && !differs; ++seed) {
        json other = sampled;
        other["seed"] = seed;
        differs = ok_json(chat(other))["choices"][0]["message"]["content"] !=
                  first["choices"][0]["message"]["content"];
    }
    CHECK(differs);

    // What an agent's turns cannot honour is refused, not dropped; defaults pass.
    for (const json& refused : {json{{"stop", "."}}, json{{"presence_penalty", 0.5}},
                                json{{"top_k", 5}}, json{{"logit_bias", {{"7", 5}}}}}) {
        auto answer = chat(refused);
        REQUIRE(answer);
        CHECK(answer->status == 400);
        CHECK(answer->body.find(refused.begin().key()) != std::string::npos);
    }
    ok_json(
        chat({{"max_tokens", 2}, {"presence_penalty", 0}, {"frequency_penalty", 0}, {"top_p", 1}}));
}

TEST_CASE("a client hanging up mid-stream cancels the agent run") {
    ServerProcess server("agent-hangup", tiny_model_dir());
    server.wait_model_ready(true);
    make_agent(server);

    SUBCASE("on /v1/chat/completions") {
        RawClient client(server.port, server.admin_token);
        client.post("/v1/chat/completions",
                    {{"model", "agents/" + kAgent},
                     {"messages", {{{"role", "user"}, {"content", "Tell a long story."}}}},
                     {"stream", true}});
        // The opening chunk and three pieces of content.
        std::string received = client.read_until_count("\"content\":", 4);
        REQUIRE_MESSAGE(received.find("[DONE]") == std::string::npos, received);
        const std::string trace_id = trace_id_in(received);
        client.close();
        check_cancelled(stored_trace(server, trace_id));
    }
    SUBCASE("on /api/agents/{name}/invoke") {
        RawClient client(server.port, server.admin_token);
        client.post("/api/agents/" + kAgent + "/invoke",
                    {{"input", "Tell a long story."}, {"stream", true}});
        std::string received = client.read_until_count("event: tokens", 3);
        REQUIRE_MESSAGE(received.find("event: final") == std::string::npos, received);
        const std::string trace_id = trace_id_in(received);
        client.close();
        check_cancelled(stored_trace(server, trace_id));
    }
    wait_engine_idle(server);
    // What the cancelled run spent is in usage, charged to its agent.
    json usage = agent_usage(server);
    REQUIRE(usage.is_object());
    CHECK(usage["requests"] == 1);
    CHECK(usage["input_tokens"].get<int>() > 0);
    CHECK(usage["output_tokens"].get<int>() >= 3);
}
