#include "inference/chat_template.h"

#include <set>

namespace sluice::inference {

namespace {

using nlohmann::ordered_json;

constexpr std::string_view kToolsIntro =
    "# Tools\n\n"
    "You can call the functions below. Each is given as a JSON object with its name, what it "
    "does, and the JSON schema of its arguments:\n<tools>\n";
constexpr std::string_view kToolsOutro =
    "</tools>\n\n"
    "To call functions, end your answer with one line per call of the form\n"
    "<tool_call>{\"name\": \"<function name>\", \"arguments\": {<arguments as JSON>}}"
    "</tool_call>\n"
    "Each result comes back in a message with role \"tool\" as <tool_result id=\"...\" "
    "name=\"...\">...</tool_result>, in the order of the calls.";

// Compact JSON; invalid UTF-8 in any string is the caller's error.
Result<std::string> to_json_text(const ordered_json& value, std::string_view what) {
    try {
        return value.dump(-1, ' ', false, ordered_json::error_handler_t::strict);
    } catch (const ordered_json::exception& e) {
        return invalid_argument(std::string(what) + ": " + e.what());
    }
}

// Attribute values in the <tool_result> marker: quotes and angle brackets escaped so that an id
// or a name cannot close the marker early.
std::string attribute(std::string_view value) {
    std::string out;
    for (char c : value) {
        switch (c) {
            case '"': out += "&quot;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '&': out += "&amp;"; break;
            default: out.push_back(c);
        }
    }
    return out;
}

}  // namespace

ChatTemplate::ChatTemplate(ChatTemplateOptions options) : options_(std::move(options)) {}

Result<std::vector<ChatTemplate::Segment>> ChatTemplate::segments(
    std::span<const ChatMessage> messages, std::span<const ToolDefinition> tools) const {
    std::vector<Segment> out;
    auto special = [&](TokenId id) { out.push_back({true, id, {}}); };
    auto text = [&](std::string_view piece) {
        if (piece.empty()) {
            return;
        }
        if (!out.empty() && !out.back().special) {
            out.back().text += piece;
            return;
        }
        out.push_back({false, 0, std::string(piece)});
    };
    auto turn = [&](std::string_view role, std::string_view body) {
        special(dbrx::kImStart);
        text(role);
        text("\n");
        text(body);
        special(dbrx::kImEnd);
        text("\n");
    };

    std::string system = options_.default_system_prompt;
    std::size_t first = 0;
    if (!messages.empty() && messages[0].role == "system") {
        system = messages[0].content;
        first = 1;
    }
    if (!tools.empty()) {
        std::string section(kToolsIntro);
        for (std::size_t i = 0; i < tools.size(); ++i) {
            const ToolDefinition& tool = tools[i];
            std::string where = "tools[" + std::to_string(i) + "]";
            if (tool.name.empty()) {
                return invalid_argument(where + ": the name is empty");
            }
            ordered_json entry = {{"name", tool.name},
                                  {"description", tool.description},
                                  {"parameters", tool.parameters}};
            SLUICE_ASSIGN_OR_RETURN(std::string line, to_json_text(entry, where));
            section += line + "\n";
        }
        section += kToolsOutro;
        system = system.empty() ? section : system + "\n\n" + section;
    }
    if (!system.empty()) {
        turn("system", system);
    }

    std::set<std::string> call_ids;
    for (std::size_t index = first; index < messages.size(); ++index) {
        const ChatMessage& message = messages[index];
        // Named as the OpenAI request names them, so that one error reads the same from either.
        std::string where = "messages[" + std::to_string(index) + "]";
        if (!message.tool_calls.empty() && message.role != "assistant") {
            return invalid_argument(where + ": tool calls in a '" + message.role +
                                    "' message, expected only in 'assistant' messages");
        }
        if (message.role == "user") {
            turn("user", message.content);
        } else if (message.role == "assistant") {
            std::string body = message.content;
            for (std::size_t c = 0; c < message.tool_calls.size(); ++c) {
                const ToolCall& call = message.tool_calls[c];
                std::string call_where = where + ".tool_calls[" + std::to_string(c) + "]";
                if (call.name.empty() || !call.arguments.is_object()) {
                    return invalid_argument(call_where +
                                            ": expected a name and arguments as a JSON object");
                }
                ordered_json entry = ordered_json::object();
                if (!call.id.empty()) {
                    entry["id"] = call.id;
                    call_ids.insert(call.id);
                }
                entry["name"] = call.name;
                entry["arguments"] = call.arguments;
                SLUICE_ASSIGN_OR_RETURN(std::string json_text, to_json_text(entry, call_where));
                if (!body.empty()) {
                    body += '\n';
                }
                body.append("<tool_call>").append(json_text).append("</tool_call>");
            }
            turn("assistant", body);
        } else if (message.role == "tool") {
            if (!call_ids.contains(message.tool_call_id)) {
                return invalid_argument(where + ".tool_call_id: '" + message.tool_call_id +
                                        "' answers no earlier tool call");
            }
            std::string name;
            for (std::size_t prior = index; prior-- > first;) {
                for (const ToolCall& call : messages[prior].tool_calls) {
                    if (call.id == message.tool_call_id && name.empty()) {
                        name = call.name;
                    }
                }
            }
            turn("tool", "<tool_result id=\"" + attribute(message.tool_call_id) + "\" name=\"" +
                             attribute(name) + "\">\n" + message.content + "\n</tool_result>");
        } else if (message.role == "system") {
            // Later instructions (a summary of earlier turns, a changed persona) are a system
            // turn where they stand, as ChatML writes one and as OpenAI's API accepts them.
            turn("system", message.content);
        } else {
            return invalid_argument(where + ".role: '" + message.role +
                                    "', expected system, user, assistant or tool");
        }
    }
    if (options_.add_generation_prompt) {
        special(dbrx::kImStart);
        text("assistant\n");
    }
    return out;
}

Result<std::vector<TokenId>> ChatTemplate::encode(const Tokenizer& tokenizer,
                                                  std::span<const ChatMessage> messages,
                                                  std::span<const ToolDefinition> tools) const {
    SLUICE_ASSIGN_OR_RETURN(auto parts, segments(messages, tools));
    std::vector<TokenId> ids;
    for (const Segment& part : parts) {
        if (part.special) {
            ids.push_back(part.id);
            continue;
        }
        // Caller text: ordinary mode, so special-token text stays text.
        Status status = tokenizer.encode_into(part.text, SpecialTokenMode::kOrdinary, ids);
        if (!status.ok()) {
            return status.with_context("chat prompt");
        }
    }
    return ids;
}

Result<std::string> ChatTemplate::render(std::span<const ChatMessage> messages,
                                         std::span<const ToolDefinition> tools) const {
    SLUICE_ASSIGN_OR_RETURN(auto parts, segments(messages, tools));
    std::string out;
    for (const Segment& part : parts) {
        if (!part.special) {
            out += part.text;
            continue;
        }
        for (const SpecialToken& token : dbrx_special_tokens()) {
            if (token.id == part.id) {
                out += token.text;
            }
        }
    }
    return out;
}

}  // namespace sluice::inference
