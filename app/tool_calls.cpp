#include "app/tool_calls.h"

#include <random>

#include <nlohmann/json.hpp>

namespace sluice::app {

std::string fresh_id(std::string_view prefix) {
    thread_local std::mt19937_64 generator{std::random_device{}()};
    static constexpr char kHex[] = "0123456789abcdef";
    std::string id(prefix);
    for (int part = 0; part < 2; ++part) {
        uint64_t bits = generator();
        for (int i = 0; i < 12; ++i) {
            id += kHex[(bits >> (4 * i)) & 0xf];
        }
    }
    return id;
}

ParsedToolCalls parse_tool_calls(std::string_view text,
                                 std::span<const inference::ToolDefinition> tools) {
    ParsedToolCalls out;
    const size_t first = text.find(kToolCallOpen);
    if (first == std::string_view::npos || tools.empty()) {
        out.content = std::string(text);
        return out;
    }
    auto known = [&](const std::string& name) {
        return std::any_of(tools.begin(), tools.end(),
                           [&](const inference::ToolDefinition& tool) { return tool.name == name; });
    };
    size_t at = first;
    while (at != std::string_view::npos) {
        const size_t body = at + kToolCallOpen.size();
        const size_t close = text.find(kToolCallClose, body);
        if (close == std::string_view::npos) {
            return {std::string(text), {}};
        }
        auto call = nlohmann::json::parse(text.substr(body, close - body), nullptr, false);
        if (call.is_discarded() || !call.is_object() || !call.contains("name") ||
            !call["name"].is_string() || !known(call["name"].get<std::string>())) {
            return {std::string(text), {}};
        }
        nlohmann::json arguments = call.value("arguments", nlohmann::json::object());
        if (arguments.is_string()) {
            arguments = nlohmann::json::parse(arguments.get<std::string>(), nullptr, false);
        }
        if (!arguments.is_object()) {
            return {std::string(text), {}};
        }
        out.calls.push_back({fresh_id("call_"), call["name"].get<std::string>(), arguments});
        // Only whitespace may separate calls; anything else means this is not the call format.
        at = close + kToolCallClose.size();
        const size_t next = text.find_first_not_of(" \t\r\n", at);
        if (next == std::string_view::npos) {
            break;
        }
        if (text.substr(next, kToolCallOpen.size()) != kToolCallOpen) {
            return {std::string(text), {}};
        }
        at = next;
    }
    std::string_view content = text.substr(0, first);
    while (!content.empty() && std::isspace(static_cast<unsigned char>(content.back()))) {
        content.remove_suffix(1);
    }
    out.content = std::string(content);
    return out;
}

}  // namespace sluice::app
