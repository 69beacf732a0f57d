// The OpenAI-compatible API of the real `sluice serve` binary with a tiny random model: answers,
// streams, prefix caching, errors, load shedding and client aborts.
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

httplib::Result post(const ServerProcess& server, const std::string& path, const json& body) {
    return server.client().Post(path, body.dump(), "application/json");
}

json chat_body(int max_tokens, bool stream = false) {
    return {{"messages", json::array({{{"role", "user"}, {"content", "Hello there"}}})},
            {"max_tokens", max_tokens},
            {"temperature", 0},  // the same tokens every run
            {"stream", stream}};
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

}  // namespace

TEST_CASE("without a model the server starts and says why it is not ready") {
    ServerProcess server("nomodel", "/nonexistent/model/folder");
    auto readiness = server.wait_model_ready(false);
    CHECK(readiness["status"] == "not_ready");
    CHECK(readiness["checks"]["model"]["reason"].get<std::string>().find("does not exist") !=
          std::string::npos);
    auto result = post(server, "/v1/chat/completions", chat_body(4));
    REQUIRE(result);
    CHECK(result->status == 503);
    CHECK(json::parse(result->body)["error"]["message"].get<std::string>().find(
              "not loaded") != std::string::npos);
}

TEST_CASE("chat and completions answer in OpenAI's shapes") {
    ServerProcess server("chat", tiny_model_dir());
    auto readiness = server.wait_model_ready(true);
    CHECK(readiness["status"] == "ready");

    json body = chat_body(6);
    auto result = post(server, "/v1/chat/completions", body);
    REQUIRE(result);
    REQUIRE_MESSAGE(result->status == 200, result->body);
    auto answer = json::parse(result->body);
    CHECK(answer["object"] == "chat.completion");
    CHECK(answer["choices"][0]["message"]["role"] == "assistant");
    CHECK(answer["choices"][0]["message"]["content"].is_string());
    const std::string finish = answer["choices"][0]["finish_reason"];
    CHECK((finish == "length" || finish == "stop"));
    CHECK(answer["usage"]["completion_tokens"].get<int>() <= 6);
    CHECK(answer["usage"]["prompt_tokens"].get<int>() > 10);
    CHECK(answer["usage"]["prompt_tokens_details"]["cached_tokens"].is_number());

    auto legacy = post(server, "/v1/completions",
                       {{"prompt", json::array({"one", "two"})}, {"max_tokens", 3}, {"n", 2},
                        {"echo", true}, {"logprobs", 2}});
    REQUIRE(legacy);
    REQUIRE_MESSAGE(legacy->status == 200, legacy->body);
    auto completion = json::parse(legacy->body);
    REQUIRE(completion["choices"].size() == 4);
    CHECK(completion["choices"][2]["text"].get<std::string>().rfind("two", 0) == 0);
    // Echo with logprobs: the prompt's tokens first (the first one unscored), then up to 3.
    const json& echoed = completion["choices"][0]["logprobs"];
    CHECK(echoed["token_logprobs"][0].is_null());
    CHECK(echoed["token_logprobs"].size() == echoed["tokens"].size());
    CHECK(echoed["tokens"].size() <= 1 + 3);
    CHECK(echoed["text_offset"][0] == 0);

    // logit_bias: +100 on one token makes a greedy answer that token, every time.
    auto tokenized = post(server, "/tokenize", {{"prompt", " Paris"}});
    REQUIRE_MESSAGE(tokenized, httplib::to_string(tokenized.error()));
    REQUIRE_MESSAGE(tokenized->status == 200, tokenized->body);
    const int paris = json::parse(tokenized->body)["tokens"][0];
    auto twice = post(server, "/detokenize", {{"tokens", {paris, paris}}});
    REQUIRE(twice);
    const std::string expected = json::parse(twice->body)["prompt"];
    auto forced = post(server, "/v1/completions",
                       {{"prompt", "The capital of France is"},
                        {"max_tokens", 2},
                        {"temperature", 0},
                        {"logit_bias", {{std::to_string(paris), 100}}}});
    REQUIRE(forced);
    REQUIRE_MESSAGE(forced->status == 200, forced->body);
    CHECK(json::parse(forced->body)["choices"][0]["text"] == expected);
    // A special token forced the same way is control, not content: no text by default (as
    // vLLM), its text with skip_special_tokens false; the token itself is in the logprobs.
    const json forced_special = {{"prompt", "The capital of France is"},
                                 {"max_tokens", 2},
                                 {"temperature", 0},
                                 {"logprobs", 0},
                                 {"logit_bias", {{"100258", 100}}}};
    auto skipped = post(server, "/v1/completions", forced_special);
    REQUIRE(skipped);
    REQUIRE_MESSAGE(skipped->status == 200, skipped->body);
    const json skipped_choice = json::parse(skipped->body)["choices"][0];
    CHECK(skipped_choice["text"] == "");
    CHECK(skipped_choice["logprobs"]["tokens"][0] == "<|fim_prefix|>");
    json written_body = forced_special;
    written_body["skip_special_tokens"] = false;
    auto written = post(server, "/v1/completions", written_body);
    REQUIRE(written);
    REQUIRE_MESSAGE(written->status == 200, written->body);
    CHECK(json::parse(written->body)["choices"][0]["text"] == "<|fim_prefix|><|fim_prefix|>");

    // top_k -1 is vLLM's "every token", as 0 is.
    json all_tokens = chat_body(2);
    all_tokens["top_k"] = -1;
    auto unlimited = post(server, "/v1/chat/completions", all_tokens);
    REQUIRE(unlimited);
    CHECK_MESSAGE(unlimited->status == 200, unlimited->body);

    // Same seed, same answer.
    json seeded = chat_body(8);
    seeded["seed"] = 42;
    seeded["temperature"] = 0.8;
    auto first = post(server, "/v1/chat/completions", seeded);
    auto second = post(server, "/v1/chat/completions", seeded);
    REQUIRE((first && second));
    CHECK(json::parse(first->body)["choices"][0]["message"]["content"] ==
          json::parse(second->body)["choices"][0]["message"]["content"]);
}

TEST_CASE("echo with logprobs scores the prompt as generation scores the same tokens") {
    ServerProcess server("score", tiny_model_dir());
    server.wait_model_ready(true);
    const std::string text = "Sluice answers questions over the documents of an enterprise.";
    auto tokenized = post(server, "/tokenize", {{"prompt", text}});
    REQUIRE(tokenized);
    REQUIRE_MESSAGE(tokenized->status == 200, tokenized->body);
    const std::vector<int> ids = json::parse(tokenized->body)["tokens"];
    REQUIRE(ids.size() >= 6);

    // max_tokens 0: the prompt only, each token after the first scored with 2 alternatives.
    const json score_body = {{"prompt", text}, {"max_tokens", 0}, {"echo", true}, {"logprobs", 2}};
    auto scored = post(server, "/v1/completions", score_body);
    REQUIRE(scored);
    REQUIRE_MESSAGE(scored->status == 200, scored->body);
    const json answer = json::parse(scored->body);
    const json& choice = answer["choices"][0];
    CHECK(choice["text"] == text);
    CHECK(choice["finish_reason"] == "length");
    CHECK(answer["usage"]["completion_tokens"] == 0);
    CHECK(answer["usage"]["prompt_tokens"] == ids.size());
    const json& logprobs = choice["logprobs"];
    REQUIRE(logprobs["tokens"].size() == ids.size());
    CHECK(logprobs["token_logprobs"][0].is_null());
    CHECK(logprobs["top_logprobs"][0].is_null());
    std::string joined;
    for (size_t i = 0; i < ids.size(); ++i) {
        CHECK(logprobs["text_offset"][i] == joined.size());
        joined += logprobs["tokens"][i].get<std::string>();
        if (i > 0) {
            CHECK(logprobs["token_logprobs"][i].get<double>() <= 0.0);
            CHECK(logprobs["top_logprobs"][i].size() <= 2);
        }
    }
    CHECK(joined == text);

    // Token k + 1 forced after the first k + 1 tokens (logit_bias moves the choice, not the
    // logprobs) has the logprob its prompt position got.
    for (const size_t k : {size_t{0}, size_t{2}, ids.size() - 2}) {
        CAPTURE(k);
        const std::vector<int> prefix(ids.begin(), ids.begin() + static_cast<long>(k) + 1);
        auto forced = post(server, "/v1/completions",
                           {{"prompt", prefix},
                            {"max_tokens", 1},
                            {"temperature", 0},
                            {"logprobs", 2},
                            {"logit_bias", {{std::to_string(ids[k + 1]), 100}}}});
        REQUIRE(forced);
        REQUIRE_MESSAGE(forced->status == 200, forced->body);
        const json forced_answer = json::parse(forced->body);
        const json& generated = forced_answer["choices"][0]["logprobs"];
        CHECK(generated["tokens"][0] == logprobs["tokens"][k + 1]);
        CHECK(generated["token_logprobs"][0].get<double>() ==
              doctest::Approx(logprobs["token_logprobs"][k + 1].get<double>()).epsilon(1e-4));
        CHECK(generated["top_logprobs"][0].size() == logprobs["top_logprobs"][k + 1].size());
    }

    // Streamed: the echo and its scores first, then the generated tokens, n = 2.
    json streamed = score_body;
    streamed["stream"] = true;
    streamed["max_tokens"] = 2;
    streamed["n"] = 2;
    auto stream = post(server, "/v1/completions", streamed);
    REQUIRE(stream);
    REQUIRE_MESSAGE(stream->status == 200, stream->body);
    const auto chunks = sse_data(stream->body);
    REQUIRE(chunks.size() >= 3);
    CHECK(chunks.back() == "[DONE]");
    for (size_t c = 0; c < 2; ++c) {
        const json first = json::parse(chunks[c])["choices"][0];
        CHECK(first["text"] == text);
        CHECK(first["logprobs"]["tokens"] == logprobs["tokens"]);
        CHECK(first["logprobs"]["token_logprobs"].size() == ids.size());
    }

    // max_tokens 0 is only for scoring; chat has no echo.
    auto no_echo = post(server, "/v1/completions", {{"prompt", text}, {"max_tokens", 0}});
    REQUIRE(no_echo);
    CHECK(no_echo->status == 400);
    CHECK(no_echo->body.find("'echo': true") != std::string::npos);
    json chat = chat_body(0);
    auto chat_zero = post(server, "/v1/chat/completions", chat);
    REQUIRE(chat_zero);
    CHECK(chat_zero->status == 400);
}

TEST_CASE("a shared system prompt is computed once") {
    ServerProcess server("prefix", tiny_model_dir());
    server.wait_model_ready(true);
    std::string system;
    for (int i = 0; i < 60; ++i) {
        system += "Policy clause " + std::to_string(i) + " applies to every refund. ";
    }
    auto ask = [&](const std::string& question) {
        json body = {{"messages", json::array({{{"role", "system"}, {"content", system}},
                                                {{"role", "user"}, {"content", question}}})},
                     {"max_tokens", 2}};
        auto result = post(server, "/v1/chat/completions", body);
        REQUIRE(result);
        REQUIRE(result->status == 200);
        return json::parse(result->body)["usage"];
    };
    auto cold = ask("What is clause 3?");
    auto warm = ask("What is clause 7?");
    CHECK(cold["prompt_tokens_details"]["cached_tokens"] == 0);
    CHECK(warm["prompt_tokens_details"]["cached_tokens"].get<int>() >=
          warm["prompt_tokens"].get<int>() - 32);
    CHECK(server.metric("sluice_engine_cached_prompt_tokens_total") > 0);
    // The cold request's prefill was a step with a prompt chunk, counted before the warm one ran.
    CHECK(server.metric("sluice_engine_mixed_steps_total") >= 1);
    CHECK(server.metric("sluice_engine_mixed_step_seconds_total") > 0);
    CHECK(server.metric("sluice_engine_longest_step_seconds") > 0);
    CHECK(server.metric("sluice_engine_decode_only_steps_total") >= 0);
    CHECK(server.metric("sluice_engine_decode_rows_total") >= 0);
}

TEST_CASE("streaming sends OpenAI chunks and ends with [DONE]") {
    ServerProcess server("stream", tiny_model_dir());
    server.wait_model_ready(true);
    json body = chat_body(5, true);
    body["n"] = 2;
    body["stream_options"] = {{"include_usage", true}};
    auto result = post(server, "/v1/chat/completions", body);
    REQUIRE(result);
    REQUIRE(result->status == 200);
    CHECK(result->get_header_value("Content-Type").rfind("text/event-stream", 0) == 0);
    auto events = sse_data(result->body);
    REQUIRE(events.size() >= 4);
    CHECK(events.back() == "[DONE]");
    std::set<int> finished;
    for (size_t i = 0; i + 2 < events.size(); ++i) {
        auto chunk = json::parse(events[i]);
        CHECK(chunk["object"] == "chat.completion.chunk");
        for (const auto& choice : chunk["choices"]) {
            if (!choice["finish_reason"].is_null()) {
                finished.insert(choice["index"].get<int>());
            }
        }
    }
    CHECK(finished == std::set<int>{0, 1});
    auto usage = json::parse(events[events.size() - 2]);
    CHECK(usage["choices"].empty());
    CHECK(usage["usage"]["completion_tokens"].get<int>() <= 10);
}

TEST_CASE("bad requests are 400s that name the problem") {
    ServerProcess server("badreq", tiny_model_dir());
    server.wait_model_ready(true);
    auto expect = [&](const std::string& path, const std::string& raw, int status,
                      const std::string& fragment) {
        auto result = server.client().Post(path, raw, "application/json");
        REQUIRE(result);
        CHECK(result->status == status);
        const std::string message = json::parse(result->body)["error"]["message"];
        CHECK_MESSAGE(message.find(fragment) != std::string::npos, message);
    };
    json unknown = chat_body(2);
    unknown["temprature"] = 0.5;
    expect("/v1/chat/completions", unknown.dump(), 400, "'temprature'");
    json bad_format = chat_body(2);
    bad_format["response_format"] = {{"type", "xml"}};
    expect("/v1/chat/completions", bad_format.dump(), 400, "'response_format'");
    json hot = chat_body(2);
    hot["temperature"] = 3;
    expect("/v1/chat/completions", hot.dump(), 400, "'temperature'");
    json top_k = chat_body(2);
    top_k["top_k"] = -2;
    expect("/v1/chat/completions", top_k.dump(), 400, "'top_k' must be an integer in [-1, ");
    json other_model = chat_body(2);
    other_model["model"] = "gpt-4o";
    expect("/v1/chat/completions", other_model.dump(), 404, "gpt-4o");
    expect("/v1/chat/completions",
           "{\"messages\": [{\"role\": \"user\", \"content\": \"bad \xff byte\"}]}", 400,
           "at byte");
    json long_ask = chat_body(100000);
    expect("/v1/chat/completions", long_ask.dump(), 400, "maximum context length");
    expect("/detokenize", R"({"tokens": [100300]})", 400, "100300");
    expect("/v1/completions", R"({"prompt": ["a", ""], "max_tokens": 1})", 400,
           "prompt[1]: the prompt has no tokens");
    expect("/tokenize", R"({"prompt": 7})", 400, "'prompt' must be a string");
    expect("/tokenize", R"({"prompt": "a", "messages": []})", 400, "either 'prompt'");
    expect("/tokenize", R"({"messages": [{"role": "pilot", "content": "hi"}]})", 400, "pilot");
    expect("/tokenize",
           R"({"prompt": "a", "tools": [{"type": "function", "function": {"name": "f"}}]})", 400,
           "not with 'prompt'");
    json lone_parallel = chat_body(2);
    lone_parallel["parallel_tool_calls"] = false;
    expect("/v1/chat/completions", lone_parallel.dump(), 400,
           "'parallel_tool_calls' is only allowed when 'tools' are given");
    // The good requests of the same routes, after the bad ones: the server still answers.
    auto templated =
        post(server, "/tokenize",
             {{"messages", json::array({{{"role", "user"}, {"content", "Hello there"}}})}});
    REQUIRE(templated);
    REQUIRE_MESSAGE(templated->status == 200, templated->body);
    const json rendered = json::parse(templated->body);
    CHECK(rendered["count"].get<size_t>() == rendered["tokens"].size());
    CHECK(rendered["count"].get<int>() > 3);  // the chat template's turns around the text
    auto round_trip = post(
        server, "/detokenize",
        {{"tokens",
          json::parse(post(server, "/tokenize", {{"prompt", "Hello, tokens!"}})->body)["tokens"]}});
    REQUIRE(round_trip);
    CHECK(json::parse(round_trip->body)["prompt"] == "Hello, tokens!");
    json bias = chat_body(2);
    bias["logit_bias"] = {{"abc", 1}};
    expect("/v1/chat/completions", bias.dump(), 400, "'logit_bias' keys must be token ids");
    bias["logit_bias"] = {{"17", 101}};
    expect("/v1/chat/completions", bias.dump(), 400, "'logit_bias[\"17\"]'");
    bias["logit_bias"] = {{"7", 1}, {"007", 2}};
    expect("/v1/chat/completions", bias.dump(), 400, "token 7 is named twice");
    bias["logit_bias"] = {{"200000", -100}};
    expect("/v1/chat/completions", bias.dump(), 400, "token id 200000 outside [0, 100352)");
}

TEST_CASE("a full queue answers 429 with Retry-After and loses no accepted request") {
    ServerProcess server("overload", tiny_model_dir(),
                         {{"SLUICE_MODEL_MAX_RUNNING", "1"},
                          {"SLUICE_MODEL_MAX_QUEUED_REQUESTS", "1"}});
    server.wait_model_ready(true);
    RawClient running(server.port, server.admin_token);
    running.post("/v1/chat/completions", chat_body(3000, true));
    auto wait_for = [&](const std::string& name, double value) {
        for (int i = 0; i < 400 && server.metric(name) != value; ++i) {
            std::this_thread::sleep_for(25ms);
        }
        REQUIRE(server.metric(name) == value);
    };
    wait_for("sluice_engine_sequences_running", 1);  // it holds the one running slot
    RawClient queued(server.port, server.admin_token);
    queued.post("/v1/chat/completions", chat_body(3, true));
    wait_for("sluice_engine_requests_queued", 1);  // accepted: it waits in the queue

    auto refused = post(server, "/v1/chat/completions", chat_body(3));
    REQUIRE(refused);
    CHECK(refused->status == 429);
    CHECK(refused->get_header_value("Retry-After") == "1");
    CHECK(json::parse(refused->body)["error"]["type"] == "rate_limit_error");

    // The long one's client leaves; the queued request is admitted and finishes.
    running.close();
    CHECK(queued.read_until("data: [DONE]").find("data: [DONE]") != std::string::npos);
    CHECK(server.metric("sluice_engine_requests_rejected_total") == 1);
}

TEST_CASE("a full queue answers 429 while open streams hold every configured HTTP thread") {
    // Two connection threads configured, both held by streams (one running, one queued). With a
    // fixed pool the third request would wait for a stream to end, by which time the queue has
    // room and it is accepted; it must instead get a thread at once and be refused while both
    // streams are still open.
    ServerProcess server("overload-streams", tiny_model_dir(),
                         {{"SLUICE_SERVER_THREADS", "2"},
                          {"SLUICE_MODEL_MAX_RUNNING", "1"},
                          {"SLUICE_MODEL_MAX_QUEUED_REQUESTS", "1"}});
    server.wait_model_ready(true);
    RawClient running(server.port, server.admin_token);
    running.post("/v1/chat/completions", chat_body(3000, true));
    running.read_until("\"content\"");  // streaming: it holds a connection thread
    RawClient queued(server.port, server.admin_token);
    queued.post("/v1/chat/completions", chat_body(3, true));
    for (int i = 0; i < 400 && server.metric("sluice_engine_requests_queued") != 1; ++i) {
        std::this_thread::sleep_for(25ms);
    }
    REQUIRE(server.metric("sluice_engine_requests_queued") == 1);

    // The metrics reads above already needed a third thread. The refusal needs one more, and
    // is a 429 only if it comes while the queued request still waits, i.e. before the running
    // stream ends (after that the queue has room and it would be accepted).
    auto refused = post(server, "/v1/chat/completions", chat_body(3));
    REQUIRE(refused);
    CHECK(refused->status == 429);
    CHECK(refused->get_header_value("Retry-After") == "1");
}

namespace {

// A client that sends a long request and leaves once it runs: its request is cancelled and its
// KV blocks are freed, streamed or not.
void check_abandoned_request_is_cancelled(const std::string& name, bool stream) {
    ServerProcess server(name, tiny_model_dir());
    server.wait_model_ready(true);
    {
        RawClient client(server.port, server.admin_token);
        client.post("/v1/chat/completions", chat_body(3000, stream));
        if (stream) {
            client.read_until("\"content\"");
        }
        for (int i = 0; i < 400 && server.metric("sluice_engine_sequences_running") != 1; ++i) {
            std::this_thread::sleep_for(25ms);
        }
        REQUIRE(server.metric("sluice_engine_sequences_running") == 1);
        CHECK(server.metric("sluice_kv_blocks_in_use") > 0);
    }  // closed while the answer is being generated
    double in_use = -1;
    for (int i = 0; i < 400 && in_use != 0; ++i) {
        std::this_thread::sleep_for(25ms);
        in_use = server.metric("sluice_kv_blocks_in_use");
    }
    CHECK(in_use == 0);
    CHECK(server.metric("sluice_engine_sequences_running") == 0);
}

}  // namespace

TEST_CASE("a client that disconnects mid-stream has its request cancelled and blocks freed") {
    check_abandoned_request_is_cancelled("abort", true);
}

TEST_CASE("a client that hangs up before a whole completion has its request cancelled") {
    check_abandoned_request_is_cancelled("abort-whole", false);
}

TEST_CASE("embeddings of more inputs than the queue holds are answered whole") {
    ServerProcess server("embed-waves", tiny_model_dir(),
                         {{"SLUICE_MODEL_MAX_QUEUED_REQUESTS", "4"}});
    server.wait_model_ready(true);
    json inputs = json::array();
    for (int i = 0; i < 30; ++i) {
        inputs.push_back("input number " + std::to_string(i));
    }
    auto embedded = post(server, "/v1/embeddings", json{{"input", inputs}});
    REQUIRE(embedded);
    REQUIRE(embedded->status == 200);
    const json data = json::parse(embedded->body)["data"];
    REQUIRE(data.size() == 30);
    for (size_t i = 0; i < data.size(); ++i) {
        CHECK(data[i]["index"] == i);
    }
    // The same text alone gives the same vector: the waves keep each input in its place.
    auto alone = post(server, "/v1/embeddings", json{{"input", "input number 17"}});
    REQUIRE(alone);
    REQUIRE(alone->status == 200);
    const auto single = json::parse(alone->body)["data"][0]["embedding"].get<std::vector<float>>();
    const auto batched = data[17]["embedding"].get<std::vector<float>>();
    REQUIRE(single.size() == batched.size());
    double dot = 0;
    for (size_t i = 0; i < single.size(); ++i) {
        dot += double(single[i]) * batched[i];
    }
    CHECK(dot > 0.999);

    // Legacy completions queue every prompt at once: more than the queue is a 400.
    json prompts = json::array({"a", "b", "c", "d", "e"});
    auto refused = post(server, "/v1/completions", json{{"prompt", prompts}, {"max_tokens", 1}});
    REQUIRE(refused);
    CHECK(refused->status == 400);
    CHECK(refused->body.find("at most 4 prompts") != std::string::npos);
}
