#include "app/openai_request.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <random>

namespace sluice::app {
namespace {

using nlohmann::json;

std::string describe(const json& value) {
    std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
    return text.size() > 60 ? text.substr(0, 57) + "..." : text;
}

Status bad(const std::string& name, const std::string& expected, const json& found) {
    return invalid_argument("'" + name + "' must be " + expected + ", found " + describe(found));
}

Result<std::optional<double>> number(const json& body, const std::string& name, double lo,
                                     double hi) {
    auto it = body.find(name);
    if (it == body.end() || it->is_null()) {
        return std::optional<double>();
    }
    if (!it->is_number() || it->get<double>() < lo || it->get<double>() > hi ||
        !std::isfinite(it->get<double>())) {
        return bad(name, "a number in [" + json(lo).dump() + ", " + json(hi).dump() + "]", *it);
    }
    return std::optional<double>(it->get<double>());
}

Result<std::optional<int64_t>> integer(const json& body, const std::string& name, int64_t lo,
                                       int64_t hi) {
    auto it = body.find(name);
    if (it == body.end() || it->is_null()) {
        return std::optional<int64_t>();
    }
    if (!it->is_number_integer() || it->get<int64_t>() < lo || it->get<int64_t>() > hi) {
        return bad(name, "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]",
                   *it);
    }
    return std::optional<int64_t>(it->get<int64_t>());
}

Result<bool> boolean(const json& body, const std::string& name, bool fallback) {
    auto it = body.find(name);
    if (it == body.end() || it->is_null()) {
        return fallback;
    }
    if (!it->is_boolean()) {
        return bad(name, "a boolean", *it);
    }
    return it->get<bool>();
}

// `where` prefixes the name in errors ("messages[2]" gives 'messages[2].role').
Result<std::string> string(const json& body, const std::string& name,
                           const std::string& where = "") {
    auto it = body.find(name);
    if (it == body.end() || it->is_null()) {
        return std::string();
    }
    if (!it->is_string()) {
        return bad(where.empty() ? name : where + "." + name, "a string", *it);
    }
    return it->get<std::string>();
}

// A member that must be a given string (a "type" tag), without json::value(), which throws when
// the member has another type.
bool has_string(const json& object, const char* name, std::string_view expected) {
    auto it = object.find(name);
    return it != object.end() && it->is_string() && it->get<std::string>() == expected;
}

// OpenAI's `logit_bias`: an object from token ids (as decimal strings) to biases in
// [-100, 100]. Ids against the vocabulary, and a token named twice ("7" and "007"), are checked
// with the rest of the sampling (validate_sampling, from Scheduler::validate).
Status parse_logit_bias(const json& body, std::vector<inference::TokenBias>& out) {
    auto it = body.find("logit_bias");
    if (it == body.end() || it->is_null()) {
        return Status::ok_status();
    }
    if (!it->is_object()) {
        return bad("logit_bias", "an object mapping token ids to biases", *it);
    }
    for (const auto& [key, value] : it->items()) {
        const bool digits =
            !key.empty() && key.size() <= 9 &&
            std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; });
        if (!digits) {
            return invalid_argument("'logit_bias' keys must be token ids, found " +
                                    describe(json(key)));
        }
        if (!value.is_number() || !std::isfinite(value.get<double>()) ||
            value.get<double>() < -100 || value.get<double>() > 100) {
            return bad("logit_bias[\"" + key + "\"]", "a number in [-100, 100]", value);
        }
        out.push_back({std::stoi(key), value.get<float>()});
    }
    return Status::ok_status();
}

// The parameters chat and completions share; `logprobs_as_count` is the legacy form.
Status parse_common(const json& body, bool logprobs_as_count, GenerationParams& p) {
    SLUICE_ASSIGN_OR_RETURN(p.model, string(body, "model"));
    SLUICE_ASSIGN_OR_RETURN(p.user, string(body, "user"));
    SLUICE_ASSIGN_OR_RETURN(auto temperature, number(body, "temperature", 0, 2));
    SLUICE_ASSIGN_OR_RETURN(auto top_p, number(body, "top_p", 0, 1));
    SLUICE_ASSIGN_OR_RETURN(auto presence, number(body, "presence_penalty", -2, 2));
    SLUICE_ASSIGN_OR_RETURN(auto frequency, number(body, "frequency_penalty", -2, 2));
    SLUICE_ASSIGN_OR_RETURN(auto repetition, number(body, "repetition_penalty", 0.01, 10));
    SLUICE_ASSIGN_OR_RETURN(auto min_p, number(body, "min_p", 0, 1));
    // vLLM's extension, where 0 and -1 both mean every token (-1 was its default).
    SLUICE_ASSIGN_OR_RETURN(auto top_k, integer(body, "top_k", -1, 1 << 20));
    SLUICE_ASSIGN_OR_RETURN(auto n, integer(body, "n", 1, 128));
    SLUICE_ASSIGN_OR_RETURN(auto seed, integer(body, "seed", INT64_MIN, INT64_MAX));
    // The legacy API takes max_tokens 0 to score a prompt (echo), checked by its parser.
    SLUICE_ASSIGN_OR_RETURN(auto max_tokens,
                            integer(body, "max_tokens", logprobs_as_count ? 0 : 1, 1 << 30));
    SLUICE_ASSIGN_OR_RETURN(auto max_completion,
                            integer(body, "max_completion_tokens", 1, 1 << 30));
    SLUICE_ASSIGN_OR_RETURN(p.stream, boolean(body, "stream", false));
    SLUICE_ASSIGN_OR_RETURN(p.skip_special_tokens, boolean(body, "skip_special_tokens", true));

    p.sampling.temperature = static_cast<float>(temperature.value_or(1.0));
    // top_p 0 keeps only the most likely token, which is greedy decoding.
    if (top_p && *top_p == 0) {
        p.sampling.temperature = 0;
    } else {
        p.sampling.top_p = static_cast<float>(top_p.value_or(1.0));
    }
    p.sampling.presence_penalty = static_cast<float>(presence.value_or(0));
    p.sampling.frequency_penalty = static_cast<float>(frequency.value_or(0));
    p.sampling.repetition_penalty = static_cast<float>(repetition.value_or(1));
    p.sampling.min_p = static_cast<float>(min_p.value_or(0));
    p.sampling.top_k = static_cast<int32_t>(std::max<int64_t>(top_k.value_or(0), 0));
    p.sampling.seed = seed ? static_cast<uint64_t>(*seed) : fresh_seed();
    p.n = static_cast<int32_t>(n.value_or(1));
    if (max_completion) {
        p.max_tokens = static_cast<int32_t>(*max_completion);
    } else if (max_tokens) {
        p.max_tokens = static_cast<int32_t>(*max_tokens);
    }

    if (auto it = body.find("stop"); it != body.end() && !it->is_null()) {
        if (it->is_string()) {
            p.stop.push_back(it->get<std::string>());
        } else if (it->is_array() && it->size() <= 4 &&
                   std::all_of(it->begin(), it->end(), [](const json& s) { return s.is_string(); })) {
            for (const json& s : *it) {
                p.stop.push_back(s.get<std::string>());
            }
        } else {
            return bad("stop", "a string or an array of at most 4 strings", *it);
        }
    }
    SLUICE_RETURN_IF_ERROR(parse_logit_bias(body, p.sampling.logit_bias));
    if (auto it = body.find("stream_options"); it != body.end() && !it->is_null()) {
        if (!it->is_object()) {
            return bad("stream_options", "an object", *it);
        }
        SLUICE_RETURN_IF_ERROR(
            check_keys(*it, {"include_usage"}, {}).with_context("stream_options"));
        SLUICE_ASSIGN_OR_RETURN(p.include_usage, boolean(*it, "include_usage", false));
        if (!p.stream) {
            return invalid_argument("'stream_options' is allowed only with 'stream': true");
        }
    }
    if (logprobs_as_count) {
        SLUICE_ASSIGN_OR_RETURN(auto count, integer(body, "logprobs", 0, 20));
        p.logprobs = count.has_value();
        p.top_logprobs = static_cast<int32_t>(count.value_or(0));
    } else {
        SLUICE_ASSIGN_OR_RETURN(p.logprobs, boolean(body, "logprobs", false));
        SLUICE_ASSIGN_OR_RETURN(auto top, integer(body, "top_logprobs", 0, 20));
        if (top && !p.logprobs) {
            return invalid_argument("'top_logprobs' needs 'logprobs': true");
        }
        p.top_logprobs = static_cast<int32_t>(top.value_or(0));
    }
    p.sampling.top_logprobs = p.top_logprobs;
    return Status::ok_status();
}

Result<std::string> message_content(const json& message, size_t index) {
    auto it = message.find("content");
    if (it == message.end() || it->is_null()) {
        return std::string();
    }
    if (it->is_string()) {
        return it->get<std::string>();
    }
    if (!it->is_array()) {
        return bad("messages[" + std::to_string(index) + "].content",
                   "a string or an array of text parts", *it);
    }
    std::string text;
    for (const json& part : *it) {
        if (!part.is_object() || !has_string(part, "type", "text") || !part.contains("text") ||
            !part["text"].is_string()) {
            return bad("messages[" + std::to_string(index) + "].content",
                       "text parts ({\"type\": \"text\", \"text\": ...}); this model reads text "
                       "only",
                       part);
        }
        text += part["text"].get<std::string>();
    }
    return text;
}

Result<inference::ChatMessage> parse_message(const json& message, size_t index) {
    const std::string where = "messages[" + std::to_string(index) + "]";
    if (!message.is_object()) {
        return bad(where, "an object", message);
    }
    SLUICE_RETURN_IF_ERROR(check_keys(message,
                                      {"role", "content", "name", "tool_calls", "tool_call_id"},
                                      {"refusal"}).with_context(where));
    inference::ChatMessage out;
    SLUICE_ASSIGN_OR_RETURN(out.role, string(message, "role", where));
    if (out.role == "developer") {
        out.role = "system";  // OpenAI's newer name for the system role
    }
    if (out.role != "system" && out.role != "user" && out.role != "assistant" &&
        out.role != "tool") {
        return bad(where + ".role", "one of \"system\", \"developer\", \"user\", \"assistant\", "
                                    "\"tool\"",
                   message.value("role", json()));
    }
    // OpenAI's rule: only an assistant message may go without content (it may hold tool calls
    // alone); elsewhere a missing content is a client's mistake, not an empty turn.
    if (out.role != "assistant" && (!message.contains("content") || message["content"].is_null())) {
        return bad(
            where + ".content",
            "a string or an array of text parts (required for role " + message["role"].dump() + ")",
            message.value("content", json()));
    }
    SLUICE_ASSIGN_OR_RETURN(out.content, message_content(message, index));
    SLUICE_ASSIGN_OR_RETURN(out.tool_call_id, string(message, "tool_call_id", where));
    if (out.role == "tool" && out.tool_call_id.empty()) {
        // OpenAI's rule: a tool result names the call it answers.
        return bad(where + ".tool_call_id", "the id of the tool call answered (role \"tool\")",
                   message.value("tool_call_id", json()));
    }
    if (auto calls = message.find("tool_calls"); calls != message.end() && !calls->is_null()) {
        if (!calls->is_array()) {
            return bad(where + ".tool_calls", "an array", *calls);
        }
        for (size_t c = 0; c < calls->size(); ++c) {
            const json& call = (*calls)[c];
            const std::string call_where = where + ".tool_calls[" + std::to_string(c) + "]";
            if (!call.is_object()) {
                return bad(call_where, "an object", call);
            }
            const json function = call.value("function", json::object());
            if (!function.is_object() || !function.contains("name") ||
                !function["name"].is_string()) {
                return bad(call_where + ".function", "an object with a name", call);
            }
            inference::ToolCall parsed;
            SLUICE_ASSIGN_OR_RETURN(parsed.id, string(call, "id", call_where));
            parsed.name = function["name"].get<std::string>();
            const json arguments = function.value("arguments", json("{}"));
            if (arguments.is_string()) {
                parsed.arguments = json::parse(arguments.get<std::string>(), nullptr, false);
                if (parsed.arguments.is_discarded()) {
                    return bad(call_where + ".function.arguments", "a string holding a JSON object",
                               arguments);
                }
            } else {
                parsed.arguments = arguments;
            }
            out.tool_calls.push_back(std::move(parsed));
        }
    }
    return out;
}

Result<std::vector<inference::ToolDefinition>> parse_tools(const json& tools) {
    if (!tools.is_array()) {
        return bad("tools", "an array", tools);
    }
    std::vector<inference::ToolDefinition> out;
    for (size_t i = 0; i < tools.size(); ++i) {
        const json& tool = tools[i];
        const std::string where = "tools[" + std::to_string(i) + "]";
        if (!tool.is_object() || !has_string(tool, "type", "function") ||
            !tool.contains("function") || !tool["function"].is_object()) {
            return bad(where, "{\"type\": \"function\", \"function\": {...}}", tool);
        }
        const json& function = tool["function"];
        // As at the top of the body: a misspelt member is refused, never ignored. `strict` is
        // taken either way: calls are always held to their parameters (the tool-call grammar).
        SLUICE_RETURN_IF_ERROR(check_keys(tool, {"type", "function"}, {}).with_context(where));
        SLUICE_RETURN_IF_ERROR(
            check_keys(function, {"name", "description", "parameters", "strict"}, {})
                .with_context(where + ".function"));
        if (auto strict = function.find("strict");
            strict != function.end() && !strict->is_null() && !strict->is_boolean()) {
            return bad(where + ".function.strict", "a boolean", *strict);
        }
        if (!function.contains("name") || !function["name"].is_string()) {
            return bad(where + ".function.name", "a string", function.value("name", json()));
        }
        inference::ToolDefinition definition;
        definition.name = function["name"].get<std::string>();
        SLUICE_ASSIGN_OR_RETURN(definition.description,
                                string(function, "description", where + ".function"));
        definition.parameters = function.value("parameters", json::object());
        out.push_back(std::move(definition));
    }
    return out;
}

Status parse_response_format(const json& body, ChatRequest& request) {
    auto it = body.find("response_format");
    if (it == body.end() || it->is_null()) {
        return Status::ok_status();
    }
    std::string type;
    if (it->is_object()) {
        if (auto member = it->find("type"); member != it->end() && member->is_string()) {
            type = member->get<std::string>();
        }
    }
    if (type == "text" || type == "json_object") {
        SLUICE_RETURN_IF_ERROR(check_keys(*it, {"type"}, {}).with_context("response_format"));
        if (type == "json_object") {
            request.response_format = ResponseFormat::kJsonObject;
        }
        return Status::ok_status();
    }
    if (type != "json_schema") {
        return bad("response_format",
                   "{\"type\": \"text\"}, {\"type\": \"json_object\"} or {\"type\": "
                   "\"json_schema\", \"json_schema\": {...}}",
                   *it);
    }
    SLUICE_RETURN_IF_ERROR(
        check_keys(*it, {"type", "json_schema"}, {}).with_context("response_format"));
    auto spec = it->find("json_schema");
    if (spec == it->end() || !spec->is_object()) {
        return bad("response_format.json_schema", "an object with 'name' and 'schema'",
                   spec == it->end() ? json() : *spec);
    }
    SLUICE_RETURN_IF_ERROR(check_keys(*spec, {"name", "description", "schema", "strict"}, {})
                               .with_context("response_format.json_schema"));
    // OpenAI's rule for the name: 1 to 64 letters, digits, '_' or '-'.
    auto name = spec->find("name");
    auto name_ok = [](const std::string& text) {
        return !text.empty() && text.size() <= 64 &&
               std::all_of(text.begin(), text.end(), [](unsigned char c) {
                   return std::isalnum(c) != 0 || c == '_' || c == '-';
               });
    };
    if (name == spec->end() || !name->is_string() || !name_ok(name->get<std::string>())) {
        return bad("response_format.json_schema.name",
                   "a name of 1 to 64 letters, digits, '_' or '-'",
                   name == spec->end() ? json() : *name);
    }
    if (auto description = spec->find("description");
        description != spec->end() && !description->is_string()) {
        return bad("response_format.json_schema.description", "a string", *description);
    }
    if (auto strict = spec->find("strict"); strict != spec->end() && !strict->is_null() &&
                                            !strict->is_boolean()) {
        return bad("response_format.json_schema.strict", "a boolean", *strict);
    }
    auto schema = spec->find("schema");
    if (schema == spec->end() || !(schema->is_object() || schema->is_boolean())) {
        return bad("response_format.json_schema.schema", "a JSON Schema object",
                   schema == spec->end() ? json() : *schema);
    }
    // Strict or not, the output is held to the schema: there is no cheaper mode to fall back to.
    request.response_format = ResponseFormat::kJsonSchema;
    request.schema = *schema;
    return Status::ok_status();
}

// Token ids or text, as the legacy and embeddings APIs take them.
Result<std::vector<PromptInput>> parse_inputs(const json& value, const std::string& name) {
    std::vector<PromptInput> out;
    auto ids = [](const json& array) {
        return array.is_array() && !array.empty() &&
               std::all_of(array.begin(), array.end(),
                           [](const json& id) { return id.is_number_integer(); });
    };
    if (value.is_string()) {
        out.emplace_back(value.get<std::string>());
    } else if (ids(value)) {
        SLUICE_ASSIGN_OR_RETURN(auto tokens, parse_token_ids(value, name));
        out.emplace_back(std::move(tokens));
    } else if (value.is_array() && !value.empty()) {
        for (size_t i = 0; i < value.size(); ++i) {
            const json& item = value[i];
            if (item.is_string()) {
                out.emplace_back(item.get<std::string>());
            } else if (ids(item)) {
                SLUICE_ASSIGN_OR_RETURN(
                    auto tokens, parse_token_ids(item, name + "[" + std::to_string(i) + "]"));
                out.emplace_back(std::move(tokens));
            } else {
                return bad(name, "a string, an array of strings, token ids or arrays of ids",
                           item);
            }
        }
    } else {
        return bad(name, "a non-empty string, an array of strings, token ids or arrays of ids",
                   value);
    }
    return out;
}

}  // namespace

Result<std::vector<int32_t>> parse_token_ids(const json& array, const std::string& name) {
    if (!array.is_array()) {
        return bad(name, "an array of token ids", array);
    }
    std::vector<int32_t> ids;
    ids.reserve(array.size());
    for (size_t i = 0; i < array.size(); ++i) {
        const json& id = array[i];
        bool fits = id.is_number_unsigned()
                        ? id.get<uint64_t>() <= uint64_t{INT32_MAX}
                        : id.is_number_integer() && id.get<int64_t>() >= INT32_MIN &&
                              id.get<int64_t>() <= INT32_MAX;
        if (!fits) {
            if (!id.is_number_integer()) {
                return bad(name + "[" + std::to_string(i) + "]", "a token id", id);
            }
            return invalid_argument("token id " + id.dump() + " at position " + std::to_string(i) +
                                    " of '" + name + "' is out of range");
        }
        ids.push_back(id.get<int32_t>());
    }
    return ids;
}

uint64_t fresh_seed() {
    thread_local std::mt19937_64 generator{std::random_device{}()};
    return generator();
}

Result<ChatRequest> parse_chat_request(const json& body) {
    if (!body.is_object()) {
        return bad("request body", "a JSON object", body);
    }
    SLUICE_RETURN_IF_ERROR(check_keys(
        body,
        {"model", "messages", "n", "temperature", "top_p", "max_tokens", "max_completion_tokens",
         "stop", "seed", "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs",
         "logit_bias", "user", "stream", "stream_options", "response_format", "tools",
         "tool_choice", "parallel_tool_calls", "top_k", "min_p", "repetition_penalty",
         "skip_special_tokens"},
        {"metadata", "store", "service_tier"}));
    ChatRequest request;
    SLUICE_RETURN_IF_ERROR(parse_common(body, false, request.params));
    SLUICE_RETURN_IF_ERROR(parse_response_format(body, request));
    auto messages = body.find("messages");
    if (messages == body.end() || !messages->is_array() || messages->empty()) {
        return bad("messages", "a non-empty array", messages == body.end() ? json() : *messages);
    }
    for (size_t i = 0; i < messages->size(); ++i) {
        SLUICE_ASSIGN_OR_RETURN(auto message, parse_message((*messages)[i], i));
        request.messages.push_back(std::move(message));
    }
    if (auto tools = body.find("tools"); tools != body.end() && !tools->is_null()) {
        SLUICE_ASSIGN_OR_RETURN(request.tools, parse_tools(*tools));
    }
    SLUICE_ASSIGN_OR_RETURN(request.parallel_tool_calls,
                            boolean(body, "parallel_tool_calls", true));
    if (auto parallel = body.find("parallel_tool_calls");
        parallel != body.end() && !parallel->is_null() && request.tools.empty()) {
        // As OpenAI answers: the setting says how many tools may be called, and there are none.
        return invalid_argument("'parallel_tool_calls' is only allowed when 'tools' are given");
    }
    std::string choice = "auto";
    if (auto it = body.find("tool_choice"); it != body.end() && !it->is_null()) {
        if (it->is_string() && (*it == "none" || *it == "auto" || *it == "required")) {
            choice = it->get<std::string>();
        } else if (it->is_object()) {
            choice = "function";
        } else {
            return bad("tool_choice", "\"none\", \"auto\", \"required\" or a function", *it);
        }
    }
    if (choice == "function") {
        const json& function = (*body.find("tool_choice")).value("function", json());
        if (!has_string(body["tool_choice"], "type", "function") || !function.is_object() ||
            !function.contains("name") || !function["name"].is_string()) {
            return bad("tool_choice", "{\"type\": \"function\", \"function\": {\"name\": ...}}",
                       body["tool_choice"]);
        }
        SLUICE_RETURN_IF_ERROR(
            check_keys(body["tool_choice"], {"type", "function"}, {}).with_context("tool_choice"));
        SLUICE_RETURN_IF_ERROR(
            check_keys(function, {"name"}, {}).with_context("tool_choice.function"));
    }
    if (choice != "none" && choice != "auto" && request.tools.empty()) {
        return invalid_argument("'tool_choice' " + body["tool_choice"].dump() +
                                " needs 'tools'; none were given");
    }
    request.use_tools = !request.tools.empty() && choice != "none";
    if (request.use_tools && request.response_format != ResponseFormat::kText) {
        return invalid_argument("'response_format' of type json_object or json_schema together "
                                "with 'tools' is not supported; set 'tool_choice' to \"none\" or "
                                "drop one of them");
    }
    if (!request.tools.empty()) {
        request.tools_json = body["tools"];
        request.tool_choice_json = body.contains("tool_choice") && !body["tool_choice"].is_null()
                                       ? body["tool_choice"]
                                       : json("auto");
    }
    return request;
}

Result<CompletionRequest> parse_completion_request(const json& body) {
    if (!body.is_object()) {
        return bad("request body", "a JSON object", body);
    }
    SLUICE_RETURN_IF_ERROR(check_keys(
        body,
        {"model", "prompt", "n", "temperature", "top_p", "max_tokens", "stop", "seed",
         "presence_penalty", "frequency_penalty", "logprobs", "logit_bias", "user", "stream",
         "stream_options", "echo", "best_of", "top_k", "min_p", "repetition_penalty",
         "skip_special_tokens"},
        {"metadata", "store", "service_tier"}));
    CompletionRequest request;
    SLUICE_RETURN_IF_ERROR(parse_common(body, true, request.params));
    if (!request.params.max_tokens) {
        request.params.max_tokens = 16;  // the legacy API's default
    }
    SLUICE_ASSIGN_OR_RETURN(request.echo, boolean(body, "echo", false));
    if (request.params.max_tokens == 0 && !request.echo) {
        return invalid_argument(
            "'max_tokens': 0 generates nothing; it is accepted with 'echo': "
            "true, which returns the prompt (with 'logprobs', its scores)");
    }
    SLUICE_ASSIGN_OR_RETURN(auto best_of, integer(body, "best_of", 1, 128));
    if (best_of && *best_of != request.params.n) {
        return invalid_argument("'best_of' other than 'n' is not supported; found best_of " +
                                std::to_string(*best_of) + " with n " +
                                std::to_string(request.params.n));
    }
    auto prompt = body.find("prompt");
    if (prompt == body.end() || prompt->is_null()) {
        return bad("prompt", "a string, strings, token ids or arrays of ids", json());
    }
    SLUICE_ASSIGN_OR_RETURN(request.prompts, parse_inputs(*prompt, "prompt"));
    return request;
}

Result<EmbeddingRequest> parse_embedding_request(const json& body) {
    if (!body.is_object()) {
        return bad("request body", "a JSON object", body);
    }
    SLUICE_RETURN_IF_ERROR(
        check_keys(body, {"model", "input", "encoding_format", "user", "dimensions"}, {}));
    EmbeddingRequest request;
    SLUICE_ASSIGN_OR_RETURN(request.model, string(body, "model"));
    SLUICE_ASSIGN_OR_RETURN(std::string user, string(body, "user"));  // taken, checked, unused
    SLUICE_ASSIGN_OR_RETURN(std::string format, string(body, "encoding_format"));
    if (!format.empty() && format != "float" && format != "base64") {
        return bad("encoding_format", "\"float\" or \"base64\"", body["encoding_format"]);
    }
    request.encoding_format = format.empty() ? "float" : format;
    if (body.contains("dimensions") && !body["dimensions"].is_null()) {
        return invalid_argument("'dimensions' is not supported: embeddings have the model's "
                                "width");
    }
    auto input = body.find("input");
    if (input == body.end()) {
        return bad("input", "a string, strings, token ids or arrays of ids", json());
    }
    SLUICE_ASSIGN_OR_RETURN(request.inputs, parse_inputs(*input, "input"));
    return request;
}

}  // namespace sluice::app
