#pragma once
// One OpenAI-style generation in flight: the engine requests behind a chat or legacy completion
// (one per prompt, each with n choices) and their translation into OpenAI's response objects,
// whole (collect() then response()) or as server-sent events (pump() from httplib's chunked
// content provider, ending with `data: [DONE]`).
//
// Choices are numbered prompt-major: choice prompt_index * n + j. With tools in use, streamed
// text is held back from the first `<tool_call>` marker on; at the end the held text becomes
// tool_calls (finish_reason "tool_calls") or, when it does not parse, content.
//
// Thread safety: owned by one thread at a time (the HTTP worker serving the request).

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "common/result.h"
#include "inference/chat_template.h"
#include "inference/engine.h"
#include "inference/stream_decoder.h"

namespace sluice::app {

struct GenerationSpec {
    bool chat = true;
    std::string request_id;  // for errors reported inside a stream
    std::string model;
    int32_t n = 1;
    bool logprobs = false;
    int32_t top_logprobs = 0;
    bool include_usage = false;
    bool use_tools = false;
    bool parallel_tool_calls = true;
    std::vector<inference::ToolDefinition> tools;
    std::vector<std::string> echo;  // per prompt: text to put before each choice (legacy echo)
};

class GenerationJob {
    struct Private {};  // keeps construction to start()

public:
    GenerationJob(Private, std::shared_ptr<inference::Engine> engine, GenerationSpec spec);
    // Submits one engine request per prompt. Errors: those of Engine::submit (the requests
    // already submitted are cancelled).
    static Result<std::unique_ptr<GenerationJob>> start(
        std::shared_ptr<inference::Engine> engine, GenerationSpec spec,
        std::vector<inference::EngineRequest> requests);
    ~GenerationJob();

    // Waits for every request to finish. The first failure is returned.
    Status collect();
    // The whole response object (chat.completion or text_completion). After collect().
    nlohmann::json response() const;

    // Streams what is ready, waiting up to `wait` for something new. Returns false when the
    // client is gone (the requests are cancelled then); calls sink.done() after [DONE].
    bool pump(httplib::DataSink& sink, std::chrono::milliseconds wait);
    bool finished() const { return done_; }

private:
    struct Choice {
        std::string text;
        std::vector<inference::SampledToken> tokens;
        std::optional<inference::FinishReason> finish;
        bool role_sent = false;
        // Streaming with tools: text from the first <tool_call> on waits here.
        std::optional<inference::StopMatcher> tool_guard;
        std::string held;
    };

    // Moves pending events into choices; appends SSE chunks to `out` when streaming.
    void absorb(size_t prompt, inference::StreamEvent event, std::string* out);
    nlohmann::json usage_json() const;
    nlohmann::json chunk(nlohmann::json choices) const;
    nlohmann::json logprobs_json(const std::vector<inference::SampledToken>& tokens,
                                 size_t text_offset) const;
    std::string finish_name(const Choice& choice, bool has_tool_calls) const;
    void finish_stream_choice(size_t index, std::string* out);

    std::shared_ptr<inference::Engine> engine_;
    GenerationSpec spec_;
    std::string id_;
    int64_t created_ = 0;
    std::vector<inference::RequestHandle> handles_;
    std::vector<bool> handle_done_;
    std::vector<Choice> choices_;
    Status status_;
    inference::Usage usage_;
    bool started_stream_ = false;
    bool done_ = false;
    std::chrono::steady_clock::time_point last_write_;
};

// "stop", "length" (and "tool_calls" chosen by the job) for an engine finish reason.
std::string openai_finish_reason(inference::FinishReason reason);

}  // namespace sluice::app
