#include "app/tool_call_stream.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "app/tool_calls.h"

namespace sluice::app {
namespace {

constexpr std::string_view kArgumentsKey = "\"arguments\"";
// A header longer than this without its "arguments" key is not the call format.
constexpr size_t kMaxHeader = 512;

// Length of the longest suffix of `text` that is a proper prefix of `marker`.
size_t partial_marker(std::string_view text, std::string_view marker) {
    for (size_t n = std::min(text.size(), marker.size() - 1); n > 0; --n) {
        if (text.substr(text.size() - n) == marker.substr(0, n)) {
            return n;
        }
    }
    return 0;
}

bool all_space(std::string_view text) {
    return std::all_of(text.begin(), text.end(),
                       [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
}

}  // namespace

ToolCallStreamer::ToolCallStreamer(std::span<const inference::ToolDefinition> tools,
                                   bool parallel)
    : tools_(tools), parallel_(parallel) {}

bool ToolCallStreamer::known(const std::string& name) const {
    return std::any_of(tools_.begin(), tools_.end(),
                       [&](const inference::ToolDefinition& tool) { return tool.name == name; });
}

ToolStreamPiece ToolCallStreamer::push(std::string_view text) {
    ToolStreamPiece piece;
    buffer_.append(text);
    step(piece);
    return piece;
}

ToolStreamPiece ToolCallStreamer::finish() {
    ToolStreamPiece piece;
    if (state_ == State::kContent) {
        if (next_index_ == 0 || !all_space(buffer_)) {
            piece.content = std::move(buffer_);
        }
    } else if (state_ == State::kHeader) {
        piece.content = call_text_ + buffer_;
    }
    // A call cut short (kArguments, kTail) was streamed as far as it went.
    buffer_.clear();
    call_text_.clear();
    state_ = State::kContent;
    return piece;
}

void ToolCallStreamer::step(ToolStreamPiece& piece) {
    while (true) {
        switch (state_) {
            case State::kContent: {
                const size_t marker = buffer_.find(kToolCallOpen);
                const size_t release = marker != std::string::npos
                                           ? marker
                                           : buffer_.size() - partial_marker(buffer_, kToolCallOpen);
                std::string_view text(buffer_.data(), release);
                // Between calls only whitespace is expected; it is not content.
                if (next_index_ == 0 || !all_space(text)) {
                    piece.content.append(text);
                }
                if (marker == std::string::npos) {
                    buffer_.erase(0, release);
                    return;
                }
                call_text_ = std::string(kToolCallOpen);
                buffer_.erase(0, marker + kToolCallOpen.size());
                state_ = State::kHeader;
                break;
            }
            case State::kHeader: {
                const size_t key = buffer_.find(kArgumentsKey);
                const bool closed = buffer_.find(kToolCallClose) != std::string::npos;
                if (key == std::string::npos && !closed && buffer_.size() <= kMaxHeader) {
                    return;  // wait for more
                }
                size_t colon = std::string::npos;
                if (key != std::string::npos) {
                    colon = buffer_.find_first_not_of(" \t\r\n", key + kArgumentsKey.size());
                    if (colon == std::string::npos) {
                        return;  // the key's colon has not arrived yet
                    }
                }
                std::string header = buffer_.substr(0, key == std::string::npos ? 0 : key);
                while (!header.empty() && (header.back() == ',' || header.back() == ' ' ||
                                           header.back() == '\n' || header.back() == '\t')) {
                    header.pop_back();
                }
                auto parsed = nlohmann::json::parse(header + "}", nullptr, false);
                const bool ok = key != std::string::npos && buffer_[colon] == ':' &&
                                !parsed.is_discarded() && parsed.is_object() &&
                                parsed.contains("name") && parsed["name"].is_string() &&
                                known(parsed["name"].get<std::string>());
                if (!ok) {
                    // Not a call: what was held is content after all.
                    piece.content += call_text_ + buffer_;
                    call_text_.clear();
                    buffer_.clear();
                    state_ = State::kContent;
                    return;
                }
                buffer_.erase(0, colon + 1);
                call_text_.clear();
                if (!parallel_ && next_index_ > 0) {
                    state_ = State::kDropped;
                    break;
                }
                ToolCallDelta delta;
                delta.index = next_index_++;
                delta.first = true;
                delta.id = fresh_id("call_");
                delta.name = parsed["name"].get<std::string>();
                piece.calls.push_back(std::move(delta));
                depth_ = 0;
                in_string_ = false;
                escape_ = false;
                state_ = State::kArguments;
                break;
            }
            case State::kArguments: {
                std::string fragment;
                size_t at = 0;
                bool ended = false;
                for (; at < buffer_.size() && !ended; ++at) {
                    const char c = buffer_[at];
                    if (depth_ == 0) {
                        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
                            continue;  // before the value
                        }
                        if (c == '"') {
                            state_ = State::kStringArguments;
                            in_string_ = true;
                            escape_ = false;
                            call_text_.assign(1, '"');
                            ++at;
                            break;
                        }
                        if (c != '{') {
                            state_ = State::kTail;  // not an object: the grammar rules it out
                            break;
                        }
                    }
                    fragment += c;
                    if (in_string_) {
                        if (escape_) {
                            escape_ = false;
                        } else if (c == '\\') {
                            escape_ = true;
                        } else if (c == '"') {
                            in_string_ = false;
                        }
                    } else if (c == '"') {
                        in_string_ = true;
                    } else if (c == '{' || c == '[') {
                        ++depth_;
                    } else if (c == '}' || c == ']') {
                        ended = --depth_ == 0;
                    }
                }
                buffer_.erase(0, at);
                if (!fragment.empty()) {
                    ToolCallDelta delta;
                    delta.index = next_index_ - 1;
                    delta.arguments = std::move(fragment);
                    piece.calls.push_back(std::move(delta));
                }
                if (ended) {
                    state_ = State::kTail;
                }
                if (state_ == State::kArguments) {
                    return;
                }
                break;
            }
            case State::kStringArguments: {
                // Arguments given as a JSON string holding the object: sent once decoded.
                size_t at = 0;
                bool ended = false;
                for (; at < buffer_.size() && !ended; ++at) {
                    const char c = buffer_[at];
                    call_text_ += c;
                    if (escape_) {
                        escape_ = false;
                    } else if (c == '\\') {
                        escape_ = true;
                    } else if (c == '"') {
                        ended = true;
                    }
                }
                buffer_.erase(0, at);
                if (!ended) {
                    return;
                }
                auto decoded = nlohmann::json::parse(call_text_, nullptr, false);
                call_text_.clear();
                if (!decoded.is_discarded() && decoded.is_string()) {
                    ToolCallDelta delta;
                    delta.index = next_index_ - 1;
                    delta.arguments = decoded.get<std::string>();
                    piece.calls.push_back(std::move(delta));
                }
                state_ = State::kTail;
                break;
            }
            case State::kTail:
            case State::kDropped: {
                const size_t close = buffer_.find(kToolCallClose);
                if (close == std::string::npos) {
                    // Keep only what could still begin the close marker.
                    buffer_.erase(0, buffer_.size() - partial_marker(buffer_, kToolCallClose));
                    return;
                }
                buffer_.erase(0, close + kToolCallClose.size());
                state_ = State::kContent;
                break;
            }
        }
    }
}

ToolCallAnswer read_tool_calls(std::string_view text,
                               std::span<const inference::ToolDefinition> tools, bool parallel) {
    ToolCallStreamer streamer(tools, parallel);
    ToolCallAnswer answer;
    auto take = [&answer](ToolStreamPiece piece) {
        answer.content += piece.content;
        for (ToolCallDelta& delta : piece.calls) {
            if (delta.first) {
                answer.calls.push_back({std::move(delta.id), std::move(delta.name), ""});
            } else {
                answer.calls[static_cast<size_t>(delta.index)].arguments += delta.arguments;
            }
        }
    };
    take(streamer.push(text));
    take(streamer.finish());
    if (!answer.calls.empty()) {
        while (!answer.content.empty() &&
               std::isspace(static_cast<unsigned char>(answer.content.back()))) {
            answer.content.pop_back();
        }
    }
    return answer;
}

}  // namespace sluice::app
