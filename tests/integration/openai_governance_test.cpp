// Governance of the OpenAI-compatible API through the real `sluice serve` binary with a tiny
// random model: token budgets (429), the privilege to query the endpoint and the answer's
// lineage, personal-data guardrails on input and output (streamed and not), usage rows after a
// stream and after a client abort, and streams in flight at SIGTERM.
#include <doctest/doctest.h>

#include <thread>

#include "raw_client.h"
#include "sluice_server.h"

namespace {

using nlohmann::json;
using sluice::testing::RawClient;
using sluice::testing::ServerProcess;
using sluice::testing::tiny_model_dir;
using namespace std::chrono_literals;

const std::string kUc = "/api/2.1/unity-catalog";
const std::string kEmail = "jane.doe@example.com";

json chat_body(int max_tokens, bool stream = false, const std::string& text = "Hello there") {
    return {{"messages", json::array({{{"role", "user"}, {"content", text}}})},
            {"max_tokens", max_tokens},
            {"temperature", 0},
            {"stream", stream}};
}

httplib::Result call(const ServerProcess& server, const std::string& token,
                     const std::string& method, const std::string& path,
                     const json& body = json::object()) {
    auto client = server.client();
    client.set_bearer_token_auth(token);
    if (method == "GET") {
        return client.Get(path);
    }
    if (method == "PUT") {
        return client.Put(path, body.dump(), "application/json");
    }
    if (method == "PATCH") {
        return client.Patch(path, body.dump(), "application/json");
    }
    return client.Post(path, body.dump(), "application/json");
}

json ok(httplib::Result result) {
    REQUIRE(result);
    INFO(result->body);
    REQUIRE(result->status == 200);
    return json::parse(result->body);
}

// A user and a token for it, made by the admin.
std::string make_user(const ServerProcess& server, const std::string& name) {
    ok(call(server, server.admin_token, "POST", "/api/2.0/sluice/principals", {{"name", name}}));
    return ok(call(server, server.admin_token, "POST", "/api/2.0/token/create",
                   {{"principal", name}}))["token_value"];
}

std::string model_id(const ServerProcess& server) {
    return ok(call(server, server.admin_token, "GET", "/v1/models"))["data"][0]["id"];
}

// The data lines of an SSE body, [DONE] included.
std::vector<std::string> sse_data(const std::string& body) {
    std::vector<std::string> out;
    size_t at = 0;
    while ((at = body.find("data: ", at)) != std::string::npos) {
        const size_t end = body.find("\n\n", at);
        out.push_back(body.substr(at + 6, end - at - 6));
        at = end;
    }
    return out;
}

// The one usage row of `principal` (all of its calls today).
json usage_of(const ServerProcess& server, const std::string& principal) {
    auto rows = ok(call(server, server.admin_token, "GET",
                        "/api/2.0/sluice/usage?group_by=principal&principal=" + principal))["usage"];
    return rows.empty() ? json{{"requests", 0}} : rows[0];
}

void set_guardrails(const ServerProcess& server, const std::string& model,
                    const std::string& input, const std::string& output) {
    ok(call(server, server.admin_token, "PUT", "/api/2.0/serving-endpoints/" + model + "/ai-gateway",
            {{"guardrails",
              {{"input", {{"pii", {{"behavior", input}}}}},
               {"output", {{"pii", {{"behavior", output}}}}}}}}));
}

}  // namespace

TEST_CASE("a spent token budget answers 429 with Retry-After in OpenAI's shape") {
    ServerProcess server("budget", tiny_model_dir());
    server.wait_model_ready(true);
    const std::string model = model_id(server);
    const std::string bob = make_user(server, "bob");

    auto first = ok(call(server, bob, "POST", "/v1/chat/completions", chat_body(4)));
    const int prompt = first["usage"]["prompt_tokens"];
    const int used = prompt + first["usage"]["completion_tokens"].get<int>();
    // Room for one more call's estimate (prompt + max_tokens) but not for two.
    const int limit = used + prompt + 4 + prompt / 2;
    ok(call(server, server.admin_token, "POST", "/api/2.0/sluice/limits",
            {{"principal", "bob"}, {"endpoint", model}, {"kind", "tokens/day"}, {"limit", limit}}));

    ok(call(server, bob, "POST", "/v1/chat/completions", chat_body(4)));
    auto refused = call(server, bob, "POST", "/v1/chat/completions", chat_body(4));
    REQUIRE(refused);
    CHECK(refused->status == 429);
    CHECK(std::stoll(refused->get_header_value("Retry-After")) > 0);
    auto error = json::parse(refused->body)["error"];
    CHECK(error["type"] == "rate_limit_error");
    CHECK(error["message"].get<std::string>().find("tokens/day") != std::string::npos);
    // A stream is refused before it starts, the same way.
    auto refused_stream = call(server, bob, "POST", "/v1/chat/completions", chat_body(4, true));
    REQUIRE(refused_stream);
    CHECK(refused_stream->status == 429);
    // Embeddings count against the same budget.
    auto embedding = call(server, bob, "POST", "/v1/embeddings",
                          {{"input", std::string(400, 'a')}});
    REQUIRE(embedding);
    CHECK(embedding->status == 429);
    // Another caller is not limited by bob's budget.
    ok(call(server, server.admin_token, "POST", "/v1/chat/completions", chat_body(2)));
    // Refused calls are not billed: bob's usage holds the two served calls.
    CHECK(usage_of(server, "bob")["requests"] == 2);
}

TEST_CASE("querying the endpoint needs EXECUTE on its catalog model; the answer has lineage") {
    ServerProcess server("endpoint-acl", tiny_model_dir(),
                         {{"SLUICE_MODEL_SECURABLE", "main.models.llm"}});
    server.wait_model_ready(true);
    const std::string admin = server.admin_token;
    ok(call(server, admin, "POST", kUc + "/catalogs", {{"name", "main"}}));
    ok(call(server, admin, "POST", kUc + "/schemas", {{"name", "models"}, {"catalog_name", "main"}}));
    ok(call(server, admin, "POST", kUc + "/models",
            {{"name", "llm"}, {"catalog_name", "main"}, {"schema_name", "models"}}));
    const std::string carol = make_user(server, "carol");

    auto denied = call(server, carol, "POST", "/v1/chat/completions", chat_body(2));
    REQUIRE(denied);
    CHECK(denied->status == 403);
    CHECK(json::parse(denied->body)["error"]["message"].get<std::string>().find("EXECUTE") !=
          std::string::npos);
    auto denied_embedding = call(server, carol, "POST", "/v1/embeddings", {{"input", "hello"}});
    REQUIRE(denied_embedding);
    CHECK(denied_embedding->status == 403);

    ok(call(server, admin, "PATCH", kUc + "/permissions/catalog/main",
            {{"changes",
              {{{"principal", "carol"}, {"add", {"USE_CATALOG", "USE_SCHEMA"}}}}}}));
    // An agent's runs use the model under the same rule: EXECUTE on the agent is not enough,
    // through its own route or as a model of the OpenAI API.
    ok(call(server, admin, "POST", kUc + "/schemas",
            {{"name", "tools"}, {"catalog_name", "main"}}));
    ok(call(server, admin, "POST", kUc + "/agents",
            {{"name", "helper"}, {"catalog_name", "main"}, {"schema_name", "tools"}}));
    ok(call(server, admin, "PUT", "/api/agents/main.tools.helper",
            {{"instructions", "Be brief."}, {"budgets", {{"max_steps", 1}, {"max_tokens", 400}}}}));
    ok(call(server, admin, "PATCH", kUc + "/permissions/agent/main.tools.helper",
            {{"changes", {{{"principal", "carol"}, {"add", {"EXECUTE"}}}}}}));
    const json agent_chat = {{"model", "agents/main.tools.helper"},
                             {"messages", {{{"role", "user"}, {"content", "Hello"}}}}};
    json agent_chat_stream = agent_chat;
    agent_chat_stream["stream"] = true;
    // Streamed or not, the refusal is an HTTP status: no stream starts.
    for (const auto& [path, body] :
         {std::pair{std::string("/api/agents/main.tools.helper/invoke"), json{{"input", "Hello"}}},
          std::pair{std::string("/api/agents/main.tools.helper/invoke"),
                    json{{"input", "Hello"}, {"stream", true}}},
          std::pair{std::string("/v1/chat/completions"), agent_chat},
          std::pair{std::string("/v1/chat/completions"), agent_chat_stream}}) {
        auto agent_denied = call(server, carol, "POST", path, body);
        REQUIRE(agent_denied);
        INFO(path << ": " << agent_denied->body);
        CHECK(agent_denied->status == 403);
        CHECK(agent_denied->body.find("main.models.llm") != std::string::npos);
    }

    ok(call(server, admin, "PATCH", kUc + "/permissions/model/main.models.llm",
            {{"changes", {{{"principal", "carol"}, {"add", {"EXECUTE", "BROWSE"}}}}}}));
    auto allowed = call(server, carol, "POST", "/v1/chat/completions", chat_body(2));
    REQUIRE(allowed);
    REQUIRE(allowed->status == 200);
    json agent_run = ok(
        call(server, carol, "POST", "/api/agents/main.tools.helper/invoke", {{"input", "Hello"}}));
    CHECK(agent_run["usage"]["completion_tokens"].get<int>() > 0);
    const std::string request_id = allowed->get_header_value("X-Request-Id");

    auto upstream = ok(call(server, carol, "GET",
                            "/api/2.1/lineage/upstream?node=answer:" + request_id));
    bool from_model = false;
    for (const auto& node : upstream["nodes"]) {
        from_model = from_model || (node.value("type", "") == "model" &&
                                    node.value("name", "") == "main.models.llm");
    }
    CHECK_MESSAGE(from_model, upstream.dump());
    // The chat call and the agent's run.
    CHECK(usage_of(server, "carol")["requests"] == 2);
}

TEST_CASE("personal-data guardrails block or mask input and output, streamed and not") {
    ServerProcess server("pii", tiny_model_dir());
    server.wait_model_ready(true);
    const std::string model = model_id(server);
    const std::string admin = server.admin_token;
    const json echo_prompt = {{"prompt", "Write to " + kEmail + " today"},
                              {"max_tokens", 3},
                              {"temperature", 0},
                              {"echo", true}};

    SUBCASE("input blocked") {
        set_guardrails(server, model, "BLOCK", "NONE");
        auto blocked = call(server, admin, "POST", "/v1/chat/completions",
                            chat_body(2, false, "mail me at " + kEmail));
        REQUIRE(blocked);
        CHECK(blocked->status == 400);
        const std::string message = json::parse(blocked->body)["error"]["message"];
        CHECK(message.find("1 email") != std::string::npos);
        CHECK(message.find(kEmail) == std::string::npos);
        // Nothing ran, nothing was billed.
        CHECK(usage_of(server, "admin")["requests"] == 0);
    }
    SUBCASE("input masked: the model reads the label") {
        set_guardrails(server, model, "MASK", "NONE");
        auto answer = ok(call(server, admin, "POST", "/v1/completions", echo_prompt));
        const std::string text = answer["choices"][0]["text"];
        CHECK(text.rfind("Write to [EMAIL] today", 0) == 0);
    }
    SUBCASE("output blocked, whole and streamed") {
        set_guardrails(server, model, "NONE", "BLOCK");
        auto whole = call(server, admin, "POST", "/v1/completions", echo_prompt);
        REQUIRE(whole);
        CHECK(whole->status == 403);
        CHECK(json::parse(whole->body)["error"]["type"] == "permission_error");
        CHECK(whole->body.find(kEmail) == std::string::npos);

        json streamed = echo_prompt;
        streamed["stream"] = true;
        auto stream = call(server, admin, "POST", "/v1/completions", streamed);
        REQUIRE(stream);
        REQUIRE(stream->status == 200);
        CHECK(stream->body.find(kEmail) == std::string::npos);
        CHECK(stream->body.find("jane.doe") == std::string::npos);
        auto events = sse_data(stream->body);
        REQUIRE(events.size() >= 2);
        CHECK(events.back() == "[DONE]");
        auto error = json::parse(events[events.size() - 2]);
        CHECK(error["error"]["code"] == "permission_denied");
        // Both calls ran and are billed.
        CHECK(usage_of(server, "admin")["requests"] == 2);
    }
    SUBCASE("output masked, whole and streamed") {
        set_guardrails(server, model, "NONE", "MASK");
        auto whole = ok(call(server, admin, "POST", "/v1/completions", echo_prompt));
        CHECK(whole["choices"][0]["text"].get<std::string>().rfind("Write to [EMAIL] today", 0) ==
              0);

        json streamed = echo_prompt;
        streamed["stream"] = true;
        auto stream = call(server, admin, "POST", "/v1/completions", streamed);
        REQUIRE(stream);
        REQUIRE(stream->status == 200);
        CHECK(stream->body.find("jane.doe") == std::string::npos);
        std::string text;
        for (const auto& event : sse_data(stream->body)) {
            if (event == "[DONE]") {
                continue;
            }
            const json chunk = json::parse(event);
            for (const auto& choice : chunk["choices"]) {
                text += choice.value("text", "");
            }
        }
        CHECK_MESSAGE(text.rfind("Write to [EMAIL] today", 0) == 0, stream->body);
    }
    SUBCASE("token logprobs are refused where an output policy applies") {
        // Their tokens carry the unmasked text (with echo, the prompt's too).
        for (const char* output : {"MASK", "BLOCK"}) {
            set_guardrails(server, model, "NONE", output);
            json scored = echo_prompt;
            scored["logprobs"] = 1;
            auto legacy = call(server, admin, "POST", "/v1/completions", scored);
            REQUIRE(legacy);
            CHECK(legacy->status == 400);
            CHECK(legacy->body.find(kEmail) == std::string::npos);
            CHECK(legacy->body.find("'logprobs' is not available") != std::string::npos);
            json chat = chat_body(2, true, "mail me at " + kEmail);
            chat["logprobs"] = true;
            auto streamed = call(server, admin, "POST", "/v1/chat/completions", chat);
            REQUIRE(streamed);
            CHECK(streamed->status == 400);
            CHECK(streamed->body.find(kEmail) == std::string::npos);
        }
        // Nothing ran; without an output policy they are given.
        CHECK(usage_of(server, "admin")["requests"] == 0);
        set_guardrails(server, model, "MASK", "NONE");
        json scored = echo_prompt;
        scored["logprobs"] = 1;
        auto answer = ok(call(server, admin, "POST", "/v1/completions", scored));
        std::string tokens;
        for (const auto& token : answer["choices"][0]["logprobs"]["tokens"]) {
            tokens += token.get<std::string>();
        }
        // The input policy masked the prompt before the model (and the echo) saw it.
        CHECK(tokens.rfind("Write to [EMAIL] today", 0) == 0);
    }
}

TEST_CASE("usage rows hold the real tokens after a stream and after a client abort") {
    ServerProcess server("usage", tiny_model_dir());
    server.wait_model_ready(true);
    const std::string dave = make_user(server, "dave");

    json body = chat_body(6, true);
    body["stream_options"] = {{"include_usage", true}};
    auto stream = call(server, dave, "POST", "/v1/chat/completions", body);
    REQUIRE(stream);
    REQUIRE(stream->status == 200);
    auto events = sse_data(stream->body);
    REQUIRE(events.size() >= 2);
    auto usage = json::parse(events[events.size() - 2])["usage"];
    const int prompt = usage["prompt_tokens"];
    const int completion = usage["completion_tokens"];
    auto row = usage_of(server, "dave");
    CHECK(row["requests"] == 1);
    CHECK(row["input_tokens"] == prompt);
    CHECK(row["output_tokens"] == completion);

    {
        RawClient client(server.port, dave);
        client.post("/v1/chat/completions", chat_body(3000, true));
        // Several content chunks: tokens were generated before the client leaves.
        client.read_until_count("\"content\"", 6);
    }  // gone mid-stream
    for (int i = 0; i < 400 && usage_of(server, "dave")["requests"] != 2; ++i) {
        std::this_thread::sleep_for(25ms);
    }
    row = usage_of(server, "dave");
    REQUIRE(row["requests"] == 2);
    CHECK(row["input_tokens"] == 2 * prompt);
    CHECK(row["output_tokens"].get<int>() > completion);
    CHECK(row["output_tokens"].get<int>() < completion + 3000);
}

TEST_CASE("SIGTERM lets a stream in flight end cleanly with [DONE] before the deadline") {
    ServerProcess server("stream-drain", tiny_model_dir(),
                         {{"SLUICE_SERVER_SHUTDOWN_DEADLINE_S", "4"}});
    server.wait_model_ready(true);
    RawClient client(server.port, server.admin_token);
    json body = chat_body(3000, true);
    body["stream_options"] = {{"include_usage", true}};
    client.post("/v1/chat/completions", body);
    client.read_until("\"content\"");

    server.process->signal(SIGTERM);
    REQUIRE(server.process->wait_for_line("letting streams finish", 10s).has_value());
    // While the stream drains, new requests are refused rather than started.
    auto late = server.client().Post("/v1/chat/completions", chat_body(2).dump(),
                                      "application/json");
    REQUIRE(late);
    CHECK(late->status == 503);

    const std::string received = client.read_until("data: [DONE]");
    CHECK(received.find("data: [DONE]") != std::string::npos);
    CHECK(received.find("\"finish_reason\":\"length\"") != std::string::npos);
    CHECK(received.find("\"completion_tokens\"") != std::string::npos);  // the usage chunk
    CHECK_MESSAGE(server.process->wait(20s) == 0, server.process->output());
}
