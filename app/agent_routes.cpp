#include "app/agent_routes.h"

#include "agents/document_qa.h"
#include "agents/engine_chat_model.h"
#include "agents/evaluation/targets.h"
#include "agents/index_access.h"
#include "app/agent_chat_chunks.h"
#include "app/connection_probe.h"
#include "app/event_stream.h"
#include "app/governance_http.h"
#include "app/guarded_chat_model.h"
#include "app/http_errors.h"
#include "app/model_call.h"
#include "app/openai_request.h"
#include "app/openai_route_support.h"
#include "app/request_members.h"
#include "app/tool_calls.h"
#include "common/log.h"

namespace sluice::app {
namespace {

using nlohmann::json;
using governance::Privilege;
using governance::SecurableType;

const std::string kName = "([A-Za-z0-9_.@+-]+)";
const std::string kTraceId = "([0-9a-f]{32})";
constexpr std::string_view kAgentModelPrefix = "agents/";

// Answers and traces carry text from documents, databases and the model: bytes that are not
// UTF-8 become U+FFFD rather than failing the response.
void send_safe(httplib::Response& res, const json& body) {
    res.status = 200;
    res.set_content(agents::dump_safe(body), "application/json");
}

json usage_json(std::int64_t prompt, std::int64_t completion) {
    return {{"prompt_tokens", prompt},
            {"completion_tokens", completion},
            {"total_tokens", prompt + completion}};
}

json qa_json(const agents::QaResult& result, const std::string& trace_id) {
    json citations = json::array();
    for (const auto& citation : result.citations) {
        citations.push_back(agents::citation_to_json(citation));
    }
    return {{"answer", result.answer},
            {"citations", citations},
            {"refused", result.refused},
            {"query", result.query},
            {"trace_id", trace_id},
            {"usage", usage_json(result.prompt_tokens, result.completion_tokens)},
            {"timings_ms",
             {{"rewrite", result.times.rewrite_s * 1000},
              {"retrieve", result.times.retrieve_s * 1000},
              {"pack", result.times.pack_s * 1000},
              {"prefill", result.times.prefill_s * 1000},
              {"decode", result.times.decode_s * 1000}}}};
}

void save_trace(agents::TraceStore& traces, const agents::Trace& trace,
                const std::string& request_id) {
    if (Status saved = traces.save(trace.record()); !saved.ok()) {
        log::error("agents", "cannot store a trace",
                   {{"trace_id", trace.id()}, {"request_id", request_id},
                    {"error", saved.message()}});
    }
}

void offer_qa(AgentServices& s, const std::string& trace_id, const std::string& question,
              const agents::QaResult& result) {
    if (s.monitor == nullptr || result.refused) {
        return;
    }
    agents::evaluation::JudgeInput input;
    input.request = question;
    input.response = result.answer;
    input.has_context = true;
    for (const auto& citation : result.citations) {
        input.context.push_back({citation.uri, citation.text});
    }
    s.monitor->offer(trace_id, std::move(input));
}

// An agent's answer, with the passages its searches returned when the monitor will judge it
// (the trace is read only for the sampled share).
void offer_answer(AgentServices& s, const std::string& trace_id, const std::string& request,
                  const agents::RunResult& run) {
    if (s.monitor == nullptr || run.stop == agents::StopReason::kCancelled) {
        return;  // nobody got a cancelled run's answer
    }
    agents::evaluation::JudgeInput input;
    input.request = request;
    input.response = run.answer;
    if (run.tool_calls > 0 &&
        agents::evaluation::monitor_samples(trace_id, s.monitor->settings().fraction)) {
        if (auto trace = s.traces.get(trace_id); trace.ok()) {
            if (auto context = agents::evaluation::searched_context(*trace)) {
                input.has_context = true;
                input.context = std::move(*context);
            }
        }
    }
    s.monitor->offer(trace_id, std::move(input));
}

// Charges a document answer's tokens to the caller (those of the model's turn, also when its
// answer was withheld); a failure to record is logged (the answer has been computed).
void settle_qa_use(ModelCall& use, const GuardedChatModel& model,
                   const Result<agents::QaResult>& result) {
    Status settled = use.finish(model.spent(), result.ok() ? "ok" : "error");
    if (!settled.ok()) {
        log::error("agents", "document answer tokens not recorded",
                   {{"request_id", use.context().request_id}, {"error", settled.message()}});
    }
}

// The question passes the input policy before retrieval: a block on what the model then reads
// is the passages', which are not the caller's input (not a 400).
Status blocked_passages(const inference::ChatMessage&, const Status& refusal) {
    return Status(StatusCode::kPermissionDenied,
                  "the retrieved passages: " + refusal.message() + "; no answer is given");
}

void post_qa(AgentServices& s, const RequestInfo& info, const httplib::Request& req,
             httplib::Response& res) {
    auto body = parse_json_body(req);
    if (!body.ok()) {
        send_status(res, body.status(), info.request_id);
        return;
    }
    if (Status keys = check_keys(*body, {"question", "index", "options", "stream"}, {});
        !keys.ok()) {
        send_status(res, keys, info.request_id);
        return;
    }
    auto question = string_field(*body, "question");
    auto index_name = string_field(*body, "index");
    if (!question.ok() || !index_name.ok()) {
        send_status(res, question.ok() ? index_name.status() : question.status(),
                    info.request_id);
        return;
    }
    auto options = agents::qa_options_from_json(body->value("options", json()), {});
    if (!options.ok()) {
        send_status(res, options.status(), info.request_id);
        return;
    }
    auto stream = bool_field_or(*body, "stream", false);
    if (!stream.ok()) {
        send_status(res, stream.status(), info.request_id);
        return;
    }
    governance::RequestContext context = context_of(info);
    // SELECT on the index as the caller (audited); the chunks' access lists apply on top.
    auto opened = agents::open_index(s.gov.authorizer(), context, governance::Privilege::kSelect,
                                     s.indexes, *index_name);
    if (!opened.ok()) {
        send_status(res, opened.status(), info.request_id);
        return;
    }
    std::shared_ptr<retrieval::Index> index = opened->index;
    auto tool_context = s.runtime.context_for(context);
    if (!tool_context.ok()) {
        send_status(res, tool_context.status(), info.request_id);
        return;
    }
    auto model = s.model.get();
    if (!model.ok()) {
        send_status(res, model.status(), info.request_id);
        return;
    }
    // The model's use is governed as on the OpenAI routes: EXECUTE on its catalog model, the
    // endpoint's input and output policies, room under the caller's limits for the question
    // and the longest answer before, the tokens used charged after (agent "qa").
    std::optional<std::int64_t> retry_after;
    auto opened_use = open_governed_use(
        s.gov, context, (*model)->name(), s.model.securable(),
        (*model)->count_tokens(*question) + options->max_answer_tokens, "qa", &retry_after);
    if (!opened_use.ok()) {
        send_model_error(res, opened_use.status(), info, retry_after);
        return;
    }
    std::shared_ptr<ModelCall> use = std::move(*opened_use);
    // The question is checked first: retrieval uses what the policy lets through.
    auto asked = use->guard_input(*question);
    if (!asked.ok()) {
        send_status(res, asked.status().with_context("question"), info.request_id);
        return;
    }
    // The model reads the passages under the same policy, and its answer goes out under the
    // output policy, streamed or whole.
    auto guarded = std::make_shared<GuardedChatModel>(*use, *model, blocked_passages);
    retrieval::Reader reader = tool_context->reader;
    auto trace = std::make_shared<agents::Trace>(context.principal, context.request_id);
    if (!*stream) {
        auto result = agents::answer_question(*asked, *index, reader, *guarded, *options,
                                              trace.get(), "", {});
        save_trace(s.traces, *trace, info.request_id);
        settle_qa_use(*use, *guarded, result);
        if (!result.ok()) {
            send_status(res, result.status(), info.request_id);
            return;
        }
        offer_qa(s, trace->id(), *asked, *result);
        send_safe(res, qa_json(*result, trace->id()));
        return;
    }
    auto events = std::make_shared<EventStream>();
    // The worker borrows the stream: the stream joins it before it goes.
    events->start([&s, stream = events.get(), trace, question = *asked, index, reader, guarded,
                   options = *options, request_id = info.request_id, use] {
        stream->push("trace", {{"trace_id", trace->id()}});
        auto result = agents::answer_question(question, *index, reader, *guarded, options,
                                              trace.get(), "", [&](std::string_view text) {
                                                  if (!text.empty()) {
                                                      stream->push("tokens", {{"text", text}});
                                                  }
                                              });
        save_trace(s.traces, *trace, request_id);
        settle_qa_use(*use, *guarded, result);
        if (result.ok()) {
            offer_qa(s, trace->id(), question, *result);
            stream->push("final", qa_json(*result, trace->id()));
        } else {
            stream->push("error", {{"message", result.status().message()},
                                   {"code", status_code_name(result.status().code())}});
        }
        stream->close();
    });
    EventStream::respond(events, res);
}

void get_trace(AgentServices& s, const RequestInfo& info, const httplib::Request& req,
               httplib::Response& res, bool otlp) {
    auto trace = s.traces.get(req.matches[1].str());
    governance::RequestContext context = context_of(info);
    if (trace.ok() && trace->principal != context.principal) {
        // Another principal's trace: only admins read it, and its existence is not revealed.
        auto admin = s.gov.authorizer().is_admin(context.principal_id);
        if (!admin.ok() || !*admin) {
            trace = not_found("trace '" + req.matches[1].str() + "' does not exist");
        }
    }
    // A trace holds what its run read (passages, tool results): every read is on record, as
    // feedback reads are, a refused one (another principal's) included.
    Status audited =
        audit_action(s.gov, context, "trace.read", "trace:" + req.matches[1].str(), trace.status());
    if (!trace.ok() || !audited.ok()) {
        send_status(res, trace.ok() ? audited : trace.status(), info.request_id);
        return;
    }
    send_safe(res, otlp ? agents::trace_to_otlp(*trace) : agents::trace_to_json(*trace));
}

// PUT and GET of a definition attached to a catalog object.
template <typename Parse, typename Put, typename Get, typename ToJson>
void add_definition_routes(HttpServer& server, AgentServices& s, const std::string& base,
                           SecurableType type, Parse parse, Put put, Get get, ToJson to_json) {
    server.route("PUT", base + "/" + kName,
                 [&s, type, parse, put, to_json](const RequestInfo& info,
                                                 const httplib::Request& req,
                                                 httplib::Response& res) {
                     auto body = parse_json_body(req);
                     if (!body.ok()) {
                         send_status(res, body.status(), info.request_id);
                         return;
                     }
                     std::string name = req.matches[1].str();
                     (*body)["name"] = name;
                     governance::RequestContext context = context_of(info);
                     Status allowed = s.gov.authorizer().require(context, Privilege::kManage,
                                                                 type, name);
                     if (!allowed.ok()) {
                         send_status(res, allowed, info.request_id);
                         return;
                     }
                     auto spec = parse(*body, s, context);
                     if (!spec.ok()) {
                         send_status(res, spec.status(), info.request_id);
                         return;
                     }
                     Status stored = put(s, *spec);
                     Status audited = audit_action(
                         s.gov, context,
                         std::string(governance::securable_type_name(type)) + ".definition",
                         std::string(governance::securable_type_name(type)) + ":" + name, stored);
                     if (!stored.ok() || !audited.ok()) {
                         send_status(res, stored.ok() ? audited : stored, info.request_id);
                         return;
                     }
                     send_safe(res, to_json(*spec));
                 });
    server.route("GET", base + "/" + kName,
                 [&s, type, get, to_json](const RequestInfo& info, const httplib::Request& req,
                                          httplib::Response& res) {
                     std::string name = req.matches[1].str();
                     Status allowed = s.gov.authorizer().require(context_of(info),
                                                                 Privilege::kBrowse, type, name);
                     if (!allowed.ok()) {
                         send_status(res, allowed, info.request_id);
                         return;
                     }
                     auto spec = get(s, name);
                     if (!spec.ok()) {
                         send_status(res, spec.status(), info.request_id);
                         return;
                     }
                     send_safe(res, to_json(*spec));
                 });
}

Result<std::vector<inference::ChatMessage>> messages_of(const json& body) {
    SLUICE_RETURN_IF_ERROR(check_keys(body, {"input", "messages", "stream"}, {}));
    if (body.contains("input") && body.contains("messages")) {
        return invalid_argument("give input or messages, not both");
    }
    if (body.contains("input")) {
        if (!body["input"].is_string() || body["input"].get<std::string>().empty()) {
            return invalid_argument("input: expected a non-empty string");
        }
        return std::vector<inference::ChatMessage>{{"user", body["input"], {}, {}}};
    }
    if (!body.contains("messages") || !body["messages"].is_array() || body["messages"].empty()) {
        return invalid_argument("messages: expected a non-empty array (or give input)");
    }
    std::vector<inference::ChatMessage> out;
    for (size_t i = 0; i < body["messages"].size(); ++i) {
        const json& m = body["messages"][i];
        std::string where = "messages[" + std::to_string(i) + "]";
        if (!m.is_object() || !m.contains("role") || !m["role"].is_string() ||
            !m.contains("content") || !m["content"].is_string()) {
            return invalid_argument(where + ": expected {\"role\", \"content\"} strings");
        }
        SLUICE_RETURN_IF_ERROR(check_keys(m, {"role", "content"}, {}).with_context(where));
        std::string role = m["role"];
        if (role != "user" && role != "assistant") {
            return invalid_argument(where + ".role: expected user or assistant (the agent's "
                                            "instructions are its system message)");
        }
        out.push_back({role, m["content"], {}, {}});
    }
    return out;
}

void invoke_agent(AgentServices& s, const RequestInfo& info, const httplib::Request& req,
                  httplib::Response& res) {
    auto body = parse_json_body(req);
    if (!body.ok()) {
        send_status(res, body.status(), info.request_id);
        return;
    }
    auto messages = messages_of(*body);
    if (!messages.ok()) {
        send_status(res, messages.status(), info.request_id);
        return;
    }
    std::string agent = req.matches[1].str();
    governance::RequestContext context = context_of(info);
    std::string request_text = messages->back().content;
    auto stream = bool_field_or(*body, "stream", false);
    if (!stream.ok()) {
        send_status(res, stream.status(), info.request_id);
        return;
    }
    // Whatever refuses the run refuses it now, with an HTTP status, streamed or not.
    std::optional<std::int64_t> retry_after;
    auto prepared = s.runtime.prepare(context, agent, std::move(*messages), &retry_after);
    if (!prepared.ok()) {
        send_model_error(res, prepared.status(), info, retry_after);
        return;
    }
    if (!*stream) {
        // A client that hangs up stops the run, as a streamed one's does.
        HangUpWatch watch(req);
        auto result = s.runtime.run(std::move(*prepared), {}, watch.stop_token());
        if (!result.ok()) {
            send_status(res, result.status(), info.request_id);
            return;
        }
        offer_answer(s, result->trace_id, request_text, result->run);
        send_safe(res, {{"agent", agent},
                        {"answer", result->run.answer},
                        {"stop_reason", agents::stop_reason_name(result->run.stop)},
                        {"steps", result->run.steps},
                        {"tool_calls", result->run.tool_calls},
                        {"trace_id", result->trace_id},
                        {"usage", usage_json(result->run.prompt_tokens,
                                             result->run.completion_tokens)}});
        return;
    }
    auto events = std::make_shared<EventStream>();
    auto run = std::make_shared<agents::AgentRuntime::PreparedRun>(std::move(*prepared));
    events->start([&s, stream = events.get(), request_text, run]() mutable {
        // The stream's stop token is requested when the client hangs up: the run then stops at
        // its next model turn or tool call, cancelling the engine request in flight.
        auto result = s.runtime.run(
            std::move(*run),
            [stream](const agents::AgentEvent& event) { stream->push(event.type, event.data); },
            stream->stop_token());
        if (result.ok()) {
            offer_answer(s, result->trace_id, request_text, result->run);
        } else {
            stream->push("error", {{"message", result.status().message()},
                                   {"code", status_code_name(result.status().code())}});
        }
        stream->close();
    });
    EventStream::respond(events, res);
}

// An agent served as a model, streamed: the answer's tokens as chat.completion.chunk objects
// while the agent runs (AgentChatChunks), then [DONE]. What can be refused is refused before
// the stream starts, with an HTTP status, as for the served model.
void stream_agent_chat(AgentServices& s, const RequestInfo& info, std::string agent,
                       std::string model, std::vector<inference::ChatMessage> messages,
                       const agents::RunOptions& options, bool include_usage,
                       httplib::Response& res) {
    governance::RequestContext context = context_of(info);
    if (messages.empty() || messages.back().role != "user") {
        send_status(res, invalid_argument("messages: the last message must be the user's"),
                    info.request_id);
        return;
    }
    const std::string request_text = messages.back().content;
    std::optional<std::int64_t> retry_after;
    auto prepared = s.runtime.prepare(context, agent, std::move(messages), &retry_after, options);
    if (!prepared.ok()) {
        send_model_error(res, prepared.status(), info, retry_after);
        return;
    }
    auto run = std::make_shared<agents::AgentRuntime::PreparedRun>(std::move(*prepared));
    auto events = std::make_shared<EventStream>();
    events->start([&s, stream = events.get(), model = std::move(model), run, request_text,
                   include_usage, request_id = info.request_id]() mutable {
        AgentChatChunks chunks(model, include_usage);
        // A client that hangs up requests the stream's stop: the run ends at its next model
        // turn or tool call and the engine request in flight is cancelled.
        auto result = s.runtime.run(
            std::move(*run),
            [&](const agents::AgentEvent& event) {
                for (const json& chunk : chunks.on_event(event)) {
                    stream->push_data(chunk);
                }
            },
            stream->stop_token());
        if (result.ok()) {
            offer_answer(s, result->trace_id, request_text, result->run);
        } else {
            const int http = http_status_for(result.status().code());
            stream->push_data(error_envelope(http, status_code_name(result.status().code()),
                                             result.status().message(), request_id));
        }
        stream->close(true);
    });
    EventStream::respond(events, res);
}

// What an agent's run takes from a chat completion request: each model turn samples with the
// request's temperature, top_p and seed where it gives them (an agent's turns are greedy
// otherwise), and max_tokens (or max_completion_tokens) bounds the completion tokens of the
// whole run. Sampling settings an agent's turns cannot honour are refused by
// agent_can_honour() rather than dropped.
agents::RunOptions run_options_of(const ChatRequest& chat, const json& body) {
    agents::RunOptions options;
    if (body.contains("temperature") && !body["temperature"].is_null()) {
        options.temperature = chat.params.sampling.temperature;
    }
    if (body.contains("top_p") && body["top_p"].is_number() && body["top_p"] < 1) {
        // Nucleus sampling samples, at the request's temperature (1 unless given, as OpenAI
        // has it; the parser made top_p 0 greedy). top_p 1, a client's default, changes nothing.
        options.temperature = chat.params.sampling.temperature;
        options.top_p = chat.params.sampling.top_p;
    }
    options.seed = chat.params.sampling.seed;
    if (chat.params.max_tokens) {
        options.max_completion_tokens = *chat.params.max_tokens;
    }
    return options;
}

// What a request to an agent served as a model asks that the agent cannot give is refused, as
// the served model refuses what it does not take (docs/api.md), rather than answered without
// it: a client asking for three choices got one, for JSON got text.
Status agent_can_honour(const ChatRequest& chat) {
    const inference::SamplingParams& sampling = chat.params.sampling;
    const inference::SamplingParams defaults;
    if (!chat.params.stop.empty()) {
        return invalid_argument(
            "stop: an agent's answer ends where the agent ends it; stop sequences are not "
            "applied to its runs");
    }
    for (auto [name, differs] :
         {std::pair{"presence_penalty", sampling.presence_penalty != defaults.presence_penalty},
          std::pair{"frequency_penalty", sampling.frequency_penalty != defaults.frequency_penalty},
          std::pair{"repetition_penalty",
                    sampling.repetition_penalty != defaults.repetition_penalty},
          std::pair{"top_k", sampling.top_k != defaults.top_k},
          std::pair{"min_p", sampling.min_p != defaults.min_p},
          std::pair{"logit_bias", !sampling.logit_bias.empty()}}) {
        if (differs) {
            return invalid_argument(std::string(name) +
                                    ": an agent's model turns take temperature, top_p and seed; "
                                    "this setting is not applied to them");
        }
    }
    if (chat.params.n != 1) {
        return invalid_argument("n: an agent gives one answer; expected 1, found " +
                                std::to_string(chat.params.n));
    }
    if (!chat.tools_json.is_null()) {
        return invalid_argument(
            "tools: an agent calls its own tools (its definition names "
            "them); a request's tools are not offered to it");
    }
    if (chat.response_format != ResponseFormat::kText) {
        return invalid_argument("response_format: an agent answers in text");
    }
    if (chat.params.logprobs) {
        return invalid_argument("logprobs: an agent's answer has no token log-probabilities");
    }
    return Status();
}

}  // namespace

Result<std::shared_ptr<agents::ChatModel>> ServedChatModel::get() {
    auto engine = host_.engine();
    if (!engine) {
        return host_.unavailable();
    }
    std::lock_guard lock(mutex_);
    if (model_ == nullptr) {
        SLUICE_ASSIGN_OR_RETURN(auto made,
                                agents::EngineChatModel::make(engine, host_.chat_template(),
                                                              host_.model_id(),
                                                              host_.settings().request_timeout_s));
        model_ = std::move(made);
    }
    return model_;
}

std::string ServedChatModel::securable() const { return host_.settings().securable; }

void add_agent_routes(HttpServer& server, AgentServices& s) {
    server.route("POST", "/api/qa",
                 [&s](const RequestInfo& info, const httplib::Request& req,
                      httplib::Response& res) { post_qa(s, info, req, res); });
    server.route("GET", "/api/traces/" + kTraceId,
                 [&s](const RequestInfo& info, const httplib::Request& req,
                      httplib::Response& res) { get_trace(s, info, req, res, false); });
    server.route("GET", "/api/traces/" + kTraceId + "/otlp",
                 [&s](const RequestInfo& info, const httplib::Request& req,
                      httplib::Response& res) { get_trace(s, info, req, res, true); });
    server.route("POST", "/api/agents/" + kName + "/invoke",
                 [&s](const RequestInfo& info, const httplib::Request& req,
                      httplib::Response& res) { invoke_agent(s, info, req, res); });
    add_definition_routes(
        server, s, "/api/agents", SecurableType::kAgent,
        [](const json& body, AgentServices& services,
           const governance::RequestContext& context) -> Result<agents::AgentSpec> {
            SLUICE_ASSIGN_OR_RETURN(agents::AgentSpec spec, agents::agent_from_json(body));
            if (!spec.run_as.empty()) {
                // Running as a service principal lends its rights to every caller: an admin's
                // decision.
                SLUICE_RETURN_IF_ERROR(require_admin(services.gov, context, "agent.run_as"));
            }
            return spec;
        },
        [](AgentServices& services, const agents::AgentSpec& spec) {
            return services.store.put_agent(spec);
        },
        [](AgentServices& services, const std::string& name) {
            return services.store.agent(name);
        },
        [](const agents::AgentSpec& spec) { return agents::agent_to_json(spec); });
    add_definition_routes(
        server, s, "/api/tools", SecurableType::kFunction,
        [](const json& body, AgentServices& services,
           const governance::RequestContext& context) -> Result<agents::ToolSpec> {
            SLUICE_ASSIGN_OR_RETURN(agents::ToolSpec spec, agents::tool_from_json(body));
            if (spec.kind == agents::ToolKind::kSqlQuery ||
                spec.kind == agents::ToolKind::kSqlTemplate) {
                // A SQL tool names a database file on the server: an admin's decision.
                SLUICE_RETURN_IF_ERROR(require_admin(services.gov, context, "tool.sql_source"));
            }
            return spec;
        },
        [](AgentServices& services, const agents::ToolSpec& spec) {
            return services.store.put_tool(spec);
        },
        [](AgentServices& services, const std::string& name) {
            return services.store.tool(name);
        },
        [](const agents::ToolSpec& spec) { return agents::tool_to_json(spec); });
    add_definition_routes(
        server, s, "/api/connections", SecurableType::kConnection,
        [](const json& body, AgentServices& services,
           const governance::RequestContext&) -> Result<agents::Connection> {
            SLUICE_ASSIGN_OR_RETURN(agents::Connection connection,
                                    agents::connection_from_json(body));
            if (!body.contains("secret")) {
                auto stored = services.store.connection(connection.name);
                if (stored.ok()) {
                    SLUICE_RETURN_IF_ERROR(agents::keep_stored_secret(connection, *stored));
                } else if (stored.status().code() != StatusCode::kNotFound) {
                    return stored.status();
                }
            }
            return connection;
        },
        [](AgentServices& services, const agents::Connection& connection) {
            return services.store.put_connection(connection);
        },
        [](AgentServices& services, const std::string& name) {
            return services.store.connection(name);
        },
        [](const agents::Connection& connection) {
            return agents::connection_to_json(connection, false);
        });
}

ChatDelegate agent_chat_delegate(AgentServices& s) {
    return [&s](const RequestInfo& info, const httplib::Request& req, const json& body,
                httplib::Response& res) {
        std::string model = body["model"].get<std::string>();
        if (model.rfind(kAgentModelPrefix, 0) != 0) {
            return false;
        }
        std::string agent = model.substr(kAgentModelPrefix.size());
        auto chat = parse_chat_request(body);
        if (!chat.ok()) {
            send_status(res, chat.status(), info.request_id);
            return true;
        }
        if (Status honoured = agent_can_honour(*chat); !honoured.ok()) {
            send_status(res, honoured, info.request_id);
            return true;
        }
        std::vector<inference::ChatMessage> messages;
        for (const auto& message : chat->messages) {
            if (message.role == "user" || message.role == "assistant") {
                messages.push_back({message.role, message.content, {}, {}});
            }
        }
        const agents::RunOptions options = run_options_of(*chat, body);
        if (chat->params.stream) {
            stream_agent_chat(s, info, std::move(agent), std::move(model), std::move(messages),
                              options, chat->params.include_usage, res);
            return true;
        }
        const std::string request_text = messages.empty() ? "" : messages.back().content;
        std::optional<std::int64_t> retry_after;
        auto prepared =
            s.runtime.prepare(context_of(info), agent, std::move(messages), &retry_after, options);
        if (!prepared.ok()) {
            send_model_error(res, prepared.status(), info, retry_after);
            return true;
        }
        // A client that hangs up stops the run, as a streamed one's does.
        HangUpWatch watch(req);
        auto result = s.runtime.run(std::move(*prepared), {}, watch.stop_token());
        if (!result.ok()) {
            send_status(res, result.status(), info.request_id);
            return true;
        }
        offer_answer(s, result->trace_id, request_text, result->run);
        std::string finish =
            result->run.stop == agents::StopReason::kAnswer ? "stop" : "length";
        json response = {
            {"id", fresh_id("chatcmpl-")},
            {"object", "chat.completion"},
            {"created", std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count()},
            {"model", model},
            {"choices",
             json::array({{{"index", 0},
                           {"message", {{"role", "assistant"}, {"content", result->run.answer}}},
                           {"finish_reason", finish}}})},
            {"usage", usage_json(result->run.prompt_tokens, result->run.completion_tokens)},
            {"trace_id", result->trace_id}};
        send_safe(res, response);
        return true;
    };
}

}  // namespace sluice::app
