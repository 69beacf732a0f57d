#include "app/openai_generation.h"

#include <algorithm>

#include "app/http_errors.h"
#include "app/http_server.h"
#include "app/tool_calls.h"
#include "common/log.h"

namespace sluice::app {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// SSE comments keep idle streams alive and reveal a vanished client (the write fails).
constexpr auto kKeepAlive = std::chrono::seconds(1);

std::string sse(const json& value) {
    return "data: " + value.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
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

GenerationJob::~GenerationJob() {
    if (call_ == nullptr || call_->finished()) {
        return;  // unfinished handles cancel themselves
    }
    // The client went away (or the request failed) before the end: cancel what runs, read the
    // tokens it used, and bill them, so that no reservation outlives the request.
    for (size_t i = 0; i < handles_.size(); ++i) {
        if (!handle_done_[i]) {
            handles_[i].cancel();
        }
    }
    const auto deadline = Clock::now() + std::chrono::seconds(5);
    for (size_t i = 0; i < handles_.size(); ++i) {
        inference::StreamEvent event;
        while (!handle_done_[i] && Clock::now() < deadline) {
            if (handles_[i].next(&event, std::chrono::milliseconds(100)) ==
                inference::RequestHandle::Poll::kFinished) {
                handle_done_[i] = true;
                add_usage(i);
            }
        }
    }
    Status settled = call_->finish(usage_, "cancelled");
    if (!settled.ok()) {
        log::error("openai", "cannot bill an abandoned model call",
                   {{"request_id", spec_.request_id}, {"error", settled.message()}});
    }
}

Result<std::unique_ptr<GenerationJob>> GenerationJob::start(
    std::shared_ptr<inference::Engine> engine, GenerationSpec spec,
    std::vector<inference::EngineRequest> requests, std::unique_ptr<ModelCall> call,
    StreamRegistry* streams) {
    auto job = std::make_unique<GenerationJob>(Private{}, std::move(engine), std::move(spec));
    job->call_ = std::move(call);
    job->choices_.resize(requests.size() * static_cast<size_t>(job->spec_.n));
    if (job->spec_.stream) {
        for (Choice& choice : job->choices_) {
            if (job->call_ != nullptr) {
                SLUICE_ASSIGN_OR_RETURN(governance::OutputGuard guard, job->call_->stream_guard());
                choice.guard.emplace(std::move(guard));
            }
            if (job->spec_.use_tools) {
                choice.tool_stream.emplace(job->spec_.tools, job->spec_.parallel_tool_calls);
            }
        }
        if (streams != nullptr) {
            job->stream_ticket_ = streams->enter();
        }
    }
    // Each prompt is one engine request, all queued at once: more than the queue holds could
    // never be accepted, and a 429 would have the client retry for ever.
    if (requests.size() > static_cast<size_t>(std::max(job->engine_->max_queued(), 1))) {
        return invalid_argument("at most " + std::to_string(job->engine_->max_queued()) +
                                " prompts per request (the engine queues that many: "
                                "/model/max_queued_requests), found " +
                                std::to_string(requests.size()));
    }
    for (inference::EngineRequest& request : requests) {
        SLUICE_ASSIGN_OR_RETURN(inference::RequestHandle handle,
                                job->engine_->submit(std::move(request)));
        job->handles_.push_back(std::move(handle));
        job->handle_done_.push_back(false);
    }
    job->prompt_scores_.resize(job->handles_.size());
    job->echo_sent_.assign(job->handles_.size(), false);
    return job;
}

void GenerationJob::add_usage(size_t handle) {
    const inference::Usage usage = handles_[handle].usage();
    usage_.prompt_tokens += usage.prompt_tokens;
    usage_.completion_tokens += usage.completion_tokens;
    usage_.cached_tokens += usage.cached_tokens;
}

void GenerationJob::settle(const std::string& outcome) {
    if (call_ == nullptr) {
        return;
    }
    Status settled = call_->finish(usage_, outcome);
    if (!settled.ok() && status_.ok()) {
        status_ = settled;
    }
}

Status GenerationJob::collect(const std::function<bool()>& client_gone) {
    constexpr auto kProbeEvery = std::chrono::milliseconds(500);
    auto last_probe = Clock::now();
    bool abandoned = false;
    for (size_t i = 0; i < handles_.size(); ++i) {
        inference::StreamEvent event;
        while (true) {
            auto poll = handles_[i].next(&event, kProbeEvery);
            if (poll == inference::RequestHandle::Poll::kEvent) {
                absorb(i, std::move(event), nullptr);
            } else if (poll == inference::RequestHandle::Poll::kFinished) {
                break;
            }
            if (client_gone && !abandoned && Clock::now() - last_probe >= kProbeEvery) {
                last_probe = Clock::now();
                if (client_gone()) {
                    // Cancelled requests still end with their usage (billed as used).
                    abandoned = true;
                    for (auto& handle : handles_) {
                        handle.cancel();
                    }
                    status_ = Status(StatusCode::kCancelled,
                                     "the client closed its connection before the answer");
                }
            }
        }
        handle_done_[i] = true;
        take_prompt_scores(i);
        add_usage(i);
        if (status_.ok() && !handles_[i].status().ok()) {
            status_ = handles_[i].status();
        }
    }
    if (call_ != nullptr && status_.ok()) {
        // The output guardrail sees each answer whole, as the client would (echo included).
        for (size_t i = 0; i < choices_.size() && status_.ok(); ++i) {
            Choice& choice = choices_[i];
            const std::string echo =
                spec_.chat ? std::string() : spec_.echo[i / static_cast<size_t>(spec_.n)];
            auto shown = call_->guard_output(echo + choice.text);
            if (!shown.ok()) {
                status_ = shown.status();
                break;
            }
            choice.shown = std::move(*shown);
        }
    }
    settle(status_.ok() ? "ok" : (abandoned ? "cancelled" : "error"));
    done_ = true;
    return status_;
}

void GenerationJob::take_prompt_scores(size_t prompt) {
    if (spec_.echo_logprobs && !prompt_scores_[prompt]) {
        prompt_scores_[prompt] = handles_[prompt].prompt_logprobs();
    }
}

void GenerationJob::emit_echo(size_t prompt, std::string* out) {
    if (echo_sent_[prompt] || spec_.echo.empty() || spec_.echo[prompt].empty()) {
        return;
    }
    echo_sent_[prompt] = true;
    for (int32_t j = 0; j < spec_.n && !failed_; ++j) {
        const size_t index = prompt * static_cast<size_t>(spec_.n) + static_cast<size_t>(j);
        std::string echo = spec_.echo[prompt];
        if (choices_[index].guard) {
            auto passed = choices_[index].guard->push(echo);
            if (!passed.ok()) {
                fail_stream(passed.status());
                return;
            }
            echo = std::move(*passed);
        }
        *out += sse(chunk(json::array(
            {{{"index", index},
              {"text", echo},
              {"logprobs", spec_.echo_logprobs ? prompt_logprobs_json(prompt) : json(nullptr)},
              {"finish_reason", nullptr}}})));
    }
}

void GenerationJob::absorb(size_t prompt, inference::StreamEvent event, std::string* out) {
    // The engine scores a prompt before its first event: the echo goes out ahead of the text.
    take_prompt_scores(prompt);
    if (out != nullptr && !failed_) {
        emit_echo(prompt, out);
    }
    const size_t index = prompt * static_cast<size_t>(spec_.n) + static_cast<size_t>(event.choice);
    Choice& choice = choices_[index];
    const size_t offset = choice.text.size();
    choice.text += event.text;
    choice.tokens.insert(choice.tokens.end(), event.tokens.begin(), event.tokens.end());
    if (event.finish) {
        choice.finish = event.finish;
    }
    if (out == nullptr || failed_ || choice.stream_finished) {
        return;
    }
    std::string visible = std::move(event.text);
    if (choice.guard) {
        auto passed = choice.guard->push(visible);
        if (!passed.ok()) {
            fail_stream(passed.status());
            return;
        }
        visible = std::move(*passed);
    }
    emit_text(index, std::move(visible), event.tokens, spec_.echo.empty() ? offset :
              spec_.echo[prompt].size() + offset, out);
    if (event.finish) {
        finish_stream_choice(index, out);
    }
}

void GenerationJob::emit_text(size_t index, std::string text,
                              const std::vector<inference::SampledToken>& tokens,
                              size_t text_offset, std::string* out) {
    Choice& choice = choices_[index];
    std::vector<ToolCallDelta> calls;
    if (choice.tool_stream) {
        ToolStreamPiece piece = choice.tool_stream->push(text);
        text = std::move(piece.content);
        calls = std::move(piece.calls);
    }
    const bool with_logprobs = spec_.logprobs && !tokens.empty();
    if (!text.empty() || with_logprobs) {
        json entry = {{"index", index}, {"finish_reason", nullptr}};
        if (spec_.chat) {
            entry["delta"] = {{"content", text}};
            entry["logprobs"] = with_logprobs ? json{{"content", logprobs_json(tokens, 0)}}
                                              : json(nullptr);
        } else {
            entry["text"] = text;
            entry["logprobs"] = with_logprobs ? logprobs_json(tokens, text_offset) : json(nullptr);
        }
        *out += sse(chunk(json::array({entry})));
    }
    for (ToolCallDelta& delta : calls) {
        json call = {{"index", delta.index}};
        if (delta.first) {
            call["id"] = delta.id;
            call["type"] = "function";
            call["function"] = {{"name", delta.name}, {"arguments", ""}};
        } else {
            call["function"] = {{"arguments", delta.arguments}};
        }
        *out += sse(chunk(json::array({{{"index", index},
                                        {"delta", {{"tool_calls", json::array({call})}}},
                                        {"logprobs", nullptr},
                                        {"finish_reason", nullptr}}})));
    }
}

void GenerationJob::fail_stream(Status status) {
    failed_ = true;
    if (status_.ok()) {
        status_ = std::move(status);
    }
    for (size_t i = 0; i < handles_.size(); ++i) {
        if (!handle_done_[i]) {
            handles_[i].cancel();
        }
    }
}

void GenerationJob::finish_stream_choice(size_t index, std::string* out) {
    Choice& choice = choices_[index];
    choice.stream_finished = true;
    if (choice.guard) {
        auto rest = choice.guard->finish();
        if (!rest.ok()) {
            fail_stream(rest.status());
            return;
        }
        emit_text(index, std::move(*rest), {}, 0, out);
    }
    bool tool_calls = false;
    if (choice.tool_stream) {
        ToolStreamPiece piece = choice.tool_stream->finish();
        if (!piece.content.empty()) {
            *out += sse(chunk(json::array({{{"index", index},
                                            {"delta", {{"content", piece.content}}},
                                            {"logprobs", nullptr},
                                            {"finish_reason", nullptr}}})));
        }
        tool_calls = choice.tool_stream->calls() > 0;
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
    // A call cut short by max_tokens is "length", as OpenAI says: its arguments are incomplete.
    if (has_tool_calls && choice.finish != inference::FinishReason::kLength) {
        return "tool_calls";
    }
    return choice.finish ? openai_finish_reason(*choice.finish) : "stop";
}

bool GenerationJob::pump(httplib::DataSink& sink, std::chrono::milliseconds wait) {
    std::string out;
    if (!started_stream_) {
        started_stream_ = true;
        for (size_t i = 0; i < choices_.size() && spec_.chat; ++i) {
            out += sse(chunk(json::array({{{"index", i},
                                           {"delta", {{"role", "assistant"}, {"content", ""}}},
                                           {"logprobs", nullptr},
                                           {"finish_reason", nullptr}}})));
        }
        // An echo with logprobs waits for the prompt's scores (absorb()).
        for (size_t p = 0; p < handles_.size() && !spec_.chat && !spec_.echo_logprobs; ++p) {
            emit_echo(p, &out);
        }
    }
    if (!ending_ && !failed_ && stream_ticket_.ending()) {
        // The server stops soon: end cleanly rather than be cut.
        ending_ = true;
        for (size_t i = 0; i < handles_.size(); ++i) {
            if (!handle_done_[i]) {
                handles_[i].cancel();
            }
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
                add_usage(i);
                const Status& ended = handles_[i].status();
                const bool ours = (ending_ || failed_) && ended.code() == StatusCode::kCancelled;
                if (status_.ok() && !ended.ok() && !ours) {
                    status_ = ended;
                }
            }
            break;
        }
    }
    const bool all_done = std::all_of(handle_done_.begin(), handle_done_.end(),
                                      [](bool done) { return done; });
    if (all_done) {
        if (ending_ && status_.ok()) {
            for (size_t i = 0; i < choices_.size() && !failed_; ++i) {
                if (!choices_[i].stream_finished) {
                    choices_[i].finish = inference::FinishReason::kLength;
                    finish_stream_choice(i, &out);
                }
            }
        }
        settle(status_.ok() ? "ok" : (failed_ ? "error" : "cancelled"));
        // The usage chunk comes on failures too (before the error): the tokens generated
        // until then are counted and billed, and the client asked to see them.
        if (spec_.include_usage) {
            json last = chunk(json::array());
            last["usage"] = usage_json();
            out += sse(last);
        }
        if (!status_.ok()) {
            const int http = http_status_for(status_.code());
            out += sse(error_envelope(http, status_code_name(status_.code()), status_.message(),
                                      spec_.request_id));
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
        count_streamed_bytes(out.size());
        last_write_ = Clock::now();
    }
    if (all_done) {
        sink.done();
        done_ = true;
        // During a shutdown the connection is not kept alive for another request: false makes
        // httplib close it once the (complete) response is out.
        return !stream_ticket_.draining();
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

std::string GenerationJob::token_text(int32_t id) const {
    const inference::Tokenizer* tokenizer = engine_->tokenizer();
    auto bytes = tokenizer != nullptr ? tokenizer->token_bytes(id) : std::nullopt;
    return bytes ? std::string(*bytes) : std::string();
}

json GenerationJob::prompt_logprobs_json(size_t prompt) const {
    json legacy = {{"tokens", json::array()},
                   {"token_logprobs", json::array()},
                   {"top_logprobs", json::array()},
                   {"text_offset", json::array()}};
    const std::vector<int32_t>& ids = spec_.prompt_ids[prompt];
    static const std::vector<inference::SampledToken> kNone;
    const auto& scores = prompt_scores_[prompt] ? *prompt_scores_[prompt] : kNone;
    size_t text_offset = 0;
    for (size_t i = 0; i < ids.size(); ++i) {
        const std::string text = token_text(ids[i]);
        legacy["tokens"].push_back(text);
        legacy["text_offset"].push_back(text_offset);
        text_offset += text.size();
        // Score i - 1 is token i's, given the tokens before it.
        if (i == 0 || i - 1 >= scores.size()) {
            legacy["token_logprobs"].push_back(nullptr);
            legacy["top_logprobs"].push_back(nullptr);
            continue;
        }
        const inference::SampledToken& score = scores[i - 1];
        legacy["token_logprobs"].push_back(score.logprob);
        json top = json::object();
        for (const auto& alternative : score.top) {
            top[token_text(alternative.id)] = alternative.logprob;
        }
        legacy["top_logprobs"].push_back(top);
    }
    return legacy;
}

json GenerationJob::choice_logprobs_json(size_t index) const {
    const size_t prompt = index / static_cast<size_t>(spec_.n);
    json own = logprobs_json(choices_[index].tokens, spec_.echo[prompt].size());
    if (!spec_.echo_logprobs) {
        return own;
    }
    json all = prompt_logprobs_json(prompt);
    for (const char* key : {"tokens", "token_logprobs", "top_logprobs", "text_offset"}) {
        for (auto& value : own[key]) {
            all[key].push_back(std::move(value));
        }
    }
    return all;
}

json GenerationJob::logprobs_json(const std::vector<inference::SampledToken>& tokens,
                                  size_t text_offset) const {
    auto text_of = [&](int32_t id) { return token_text(id); };
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
            const std::string& text = choice.shown ? *choice.shown : choice.text;
            json message = {{"role", "assistant"}, {"content", text}};
            bool tool_calls = false;
            if (spec_.use_tools) {
                ToolCallAnswer answer =
                    read_tool_calls(text, spec_.tools, spec_.parallel_tool_calls);
                if (!answer.calls.empty()) {
                    tool_calls = true;
                    message["content"] =
                        answer.content.empty() ? json(nullptr) : json(answer.content);
                    message["tool_calls"] = json::array();
                    for (const auto& call : answer.calls) {
                        message["tool_calls"].push_back(
                            {{"id", call.id},
                             {"type", "function"},
                             {"function", {{"name", call.name}, {"arguments", call.arguments}}}});
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
        choices.push_back({{"index", i},
                           {"text", choice.shown ? *choice.shown : echo + choice.text},
                           {"logprobs", spec_.logprobs ? choice_logprobs_json(i) : json(nullptr)},
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
