#include "app/openai_routes.h"

#include <chrono>

#include "app/http_errors.h"
#include "app/openai_generation.h"
#include "app/openai_request.h"
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

// Engine errors: a full queue asks the client to come back shortly.
void send_engine_error(httplib::Response& res, const Status& status, const RequestInfo& info) {
    if (status.code() == StatusCode::kResourceExhausted) {
        res.set_header("Retry-After", "1");
    }
    send_status(res, status, info.request_id);
}

// The engine, or an answer saying why there is none.
std::shared_ptr<inference::Engine> require_engine(ModelHost& host, const RequestInfo& info,
                                                  httplib::Response& res) {
    auto engine = host.engine();
    if (!engine) {
        send_status(res, host.unavailable(), info.request_id);
    }
    return engine;
}

bool check_model(ModelHost& host, const std::string& model, const RequestInfo& info,
                 httplib::Response& res) {
    if (model.empty() || model == host.model_id()) {
        return true;
    }
    send_error(res, 404, "model_not_found",
               "the model '" + model + "' does not exist; this server serves '" +
                   host.model_id() + "'",
               info.request_id);
    return false;
}

Result<inference::EngineRequest> engine_request(const GenerationParams& params,
                                                std::vector<int32_t> prompt,
                                                const inference::Engine& engine,
                                                const ModelSettings& settings) {
    const int64_t context = engine.model_config().max_seq_len;
    const auto n_prompt = static_cast<int64_t>(prompt.size());
    if (n_prompt >= context) {
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
    request.timeout_s = settings.request_timeout_s;
    return request;
}

// Runs a job to the end (JSON answer) or hands it to httplib as an SSE stream.
void respond(std::unique_ptr<GenerationJob> job, bool stream, const RequestInfo& info,
             httplib::Response& res) {
    if (!stream) {
        Status status = job->collect();
        if (!status.ok()) {
            send_engine_error(res, status, info);
            return;
        }
        send_json(res, job->response());
        return;
    }
    // httplib copies the provider, so the job is shared; dropping the last copy (the response is
    // done or the connection is gone) cancels whatever is unfinished.
    std::shared_ptr<GenerationJob> shared = std::move(job);
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [shared](size_t, httplib::DataSink& sink) { return shared->pump(sink, kStreamPoll); });
}

void chat_completions(ModelHost& host, const RequestInfo& info, const httplib::Request& req,
                      httplib::Response& res) {
    Result<json> body = parse_json_body(req);
    if (!body.ok()) {
        send_status(res, body.status(), info.request_id);
        return;
    }
    Result<ChatRequest> chat = parse_chat_request(*body);
    if (!chat.ok()) {
        send_status(res, chat.status(), info.request_id);
        return;
    }
    auto engine = require_engine(host, info, res);
    if (!engine || !check_model(host, chat->params.model, info, res)) {
        return;
    }
    std::span<const inference::ToolDefinition> tools;
    if (chat->use_tools) {
        tools = chat->tools;
    }
    auto prompt = host.chat_template().encode(*engine->tokenizer(), chat->messages, tools);
    if (!prompt.ok()) {
        send_status(res, prompt.status(), info.request_id);
        return;
    }
    auto request = engine_request(chat->params, std::move(*prompt), *engine, host.settings());
    if (!request.ok()) {
        send_status(res, request.status(), info.request_id);
        return;
    }
    auto grammars = host.grammars();
    SLUICE_CHECK(grammars != nullptr, "a loaded model with a tokenizer has a grammar cache");
    auto constraint = chat_constraint(*chat, req.body, *grammars);
    if (!constraint.ok()) {
        send_status(res, constraint.status(), info.request_id);
        return;
    }
    // The engine gives each of the n choices its own copy.
    request->constraint = std::move(*constraint);
    GenerationSpec spec;
    spec.chat = true;
    spec.request_id = info.request_id;
    spec.model = host.model_id();
    spec.n = chat->params.n;
    spec.logprobs = chat->params.logprobs;
    spec.top_logprobs = chat->params.top_logprobs;
    spec.include_usage = chat->params.include_usage;
    spec.use_tools = chat->use_tools;
    spec.parallel_tool_calls = chat->parallel_tool_calls;
    spec.tools = chat->tools;
    std::vector<inference::EngineRequest> requests;
    requests.push_back(std::move(*request));
    auto job = GenerationJob::start(engine, std::move(spec), std::move(requests));
    if (!job.ok()) {
        send_engine_error(res, job.status(), info);
        return;
    }
    log::debug("openai", "chat completion",
               {{"request_id", info.request_id}, {"stream", chat->params.stream ? 1 : 0}});
    respond(std::move(*job), chat->params.stream, info, res);
}

void completions(ModelHost& host, const RequestInfo& info, const httplib::Request& req,
                 httplib::Response& res) {
    Result<json> body = parse_json_body(req);
    if (!body.ok()) {
        send_status(res, body.status(), info.request_id);
        return;
    }
    Result<CompletionRequest> completion = parse_completion_request(*body);
    if (!completion.ok()) {
        send_status(res, completion.status(), info.request_id);
        return;
    }
    auto engine = require_engine(host, info, res);
    if (!engine || !check_model(host, completion->params.model, info, res)) {
        return;
    }
    const inference::Tokenizer& tokenizer = *engine->tokenizer();
    GenerationSpec spec;
    spec.chat = false;
    spec.request_id = info.request_id;
    spec.model = host.model_id();
    spec.n = completion->params.n;
    spec.logprobs = completion->params.logprobs;
    spec.top_logprobs = completion->params.top_logprobs;
    spec.include_usage = completion->params.include_usage;
    std::vector<inference::EngineRequest> requests;
    for (size_t i = 0; i < completion->prompts.size(); ++i) {
        const PromptInput& input = completion->prompts[i];
        std::vector<int32_t> ids;
        std::string text;
        if (const auto* prompt_text = std::get_if<std::string>(&input)) {
            auto encoded = tokenizer.encode(*prompt_text);
            if (!encoded.ok()) {
                send_status(res, encoded.status().with_context("prompt[" + std::to_string(i) + "]"),
                            info.request_id);
                return;
            }
            ids = std::move(*encoded);
            text = *prompt_text;
        } else {
            ids = std::get<std::vector<int32_t>>(input);
            auto decoded = tokenizer.decode_text(ids);
            if (!decoded.ok()) {
                send_status(res, decoded.status().with_context("prompt[" + std::to_string(i) + "]"),
                            info.request_id);
                return;
            }
            text = std::move(*decoded);
        }
        spec.echo.push_back(completion->echo ? text : std::string());
        auto request = engine_request(completion->params, std::move(ids), *engine, host.settings());
        if (!request.ok()) {
            send_status(res, request.status().with_context("prompt[" + std::to_string(i) + "]"),
                        info.request_id);
            return;
        }
        requests.push_back(std::move(*request));
    }
    auto job = GenerationJob::start(engine, std::move(spec), std::move(requests));
    if (!job.ok()) {
        send_engine_error(res, job.status(), info);
        return;
    }
    respond(std::move(*job), completion->params.stream, info, res);
}

}  // namespace

void add_openai_routes(HttpServer& server, ModelHost& host, ChatDelegate delegate) {
    server.route("POST", "/v1/chat/completions",
                 [&host, delegate](const RequestInfo& info, const httplib::Request& req,
                                   httplib::Response& res) {
                     if (delegate) {
                         Result<json> body = parse_json_body(req);
                         if (body.ok() && body->is_object() && (*body)["model"].is_string() &&
                             delegate(info, *body, res)) {
                             return;
                         }
                     }
                     chat_completions(host, info, req, res);
                 });
    server.route("POST", "/v1/completions",
                 [&host](const RequestInfo& info, const httplib::Request& req,
                         httplib::Response& res) { completions(host, info, req, res); });
    add_embedding_and_token_routes(server, host);
}

}  // namespace sluice::app
