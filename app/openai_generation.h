#pragma once
// One OpenAI-style generation in flight: the engine requests behind a chat or legacy completion
// (one per prompt, each with n choices) and their translation into OpenAI's response objects,
// whole (collect() then response()) or as server-sent events (pump() from httplib's chunked
// content provider, ending with `data: [DONE]`).
//
// Choices are numbered prompt-major: choice prompt_index * n + j. With tools in use, a streamed
// tool call arrives as OpenAI sends it (tool_call_stream.h): a first delta with id, type and
// function name, then the arguments in fragments as they are generated.
//
// Governance (model_call.h), when the job has a ModelCall: the answer passes the endpoint's
// output guardrail — whole when not streamed (a block answers 403), chunk by chunk when
// streamed through an OutputGuard per choice, which holds back only the tail that could still
// become personal data (a block ends the stream with an error event and `data: [DONE]`, nothing
// of the match having been sent). The reservation is settled with the real tokens once the
// requests end: at the end of collect() or of the stream, and, when the client goes away, when
// the job is dropped (after cancelling its requests and reading their final usage).
//
// Shutdown: with a StreamRegistry, a stream counts itself in it, and once the registry says
// streams are ending it cancels its requests and ends cleanly: each unfinished choice gets
// finish_reason "length", then the usage chunk if asked for, then `data: [DONE]`.
//
// Thread safety: owned by one thread at a time (the HTTP worker serving the request).

#include <httplib.h>

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "app/model_call.h"
#include "app/stream_registry.h"
#include "app/tool_call_stream.h"
#include "common/result.h"
#include "governance/guardrails.h"
#include "inference/chat_template.h"
#include "inference/engine.h"
#include "inference/stream_decoder.h"

namespace sluice::app {

struct GenerationSpec {
    bool chat = true;
    bool stream = false;
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
    // Legacy echo with logprobs: the prompts' tokens come first in each choice's logprobs, scored
    // by the engine (EngineRequest::prompt_logprobs); `prompt_ids` holds each prompt's ids.
    bool echo_logprobs = false;
    std::vector<std::vector<int32_t>> prompt_ids;
};

class GenerationJob {
    struct Private {};  // keeps construction to start()

public:
    GenerationJob(Private, std::shared_ptr<inference::Engine> engine, GenerationSpec spec);
    // Submits one engine request per prompt. `call` (may be null) governs the answer and is
    // settled by the job; `streams` (may be null) is told about a streamed answer. Errors:
    // those of Engine::submit (the requests already submitted are cancelled) and of opening
    // the output guards.
    static Result<std::unique_ptr<GenerationJob>> start(
        std::shared_ptr<inference::Engine> engine, GenerationSpec spec,
        std::vector<inference::EngineRequest> requests, std::unique_ptr<ModelCall> call = nullptr,
        StreamRegistry* streams = nullptr);
    ~GenerationJob();

    // Waits for every request to finish, applies the output guardrail and settles the call.
    // The first failure is returned. `client_gone` (may be empty), asked about twice a second,
    // says that nobody waits for the answer any more: the requests are then cancelled and
    // collect() returns kCancelled once they end.
    Status collect(const std::function<bool()>& client_gone = {});
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
        // The answer as the client gets it (echo included) when an output guardrail applies
        // to a whole answer.
        std::optional<std::string> shown;
        // Streaming: the output guardrail, and tool calls as they are generated.
        std::optional<governance::OutputGuard> guard;
        std::optional<ToolCallStreamer> tool_stream;
        bool stream_finished = false;
    };

    // Moves pending events into choices; appends SSE chunks to `out` when streaming.
    void absorb(size_t prompt, inference::StreamEvent event, std::string* out);
    nlohmann::json usage_json() const;
    nlohmann::json chunk(nlohmann::json choices) const;
    nlohmann::json logprobs_json(const std::vector<inference::SampledToken>& tokens,
                                 size_t text_offset) const;
    // Legacy logprobs of prompt `prompt`'s tokens (echo): the first token has no score (null).
    nlohmann::json prompt_logprobs_json(size_t prompt) const;
    // A choice's legacy logprobs: the prompt's (echo with logprobs), then its own tokens'.
    nlohmann::json choice_logprobs_json(size_t index) const;
    std::string token_text(int32_t id) const;
    // Keeps prompt `prompt`'s scores once the engine has them (before its first event).
    void take_prompt_scores(size_t prompt);
    // Streams the echoed prompt before the choices of prompt `prompt` (once).
    void emit_echo(size_t prompt, std::string* out);
    std::string finish_name(const Choice& choice, bool has_tool_calls) const;
    void finish_stream_choice(size_t index, std::string* out);
    // Streams text of a choice (after its guard): content and tool-call deltas.
    void emit_text(size_t index, std::string text, const std::vector<inference::SampledToken>& tokens,
                   size_t text_offset, std::string* out);
    // Ends a stream early (a blocked answer): the requests are cancelled, `status` is reported.
    void fail_stream(Status status);
    void add_usage(size_t handle);
    // Settles the call (once) with the usage so far; the result joins status_.
    void settle(const std::string& outcome);

    std::shared_ptr<inference::Engine> engine_;
    GenerationSpec spec_;
    std::string id_;
    int64_t created_ = 0;
    std::vector<inference::RequestHandle> handles_;
    std::vector<bool> handle_done_;
    std::vector<Choice> choices_;
    std::vector<std::optional<std::vector<inference::SampledToken>>> prompt_scores_;  // per prompt
    std::vector<bool> echo_sent_;                                                     // per prompt
    Status status_;
    inference::Usage usage_;
    bool started_stream_ = false;
    bool done_ = false;
    bool failed_ = false;   // a stream ended early by fail_stream()
    bool ending_ = false;   // the server is shutting down: unfinished choices end as "length"
    std::unique_ptr<ModelCall> call_;
    StreamRegistry::Ticket stream_ticket_;
    std::chrono::steady_clock::time_point last_write_;
};

// "stop", "length" (and "tool_calls" chosen by the job) for an engine finish reason.
std::string openai_finish_reason(inference::FinishReason reason);

}  // namespace sluice::app
