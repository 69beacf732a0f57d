#include "agents/engine_chat_model.h"

#include <chrono>

#include "inference/json_schema_grammar.h"

namespace sluice::agents {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// At most this many compiled grammars stay cached; past it the cache starts over (agents reuse
// a handful of tool lists, so this is a bound on a bug, not an eviction policy).
constexpr size_t kMaxGrammars = 64;

constexpr std::string_view kCallMarker = "<tool_call>";

}  // namespace

Result<std::unique_ptr<EngineChatModel>> EngineChatModel::make(
    std::shared_ptr<inference::Engine> engine, inference::ChatTemplate chat_template,
    std::string name, double timeout_s) {
    if (engine == nullptr || engine->tokenizer() == nullptr) {
        return failed_precondition("the engine has no tokenizer; chat needs one");
    }
    return std::make_unique<EngineChatModel>(std::move(engine), std::move(chat_template),
                                             std::move(name), timeout_s);
}

EngineChatModel::EngineChatModel(std::shared_ptr<inference::Engine> engine,
                                 inference::ChatTemplate chat_template, std::string name,
                                 double timeout_s)
    : engine_(std::move(engine)),
      template_(std::move(chat_template)),
      name_(std::move(name)),
      timeout_s_(timeout_s) {}

std::int64_t EngineChatModel::count_tokens(std::string_view text) const {
    auto n = engine_->tokenizer()->count(text);
    // Text that is not UTF-8 cannot be encoded; count its bytes, the upper bound.
    return n.ok() ? static_cast<std::int64_t>(*n) : static_cast<std::int64_t>(text.size());
}

Result<std::shared_ptr<const inference::CompiledGrammar>> EngineChatModel::grammar_for(
    const ModelRequest& request) {
    std::string key;
    if (!request.response_schema.is_null()) {
        key = "schema:" + request.response_schema.dump();
    } else {
        json tools = json::array();
        for (const auto& tool : request.tools) {
            tools.push_back({{"name", tool.name}, {"parameters", tool.parameters}});
        }
        key = "tools:" + tools.dump();
    }
    std::lock_guard lock(mutex_);
    if (auto it = grammars_.find(key); it != grammars_.end()) {
        return it->second;
    }
    if (compiler_ == nullptr) {
        compiler_ = std::make_unique<inference::GrammarCompiler>(*engine_->tokenizer());
    }
    Result<std::shared_ptr<const inference::CompiledGrammar>> compiled =
        Status(StatusCode::kInternal, "no grammar");
    if (!request.response_schema.is_null()) {
        compiled = compiler_->compile_json_schema(request.response_schema);
    } else {
        std::vector<inference::ToolSpec> specs;
        for (const auto& tool : request.tools) {
            specs.push_back({tool.name, nlohmann::ordered_json::parse(tool.parameters.dump())});
        }
        SLUICE_ASSIGN_OR_RETURN(inference::Grammar grammar,
                                inference::tool_call_grammar(specs, inference::ToolChoice{}));
        compiled = compiler_->compile(std::move(grammar));
    }
    if (!compiled.ok()) {
        return compiled.status();
    }
    if (grammars_.size() >= kMaxGrammars) {
        grammars_.clear();
    }
    grammars_[key] = *compiled;
    return compiled;
}

Result<ModelReply> EngineChatModel::complete(const ModelRequest& request) {
    SLUICE_ASSIGN_OR_RETURN(
        std::vector<int32_t> prompt,
        template_.encode(*engine_->tokenizer(), request.messages, request.tools));
    const int64_t context = engine_->model_config().max_seq_len;
    const auto n_prompt = static_cast<int64_t>(prompt.size());
    if (n_prompt >= context) {
        return invalid_argument("the prompt has " + std::to_string(n_prompt) +
                                " tokens; the model's context is " + std::to_string(context));
    }
    inference::EngineRequest engine_request;
    engine_request.prompt = std::move(prompt);
    engine_request.sampling.temperature = static_cast<float>(request.temperature);
    engine_request.sampling.top_p = static_cast<float>(request.top_p);
    engine_request.sampling.seed = request.seed;
    engine_request.max_tokens =
        static_cast<int32_t>(std::min<int64_t>(request.max_tokens, context - n_prompt));
    engine_request.stop_tokens = inference::ChatTemplate::stop_ids();
    engine_request.timeout_s = timeout_s_;
    if (!request.tools.empty() || !request.response_schema.is_null()) {
        SLUICE_ASSIGN_OR_RETURN(auto grammar, grammar_for(request));
        engine_request.constraint.emplace(std::move(grammar));
    }
    Clock::time_point start = Clock::now();
    SLUICE_ASSIGN_OR_RETURN(inference::RequestHandle handle, engine_->submit(std::move(engine_request)));
    std::string text;
    size_t streamed = 0;  // bytes of `text` handed to on_text
    bool marker_seen = false;
    std::optional<Clock::time_point> first_token;
    inference::StreamEvent event;
    bool cancelled = false;
    while (handle.next(&event, std::chrono::milliseconds(100)) !=
           inference::RequestHandle::Poll::kFinished) {
        if (!cancelled && request.stop.stop_requested()) {
            // The caller went away: cancel, and keep reading until the engine confirms, so that
            // the usage below counts what was spent and the KV blocks are free on return.
            cancelled = true;
            handle.cancel();
        }
        if (cancelled || (event.text.empty() && event.tokens.empty())) {
            continue;
        }
        if (!first_token) {
            first_token = Clock::now();
        }
        text += event.text;
        event.text.clear();
        event.tokens.clear();
        if (!request.on_text || marker_seen) {
            continue;
        }
        // Stream answer text, holding back what could be the start of a tool-call marker.
        size_t marker = text.find(kCallMarker);
        size_t safe = marker != std::string::npos
                          ? marker
                          : (text.size() > kCallMarker.size() ? text.size() - kCallMarker.size()
                                                              : 0);
        if (request.tools.empty()) {
            safe = text.size();
        }
        // Never cut inside a UTF-8 sequence.
        while (safe > streamed && safe < text.size() &&
               (static_cast<unsigned char>(text[safe]) & 0xC0) == 0x80) {
            --safe;
        }
        marker_seen = marker != std::string::npos;
        if (safe > streamed) {
            request.on_text(std::string_view(text).substr(streamed, safe - streamed));
            streamed = safe;
        }
    }
    if (cancelled && handle.status().code() == StatusCode::kCancelled) {
        inference::Usage usage = handle.usage();
        ModelReply reply;
        reply.cancelled = true;
        reply.text = text;
        reply.prompt_tokens = usage.prompt_tokens;
        reply.completion_tokens = usage.completion_tokens;
        return reply;
    }
    SLUICE_RETURN_IF_ERROR(handle.status());
    ModelReply reply;
    if (request.tools.empty()) {
        reply.text = text;
    } else {
        split_tool_calls(text, &reply.text, &reply.calls);
    }
    if (request.on_text && !marker_seen && reply.text.size() > streamed) {
        request.on_text(std::string_view(reply.text).substr(streamed));
    }
    inference::Usage usage = handle.usage();
    reply.prompt_tokens = usage.prompt_tokens;
    reply.completion_tokens = usage.completion_tokens;
    Clock::time_point end = Clock::now();
    Clock::time_point first = first_token.value_or(end);
    reply.prefill_seconds = std::chrono::duration<double>(first - start).count();
    reply.decode_seconds = std::chrono::duration<double>(end - first).count();
    return reply;
}

}  // namespace sluice::agents
