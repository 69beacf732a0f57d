#include "app/agent_chat_chunks.h"

#include <chrono>

#include "app/tool_calls.h"

namespace sluice::app {

using nlohmann::json;

AgentChatChunks::AgentChatChunks(std::string model, bool include_usage)
    : id_(fresh_id("chatcmpl-")),
      created_(std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count()),
      model_(std::move(model)),
      include_usage_(include_usage) {}

json AgentChatChunks::chunk(json choices) const {
    json value = {{"id", id_},
                  {"object", "chat.completion.chunk"},
                  {"created", created_},
                  {"model", model_},
                  {"system_fingerprint", nullptr},
                  {"choices", std::move(choices)}};
    if (include_usage_) {
        value["usage"] = nullptr;  // as OpenAI: null on all but the last chunk
    }
    if (!trace_id_.empty()) {
        value["trace_id"] = trace_id_;
    }
    return value;
}

json AgentChatChunks::opening() const {
    return chunk(json::array({{{"index", 0},
                               {"delta", {{"role", "assistant"}, {"content", ""}}},
                               {"logprobs", nullptr},
                               {"finish_reason", nullptr}}}));
}

json AgentChatChunks::content(std::string text) {
    if (said_ && new_turn_) {
        text = "\n\n" + text;
    }
    said_ = true;
    new_turn_ = false;
    return chunk(json::array({{{"index", 0},
                               {"delta", {{"content", std::move(text)}}},
                               {"logprobs", nullptr},
                               {"finish_reason", nullptr}}}));
}

std::vector<json> AgentChatChunks::on_event(const agents::AgentEvent& event) {
    std::vector<json> out;
    if (event.type == "trace") {
        trace_id_ = event.data.value("trace_id", "");
        out.push_back(opening());
    } else if (event.type == "step") {
        new_turn_ = true;
    } else if (event.type == "tokens") {
        std::string text = event.data.value("text", "");
        if (!text.empty()) {
            out.push_back(content(std::move(text)));
        }
    } else if (event.type == "final") {
        if (trace_id_.empty()) {
            trace_id_ = event.data.value("trace_id", "");
        }
        const std::string stop_reason = event.data.value("stop_reason", "");
        // An answer cut at the request's max_tokens was streamed as far as it went.
        const bool answered = stop_reason == "answer";
        if (!answered && stop_reason != "max_tokens") {
            // The stop message was never streamed: it is the run's last word.
            new_turn_ = true;
            out.push_back(content(event.data.value("answer", "")));
        }
        json last = chunk(json::array({{{"index", 0},
                                        {"delta", json::object()},
                                        {"logprobs", nullptr},
                                        {"finish_reason", answered ? "stop" : "length"}}}));
        out.push_back(std::move(last));
        if (include_usage_) {
            json usage = chunk(json::array());
            std::int64_t prompt = 0;
            std::int64_t completion = 0;
            if (event.data.contains("usage")) {
                prompt = event.data["usage"].value("prompt_tokens", std::int64_t{0});
                completion = event.data["usage"].value("completion_tokens", std::int64_t{0});
            }
            usage["usage"] = {{"prompt_tokens", prompt},
                              {"completion_tokens", completion},
                              {"total_tokens", prompt + completion}};
            out.push_back(std::move(usage));
        }
    }
    return out;
}

}  // namespace sluice::app
