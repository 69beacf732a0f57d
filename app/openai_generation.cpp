#include "app/openai_generation.h"

#include "app/http_errors.h"
#include "app/tool_calls.h"

namespace sluice::app {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// SSE comments keep idle streams alive and reveal a vanished client (the write fails).
constexpr auto kKeepAlive = std::chrono::seconds(1);

std::string sse(const json& value) {
    return "data: " + value.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

// Length of the longest suffix of `text` that is a proper prefix of `marker`.
size_t partial_marker(std::string_view text, std::string_view marker) {
    for (size_t n = std::min(text.size(), marker.size() - 1); n > 0; --n) {
        if (text.substr(text.size() - n) == marker.substr(0, n)) {
            return n;
        }
    }
    return 0;
}

}  // namespace

std::string openai_finish_reason(inference::FinishReason reason) {
    return reason == inference::FinishReason::kLength ? "length" : "stop";
}

GenerationJob::GenerationJob(Private, std::shared_ptr<inference::Engine> engine, GenerationSpec spec)
    : engine_(std::move(engine)),
      spec_(std::move(spec)),
      id_(fresh_id(spec_.chat ? "chatcmpl-" : "cmpl-")),
      created_(std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count()),
      last_write_(Clock::now()) {}

GenerationJob::~GenerationJob() = default;  // unfinished handles cancel themselves

Result<std::unique_ptr<GenerationJob>> GenerationJob::start(
    std::shared_ptr<inference::Engine> engine, GenerationSpec spec,
    std::vector<inference::EngineRequest> requests) {
    auto job = std::make_unique<GenerationJob>(Private{}, std::move(engine), std::move(spec));
    for (inference::EngineRequest& request : requests) {
        SLUICE_ASSIGN_OR_RETURN(inference::RequestHandle handle,
                                job->engine_->submit(std::move(request)));
        job->handles_.push_back(std::move(handle));
    }
    job->handle_done_.assign(job->handles_.size(), false);
    job->choices_.resize(job->handles_.size() * static_cast<size_t>(job->spec_.n));
    return job;
}

Status GenerationJob::collect() {
    for (size_t i = 0; i < handles_.size(); ++i) {
        inference::StreamEvent event;
        while (true) {
            auto poll = handles_[i].next(&event, std::chrono::seconds(1));
            if (poll == inference::RequestHandle::Poll::kEvent) {
                absorb(i, std::move(event), nullptr);
            } else if (poll == inference::RequestHandle::Poll::kFinished) {
                break;
            }
        }
        handle_done_[i] = true;
        const inference::Usage usage = handles_[i].usage();
        usage_.prompt_tokens += usage.prompt_tokens;
        usage_.completion_tokens += usage.completion_tokens;
        usage_.cached_tokens += usage.cached_tokens;
        if (status_.ok() && !handles_[i].status().ok()) {
            status_ = handles_[i].status();
        }
    }
    done_ = true;
    return status_;
}

void GenerationJob::absorb(size_t prompt, inference::StreamEvent event, std::string* out) {
    const size_t index = prompt * static_cast<size_t>(spec_.n) + static_cast<size_t>(event.choice);
    Choice& choice = choices_[index];
    const size_t offset = choice.text.size();
    choice.text += event.text;
    choice.tokens.insert(choice.tokens.end(), event.tokens.begin(), event.tokens.end());
    if (event.finish) {
        choice.finish = event.finish;
    }
    if (out == nullptr) {
        return;
    }
    std::string visible;
    if (spec_.use_tools) {
        // Hold text from a (possible) <tool_call> marker on; release the rest.
        if (choice.tool_guard) {
            choice.held += event.text;
        } else {
            choice.held += event.text;
            const size_t marker = choice.held.find(kToolCallOpen);
            if (marker != std::string::npos) {
                visible = choice.held.substr(0, marker);
                choice.held.erase(0, marker);
                choice.tool_guard.emplace(std::vector<std::string>{});  // marks: holding
            } else {
                const size_t keep = partial_marker(choice.held, kToolCallOpen);
                visible = choice.held.substr(0, choice.held.size() - keep);
                choice.held.erase(0, choice.held.size() - keep);
            }
        }
    } else {
        visible = std::move(event.text);
    }
    const bool with_logprobs = spec_.logprobs && !event.tokens.empty();
    if (!visible.empty() || with_logprobs) {
        json entry = {{"index", index}, {"finish_reason", nullptr}};
        if (spec_.chat) {
            entry["delta"] = {{"content", visible}};
            entry["logprobs"] = with_logprobs
                                    ? json{{"content", logprobs_json(event.tokens, 0)}}
                                    : json(nullptr);
        } else {
            entry["text"] = visible;
            entry["logprobs"] =
                with_logprobs ? logprobs_json(event.tokens, spec_.echo[prompt].size() + offset)
                              : json(nullptr);
        }
        *out += sse(chunk(json::array({entry})));
    }
    if (event.finish) {
        finish_stream_choice(index, out);
    }
}

void GenerationJob::finish_stream_choice(size_t index, std::string* out) {
    Choice& choice = choices_[index];
    bool tool_calls = false;
    if (spec_.use_tools) {
        ParsedToolCalls parsed = parse_tool_calls(choice.text, spec_.tools);
        if (!parsed.calls.empty()) {
            if (!spec_.parallel_tool_calls) {
                parsed.calls.resize(1);
            }
            json calls = json::array();
            for (size_t k = 0; k < parsed.calls.size(); ++k) {
                calls.push_back({{"index", k},
                                 {"id", parsed.calls[k].id},
                                 {"type", "function"},
                                 {"function",
                                  {{"name", parsed.calls[k].name},
                                   {"arguments", parsed.calls[k].arguments.dump()}}}});
            }
            *out += sse(chunk(json::array({{{"index", index},
                                            {"delta", {{"tool_calls", calls}}},
                                            {"logprobs", nullptr},
                                            {"finish_reason", nullptr}}})));
            tool_calls = true;
        } else if (!choice.held.empty()) {
            *out += sse(chunk(json::array({{{"index", index},
                                            {"delta", {{"content", choice.held}}},
                                            {"logprobs", nullptr},
                                            {"finish_reason", nullptr}}})));
        }
        choice.held.clear();
    }
    json entry = {{"index", index},
                  {"logprobs", nullptr},
                  {"finish_reason", finish_name(choice, tool_calls)}};
    if (spec_.chat) {
        entry["delta"] = json::object();
    } else {
        entry["text"] = "";
    }
    *out += sse(chunk(json::array({entry})));
}

std::string GenerationJob::finish_name(const Choice& choice, bool has_tool_calls) const {
    if (has_tool_calls) {
        return "tool_calls";
    }
    return choice.finish ? openai_finish_reason(*choice.finish) : "stop";
}

bool GenerationJob::pump(httplib::DataSink& sink, std::chrono::milliseconds wait) {
    std::string out;
    if (!started_stream_) {
        started_stream_ = true;
        for (size_t i = 0; i < choices_.size(); ++i) {
            json entry = {{"index", i}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
            const std::string& echo = spec_.echo.empty() ? std::string() :
                                      spec_.echo[i / static_cast<size_t>(spec_.n)];
            if (spec_.chat) {
                entry["delta"] = {{"role", "assistant"}, {"content", ""}};
            } else if (!echo.empty()) {
                entry["text"] = echo;
            } else {
                continue;
            }
            out += sse(chunk(json::array({entry})));
        }
    }
    bool waited = false;
    for (size_t i = 0; i < handles_.size(); ++i) {
        if (handle_done_[i]) {
            continue;
        }
        inference::StreamEvent event;
        while (true) {
            auto poll = handles_[i].next(&event, waited ? std::chrono::milliseconds(0) : wait);
            waited = true;
            if (poll == inference::RequestHandle::Poll::kEvent) {
                absorb(i, std::move(event), &out);
                continue;
            }
            if (poll == inference::RequestHandle::Poll::kFinished) {
                handle_done_[i] = true;
                const inference::Usage usage = handles_[i].usage();
                usage_.prompt_tokens += usage.prompt_tokens;
                usage_.completion_tokens += usage.completion_tokens;
                usage_.cached_tokens += usage.cached_tokens;
                if (status_.ok() && !handles_[i].status().ok()) {
                    status_ = handles_[i].status();
                }
            }
            break;
        }
    }
    const bool all_done = std::all_of(handle_done_.begin(), handle_done_.end(),
                                      [](bool done) { return done; });
    if (all_done) {
        if (!status_.ok()) {
            const int http = http_status_for(status_.code());
            out += sse(error_envelope(http, status_code_name(status_.code()), status_.message(),
                                      spec_.request_id));
        } else if (spec_.include_usage) {
            json last = chunk(json::array());
            last["usage"] = usage_json();
            out += sse(last);
        }
        out += "data: [DONE]\n\n";
    }
    if (out.empty() && Clock::now() - last_write_ > kKeepAlive) {
        out = ": keep-alive\n\n";
    }
    if (!out.empty()) {
        if (!sink.is_writable() || !sink.write(out.data(), out.size())) {
            for (auto& handle : handles_) {
                handle.cancel();
            }
            return false;
        }
        last_write_ = Clock::now();
    }
    if (all_done) {
        sink.done();
        done_ = true;
    }
    return true;
}

json GenerationJob::chunk(json choices) const {
    json value = {{"id", id_},
                  {"object", spec_.chat ? "chat.completion.chunk" : "text_completion"},
                  {"created", created_},
                  {"model", spec_.model},
                  {"system_fingerprint", nullptr},
                  {"choices", std::move(choices)}};
    if (spec_.include_usage) {
        value["usage"] = nullptr;
    }
    return value;
}

json GenerationJob::usage_json() const {
    return {{"prompt_tokens", usage_.prompt_tokens},
            {"completion_tokens", usage_.completion_tokens},
            {"total_tokens", usage_.prompt_tokens + usage_.completion_tokens},
            {"prompt_tokens_details", {{"cached_tokens", usage_.cached_tokens}}}};
}

json GenerationJob::logprobs_json(const std::vector<inference::SampledToken>& tokens,
                                  size_t text_offset) const {
    const inference::Tokenizer* tokenizer = engine_->tokenizer();
    auto text_of = [&](int32_t id) {
        auto bytes = tokenizer != nullptr ? tokenizer->token_bytes(id) : std::nullopt;
        return bytes ? std::string(*bytes) : std::string();
    };
    auto byte_list = [](const std::string& text) {
        json bytes = json::array();
        for (unsigned char c : text) {
            bytes.push_back(static_cast<int>(c));
        }
        return bytes;
    };
    if (spec_.chat) {
        json content = json::array();
        for (const auto& token : tokens) {
            json top = json::array();
            for (size_t k = 0; k < token.top.size() &&
                               k < static_cast<size_t>(spec_.top_logprobs); ++k) {
                const std::string text = text_of(token.top[k].id);
                top.push_back({{"token", text},
                               {"logprob", token.top[k].logprob},
                               {"bytes", byte_list(text)}});
            }
            const std::string text = text_of(token.id);
            content.push_back({{"token", text},
                               {"logprob", token.logprob},
                               {"bytes", byte_list(text)},
                               {"top_logprobs", top}});
        }
        return content;
    }
    json legacy = {{"tokens", json::array()},
                   {"token_logprobs", json::array()},
                   {"top_logprobs", json::array()},
                   {"text_offset", json::array()}};
    for (const auto& token : tokens) {
        const std::string text = text_of(token.id);
        legacy["tokens"].push_back(text);
        legacy["token_logprobs"].push_back(token.logprob);
        json top = json::object();
        for (size_t k = 0; k < token.top.size() && k < static_cast<size_t>(spec_.top_logprobs);
             ++k) {
            top[text_of(token.top[k].id)] = token.top[k].logprob;
        }
        legacy["top_logprobs"].push_back(top);
        legacy["text_offset"].push_back(text_offset);
        text_offset += text.size();
    }
    return legacy;
}

json GenerationJob::response() const {
    json choices = json::array();
    for (size_t i = 0; i < choices_.size(); ++i) {
        const Choice& choice = choices_[i];
        if (spec_.chat) {
            json message = {{"role", "assistant"}, {"content", choice.text}};
            bool tool_calls = false;
            if (spec_.use_tools) {
                ParsedToolCalls parsed = parse_tool_calls(choice.text, spec_.tools);
                if (!parsed.calls.empty()) {
                    if (!spec_.parallel_tool_calls) {
                        parsed.calls.resize(1);
                    }
                    tool_calls = true;
                    message["content"] = parsed.content.empty() ? json(nullptr)
                                                                : json(parsed.content);
                    message["tool_calls"] = json::array();
                    for (const auto& call : parsed.calls) {
                        message["tool_calls"].push_back(
                            {{"id", call.id},
                             {"type", "function"},
                             {"function",
                              {{"name", call.name}, {"arguments", call.arguments.dump()}}}});
                    }
                }
            }
            choices.push_back(
                {{"index", i},
                 {"message", message},
                 {"logprobs", spec_.logprobs ? json{{"content", logprobs_json(choice.tokens, 0)}}
                                             : json(nullptr)},
                 {"finish_reason", finish_name(choice, tool_calls)}});
            continue;
        }
        const std::string& echo = spec_.echo[i / static_cast<size_t>(spec_.n)];
        choices.push_back(
            {{"index", i},
             {"text", echo + choice.text},
             {"logprobs", spec_.logprobs ? logprobs_json(choice.tokens, echo.size())
                                         : json(nullptr)},
             {"finish_reason", finish_name(choice, false)}});
    }
    return {{"id", id_},
            {"object", spec_.chat ? "chat.completion" : "text_completion"},
            {"created", created_},
            {"model", spec_.model},
            {"system_fingerprint", nullptr},
            {"choices", choices},
            {"usage", usage_json()}};
}

}  // namespace sluice::app
