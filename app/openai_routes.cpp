#include "app/openai_routes.h"

#include <chrono>

#include "app/connection_probe.h"
#include "app/http_errors.h"
#include "app/openai_generation.h"
#include "app/openai_request.h"
#include "app/openai_route_support.h"
#include "app/structured_output.h"
#include "common/check.h"
#include "common/log.h"

namespace sluice::app {
namespace {

using nlohmann::json;

// How long one call of the chunked content provider waits for tokens before returning to
// httplib, which then checks the socket and calls again.
constexpr auto kStreamPoll = std::chrono::milliseconds(50);

void send_json(httplib::Response& res, const json& body) {
    res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace),
                    "application/json");
}

Result<inference::EngineRequest> engine_request(const GenerationParams& params,
                                                std::vector<int32_t> prompt,
                                                const inference::Engine& engine,
                                                const ModelSettings& settings) {
    const int64_t context = engine.model_config().max_seq_len;
    const auto n_prompt = static_cast<int64_t>(prompt.size());
    // A prompt only scored (max_tokens 0) may fill the context; others leave room for a token.
    const int64_t room = params.max_tokens == 0 ? 0 : 1;
    if (n_prompt + room > context) {
        return invalid_argument("this model's maximum context length is " +
                                std::to_string(context) + " tokens; the prompt has " +
                                std::to_string(n_prompt));
    }
    if (params.max_tokens && n_prompt + *params.max_tokens > context) {
        return invalid_argument("this model's maximum context length is " +
                                std::to_string(context) + " tokens; the prompt has " +
                                std::to_string(n_prompt) + " and max_tokens asks for " +
                                std::to_string(*params.max_tokens));
    }
    inference::EngineRequest request;
    request.prompt = std::move(prompt);
    request.sampling = params.sampling;
    request.max_tokens = params.max_tokens.value_or(static_cast<int32_t>(context - n_prompt));
    request.n = params.n;
    request.stop_tokens = inference::ChatTemplate::stop_ids();
    request.stop_strings = params.stop;
    request.skip_special_tokens = params.skip_special_tokens;
    request.timeout_s = settings.request_timeout_s;
    return request;
}

// What the engine requests may spend at most: every prompt token plus max_tokens for each of
// the n choices. Reserved before the call, so parallel calls cannot pass a budget together.
std::int64_t estimated_tokens(const std::vector<inference::EngineRequest>& requests) {
    std::int64_t total = 0;
    for (const auto& request : requests) {
        total += static_cast<std::int64_t>(request.prompt.size()) +
                 static_cast<std::int64_t>(request.max_tokens) * request.n;
    }
    return total;
}

// Reserves the call's budget and starts the job. On failure the response is written and
// nullptr returned.
std::unique_ptr<GenerationJob> start_job(std::shared_ptr<inference::Engine> engine,
                                         GenerationSpec spec,
                                         std::vector<inference::EngineRequest> requests,
                                         std::unique_ptr<ModelCall> call,
                                         const OpenAiOptions& options, const RequestInfo& info,
                                         httplib::Response& res) {
    if (call != nullptr) {
        std::optional<std::int64_t> retry_after;
        if (Status reserved = call->reserve(estimated_tokens(requests), &retry_after);
            !reserved.ok()) {
            send_model_error(res, reserved, info, retry_after);
            return nullptr;
        }
    }
    auto job = GenerationJob::start(std::move(engine), std::move(spec), std::move(requests),
                                    std::move(call), options.streams);
    if (!job.ok()) {
        // Dropping the call (inside start) settles its reservation as cancelled.
        send_model_error(res, job.status(), info);
        return nullptr;
    }
    return std::move(*job);
}

// Runs a job to the end (JSON answer) or hands it to httplib as an SSE stream.
void respond(std::unique_ptr<GenerationJob> job, bool stream, const RequestInfo& info,
             const httplib::Request& req, httplib::Response& res) {
    if (!stream) {
        const ConnectionProbe connection(req);
        Status status = job->collect([&connection] { return connection.client_gone(); });
        if (!status.ok()) {
            send_model_error(res, status, info);
            return;
        }
        send_json(res, job->response());
        return;
    }
    // httplib copies the provider, so the job is shared; dropping the last copy (the response is
    // done or the connection is gone) cancels whatever is unfinished and settles the call.
    std::shared_ptr<GenerationJob> shared = std::move(job);
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [shared](size_t, httplib::DataSink& sink) { return shared->pump(sink, kStreamPoll); });
}

void chat_completions(ModelHost& host, const OpenAiOptions& options, const RequestInfo& info,
                      const httplib::Request& req, httplib::Response& res) {
    auto taken = take_model_request<ChatRequest>(
        host, info, req, res, parse_chat_request,
        [](const ChatRequest& chat) { return chat.params.model; });
    if (!taken) {
        return;
    }
    ChatRequest& chat = taken->body;
    const auto& engine = taken->engine;
    auto call = open_model_call(options, host, info, res, chat.params.logprobs);
    if (!call.ok()) {
        return;
    }
    if (*call != nullptr) {
        // The endpoint's input policy over every message's text.
        for (size_t i = 0; i < chat.messages.size(); ++i) {
            auto guarded = (*call)->guard_input(chat.messages[i].content);
            if (!guarded.ok()) {
                send_model_error(res, guarded.status().with_context(
                                          "messages[" + std::to_string(i) + "]"),
                                 info);
                return;
            }
            chat.messages[i].content = std::move(*guarded);
        }
    }
    std::span<const inference::ToolDefinition> tools;
    if (chat.use_tools) {
        tools = chat.tools;
    }
    auto prompt = host.chat_template().encode(*engine->tokenizer(), chat.messages, tools);
    if (!prompt.ok()) {
        send_model_error(res, prompt.status(), info);
        return;
    }
    auto request = engine_request(chat.params, std::move(*prompt), *engine, host.settings());
    if (!request.ok()) {
        send_model_error(res, request.status(), info);
        return;
    }
    auto grammars = host.grammars();
    SLUICE_CHECK(grammars != nullptr, "a loaded model with a tokenizer has a grammar cache");
    auto constraint = chat_constraint(chat, req.body, *grammars);
    if (!constraint.ok()) {
        send_model_error(res, constraint.status(), info);
        return;
    }
    // The engine gives each of the n choices its own copy.
    request->constraint = std::move(*constraint);
    GenerationSpec spec;
    spec.chat = true;
    spec.stream = chat.params.stream;
    spec.request_id = info.request_id;
    spec.model = host.model_id();
    spec.n = chat.params.n;
    spec.logprobs = chat.params.logprobs;
    spec.top_logprobs = chat.params.top_logprobs;
    spec.include_usage = chat.params.include_usage;
    spec.use_tools = chat.use_tools;
    spec.parallel_tool_calls = chat.parallel_tool_calls;
    spec.tools = chat.tools;
    std::vector<inference::EngineRequest> requests;
    requests.push_back(std::move(*request));
    auto job = start_job(engine, std::move(spec), std::move(requests), std::move(*call), options,
                         info, res);
    if (!job) {
        return;
    }
    log::debug("openai", "chat completion",
               {{"request_id", info.request_id}, {"stream", chat.params.stream ? 1 : 0}});
    respond(std::move(job), chat.params.stream, info, req, res);
}

void completions(ModelHost& host, const OpenAiOptions& options, const RequestInfo& info,
                 const httplib::Request& req, httplib::Response& res) {
    auto taken = take_model_request<CompletionRequest>(
        host, info, req, res, parse_completion_request,
        [](const CompletionRequest& completion) { return completion.params.model; });
    if (!taken) {
        return;
    }
    CompletionRequest& completion = taken->body;
    const auto& engine = taken->engine;
    auto call = open_model_call(options, host, info, res, completion.params.logprobs);
    if (!call.ok()) {
        return;
    }
    const inference::Tokenizer& tokenizer = *engine->tokenizer();
    GenerationSpec spec;
    spec.chat = false;
    spec.stream = completion.params.stream;
    spec.request_id = info.request_id;
    spec.model = host.model_id();
    spec.n = completion.params.n;
    spec.logprobs = completion.params.logprobs;
    spec.top_logprobs = completion.params.top_logprobs;
    spec.include_usage = completion.params.include_usage;
    spec.echo_logprobs = completion.echo && completion.params.logprobs;
    std::vector<inference::EngineRequest> requests;
    for (size_t i = 0; i < completion.prompts.size(); ++i) {
        const std::string where = "prompt[" + std::to_string(i) + "]";
        const PromptInput& input = completion.prompts[i];
        std::vector<int32_t> ids;
        std::string text;
        if (const auto* prompt_text = std::get_if<std::string>(&input)) {
            text = *prompt_text;
        } else {
            ids = std::get<std::vector<int32_t>>(input);
            auto decoded = tokenizer.decode_text(ids);
            if (!decoded.ok()) {
                send_model_error(res, decoded.status().with_context(where), info);
                return;
            }
            text = std::move(*decoded);
        }
        if (*call != nullptr) {
            auto guarded = (*call)->guard_input(text);
            if (!guarded.ok()) {
                send_model_error(res, guarded.status().with_context(where), info);
                return;
            }
            if (*guarded != text) {
                text = std::move(*guarded);
                ids.clear();  // the masked text is what the model reads
            }
        }
        if (ids.empty()) {
            auto encoded = tokenizer.encode(text);
            if (!encoded.ok()) {
                send_model_error(res, encoded.status().with_context(where), info);
                return;
            }
            ids = std::move(*encoded);
        }
        if (ids.empty()) {
            // The engine would refuse it too, without saying which prompt of the list it was.
            send_model_error(res, invalid_argument("the prompt has no tokens").with_context(where),
                             info);
            return;
        }
        spec.echo.push_back(completion.echo ? text : std::string());
        if (spec.echo_logprobs) {
            spec.prompt_ids.push_back(ids);
        }
        auto request = engine_request(completion.params, std::move(ids), *engine, host.settings());
        if (!request.ok()) {
            send_model_error(res, request.status().with_context(where), info);
            return;
        }
        // Echo with logprobs scores the prompt; max_tokens 0 runs the prompt only, which the
        // engine takes as scoring it.
        if (spec.echo_logprobs || request->max_tokens == 0) {
            request->prompt_logprobs = spec.echo_logprobs ? completion.params.top_logprobs : 0;
        }
        requests.push_back(std::move(*request));
    }
    auto job = start_job(engine, std::move(spec), std::move(requests), std::move(*call), options,
                         info, res);
    if (!job) {
        return;
    }
    respond(std::move(job), completion.params.stream, info, req, res);
}

}  // namespace

void add_openai_routes(HttpServer& server, ModelHost& host, OpenAiOptions options,
                       ChatDelegate delegate) {
    server.route("POST", "/v1/chat/completions",
                 [&host, options, delegate](const RequestInfo& info, const httplib::Request& req,
                                            httplib::Response& res) {
                     if (delegate) {
                         Result<json> body = parse_json_body(req);
                         if (body.ok() && body->is_object() && (*body)["model"].is_string() &&
                             delegate(info, req, *body, res)) {
                             return;
                         }
                     }
                     chat_completions(host, options, info, req, res);
                 });
    server.route("POST", "/v1/completions",
                 [&host, options](const RequestInfo& info, const httplib::Request& req,
                                  httplib::Response& res) {
                     completions(host, options, info, req, res);
                 });
    add_embedding_and_token_routes(server, host, options);
}

}  // namespace sluice::app
