#include "agents/scripted_chat_model.h"


namespace sluice::agents {

using nlohmann::json;

void split_tool_calls(const std::string& text, std::string* content,
                      std::vector<inference::ToolCall>* calls) {
    static constexpr std::string_view kOpen = "<tool_call>";
    static constexpr std::string_view kClose = "</tool_call>";
    std::string kept;
    size_t at = 0;
    while (at < text.size()) {
        size_t open = text.find(kOpen, at);
        if (open == std::string::npos) {
            kept += text.substr(at);
            break;
        }
        size_t close = text.find(kClose, open);
        if (close == std::string::npos) {
            kept += text.substr(at);
            break;
        }
        std::string inner = text.substr(open + kOpen.size(), close - open - kOpen.size());
        json call = json::parse(inner, nullptr, false);
        json arguments = call.is_object() ? call.value("arguments", json()) : json();
        if (arguments.is_string()) {
            arguments = json::parse(arguments.get<std::string>(), nullptr, false);
        }
        if (call.is_object() && call.contains("name") && call["name"].is_string() &&
            arguments.is_object()) {
            kept += text.substr(at, open - at);
            calls->push_back({"call_" + std::to_string(calls->size() + 1),
                              call["name"].get<std::string>(), arguments});
        } else {
            kept += text.substr(at, close + kClose.size() - at);
        }
        at = close + kClose.size();
    }
    while (!kept.empty() && (kept.back() == ' ' || kept.back() == '\n')) {
        kept.pop_back();
    }
    *content = std::move(kept);
}

Result<std::unique_ptr<ScriptedChatModel>> ScriptedChatModel::make(const json& script,
                                                                   bool repeat_last) {
    if (!script.is_array() || script.empty()) {
        return invalid_argument("script: expected a non-empty array of turns");
    }
    std::vector<ModelReply> turns;
    for (size_t i = 0; i < script.size(); ++i) {
        const json& turn = script[i];
        std::string where = "script[" + std::to_string(i) + "]";
        if (!turn.is_object()) {
            return invalid_argument(where + ": expected an object");
        }
        ModelReply reply;
        if (turn.contains("content")) {
            if (!turn["content"].is_string()) {
                return invalid_argument(where + ".content: expected a string");
            }
            split_tool_calls(turn["content"].get<std::string>(), &reply.text, &reply.calls);
        }
        for (const json& call : turn.value("tool_calls", json::array())) {
            if (!call.is_object() || !call.contains("name") || !call["name"].is_string()) {
                return invalid_argument(where + ".tool_calls: each needs a string name");
            }
            reply.calls.push_back({"call_" + std::to_string(reply.calls.size() + 1),
                                   call["name"].get<std::string>(),
                                   call.value("arguments", json::object())});
        }
        turns.push_back(std::move(reply));
    }
    return std::make_unique<ScriptedChatModel>(std::move(turns), repeat_last);
}

ScriptedChatModel::ScriptedChatModel(std::vector<ModelReply> turns, bool repeat_last)
    : turns_(std::move(turns)), repeat_last_(repeat_last) {}

std::int64_t ScriptedChatModel::count_tokens(std::string_view text) const {
    std::int64_t words = 0;
    bool in_word = false;
    for (char c : text) {
        bool space = c == ' ' || c == '\n' || c == '\t';
        words += (!space && !in_word) ? 1 : 0;
        in_word = !space;
    }
    return words;
}

Result<ModelReply> ScriptedChatModel::complete(const ModelRequest& request) {
    ModelReply reply;
    {
        std::lock_guard lock(mutex_);
        requests_.push_back(request);
        size_t turn = next_++;
        if (turn >= turns_.size() && !repeat_last_) {
            return failed_precondition("the script has no turn " + std::to_string(turn + 1) +
                                       " (it has " + std::to_string(turns_.size()) + ")");
        }
        reply = turns_[std::min(turn, turns_.size() - 1)];
    }
    for (const auto& message : request.messages) {
        reply.prompt_tokens += count_tokens(message.content) + 4;
    }
    // A turn's text ends at its max_tokens, as a model's generation does (a word a token).
    if (count_tokens(reply.text) > request.max_tokens) {
        size_t words = 0;
        size_t end = 0;
        bool in_word = false;
        for (; end < reply.text.size(); ++end) {
            const char c = reply.text[end];
            const bool space = c == ' ' || c == '\n' || c == '\t';
            if (!space && !in_word && ++words > static_cast<size_t>(request.max_tokens)) {
                break;
            }
            in_word = !space;
        }
        while (end > 0 && (reply.text[end - 1] == ' ' || reply.text[end - 1] == '\n' ||
                           reply.text[end - 1] == '\t')) {
            --end;  // the blanks before the first word left out
        }
        reply.text.resize(end);
    }
    reply.completion_tokens = count_tokens(reply.text);
    for (const auto& call : reply.calls) {
        reply.completion_tokens += count_tokens(call.arguments.dump()) + 4;
    }
    if (request.on_text && !reply.text.empty()) {
        // Word by word, as a model would stream it; the pieces join to the reply text.
        // A stop requested meanwhile (the sink may request it) cuts the reply there, as the
        // engine cancels a request: the words so far are what was spent.
        size_t begin = 0;
        while (begin < reply.text.size()) {
            if (request.stop.stop_requested()) {
                reply.cancelled = true;
                reply.text.resize(begin);
                reply.calls.clear();
                reply.completion_tokens = count_tokens(reply.text);
                break;
            }
            size_t space = reply.text.find(' ', begin + 1);
            size_t end = space == std::string::npos ? reply.text.size() : space;
            request.on_text(std::string_view(reply.text).substr(begin, end - begin));
            begin = end;
        }
    }
    return reply;
}

std::vector<ModelRequest> ScriptedChatModel::requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
}

size_t ScriptedChatModel::calls() const {
    std::lock_guard lock(mutex_);
    return next_;
}

}  // namespace sluice::agents
