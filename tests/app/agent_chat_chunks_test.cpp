// An agent run's events as OpenAI chat chunks: the answer's tokens as they come, tool steps left
// out, a budget stop's message, the finish reason, usage last when asked for.

#include "app/agent_chat_chunks.h"

#include <doctest/doctest.h>

namespace sluice::app {
namespace {

using nlohmann::json;

agents::AgentEvent event(std::string type, json data) { return {std::move(type), std::move(data)}; }

json final_event(const std::string& stop, const std::string& answer) {
    return {{"answer", answer},
            {"stop_reason", stop},
            {"steps", 2},
            {"tool_calls", 1},
            {"usage", {{"prompt_tokens", 40}, {"completion_tokens", 7}}},
            {"trace_id", std::string(32, 'a')}};
}

// The content the chunks carry, joined.
std::string content_of(const std::vector<json>& chunks) {
    std::string out;
    for (const json& chunk : chunks) {
        for (const json& choice : chunk["choices"]) {
            if (choice["delta"].contains("content")) {
                out += choice["delta"]["content"].get<std::string>();
            }
        }
    }
    return out;
}

}  // namespace

TEST_CASE("agent chat chunks: tokens stream as content; tool steps stay out; usage last") {
    AgentChatChunks chunks("agents/main.support.helper", true);
    const std::string trace_id(32, 'a');
    std::vector<json> all;
    auto feed = [&](agents::AgentEvent e) {
        for (json& c : chunks.on_event(e)) {
            CHECK(c["object"] == "chat.completion.chunk");
            CHECK(c["model"] == "agents/main.support.helper");
            CHECK(c["trace_id"] == trace_id);
            all.push_back(std::move(c));
        }
    };
    feed(event("trace", {{"trace_id", trace_id}}));
    REQUIRE(all.size() == 1);
    CHECK(all[0]["choices"][0]["delta"] == json{{"role", "assistant"}, {"content", ""}});
    CHECK(all[0]["usage"].is_null());
    feed(event("step", {{"step", 1}, {"kind", "model"}}));
    feed(event("tool_call", {{"id", "call_1"}, {"name", "sql_query"}, {"arguments", json::object()}}));
    feed(event("tool_result", {{"id", "call_1"}, {"name", "sql_query"}, {"ok", true}}));
    CHECK(all.size() == 1);
    feed(event("step", {{"step", 2}, {"kind", "model"}}));
    feed(event("tokens", {{"text", "There are"}}));
    feed(event("tokens", {{"text", ""}}));
    feed(event("tokens", {{"text", " 21."}}));
    REQUIRE(all.size() == 3);
    CHECK(content_of(all) == "There are 21.");
    feed(event("final", final_event("answer", "There are 21.")));
    REQUIRE(all.size() == 5);
    CHECK(content_of(all) == "There are 21.");
    for (const json& c : all) {
        CHECK(c["id"] == all[0]["id"]);
    }
    const json& finish = all[3];
    CHECK(finish["choices"][0]["finish_reason"] == "stop");
    CHECK(finish["choices"][0]["delta"] == json::object());
    CHECK(finish["usage"].is_null());
    const json& usage = all[4];
    CHECK(usage["choices"] == json::array());
    CHECK(usage["usage"] ==
          json{{"prompt_tokens", 40}, {"completion_tokens", 7}, {"total_tokens", 47}});
}

TEST_CASE("agent chat chunks: turns apart by a blank line; a budget stop's message ends it") {
    AgentChatChunks chunks("agents/a.b.c", false);
    std::vector<json> all;
    for (const auto& e : {event("trace", {{"trace_id", std::string(32, 'b')}}),
                          event("step", {{"step", 1}}), event("tokens", {{"text", "Looking."}}),
                          event("tool_call", {{"name", "x"}}), event("step", {{"step", 2}}),
                          event("tokens", {{"text", "Still looking."}}),
                          event("final", final_event("step_budget", "Stopped without an answer: "
                                                                    "the step budget of 2 model "
                                                                    "turns is spent."))}) {
        for (json& c : chunks.on_event(e)) {
            CHECK_FALSE(c.contains("usage"));
            all.push_back(std::move(c));
        }
    }
    CHECK(content_of(all) ==
          "Looking.\n\nStill looking.\n\nStopped without an answer: the step budget of 2 model "
          "turns is spent.");
    CHECK(all.back()["choices"][0]["finish_reason"] == "length");
    CHECK(all.back()["trace_id"] == std::string(32, 'b'));
}

}  // namespace sluice::app
