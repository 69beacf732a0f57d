// The OpenAI-compatible routes besides generation: embeddings, models, tokenize, detokenize.
#include <bit>
#include <cstring>

#include "app/http_errors.h"
#include "app/openai_request.h"
#include "app/openai_route_support.h"
#include "app/openai_routes.h"

namespace sluice::app {
namespace {

using nlohmann::json;

void send_json(httplib::Response& res, const json& body) {
    res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace),
                    "application/json");
}

std::string base64(const std::string& bytes) {
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
        const uint32_t v = (static_cast<uint8_t>(bytes[i]) << 16) |
                           (static_cast<uint8_t>(bytes[i + 1]) << 8) |
                           static_cast<uint8_t>(bytes[i + 2]);
        out += kAlphabet[(v >> 18) & 63];
        out += kAlphabet[(v >> 12) & 63];
        out += kAlphabet[(v >> 6) & 63];
        out += kAlphabet[v & 63];
    }
    if (i + 1 == bytes.size()) {
        const uint32_t v = static_cast<uint8_t>(bytes[i]) << 16;
        out += kAlphabet[(v >> 18) & 63];
        out += kAlphabet[(v >> 12) & 63];
        out += "==";
    } else if (i + 2 == bytes.size()) {
        const uint32_t v = (static_cast<uint8_t>(bytes[i]) << 16) |
                           (static_cast<uint8_t>(bytes[i + 1]) << 8);
        out += kAlphabet[(v >> 18) & 63];
        out += kAlphabet[(v >> 12) & 63];
        out += kAlphabet[(v >> 6) & 63];
        out += '=';
    }
    return out;
}

// OpenAI's base64 embeddings are the float32 values in little-endian byte order.
std::string float_base64(const std::vector<float>& values) {
    static_assert(std::endian::native == std::endian::little, "little-endian hosts only");
    std::string bytes(values.size() * sizeof(float), '\0');
    std::memcpy(bytes.data(), values.data(), bytes.size());
    return base64(bytes);
}

std::shared_ptr<inference::Engine> require_engine(ModelHost& host, const RequestInfo& info,
                                                  httplib::Response& res) {
    auto engine = host.engine();
    if (!engine) {
        send_status(res, host.unavailable(), info.request_id);
    }
    return engine;
}

json model_object(const ModelHost& host, const inference::Engine& engine) {
    return {{"id", host.model_id()},
            {"object", "model"},
            {"created", host.loaded_at()},
            {"owned_by", "sluice"},
            {"max_model_len", engine.model_config().max_seq_len}};
}

void embeddings(ModelHost& host, const OpenAiOptions& options, const RequestInfo& info,
                const httplib::Request& req, httplib::Response& res) {
    auto taken = take_model_request<EmbeddingRequest>(
        host, info, req, res, parse_embedding_request,
        [](const EmbeddingRequest& request) { return request.model; });
    if (!taken) {
        return;
    }
    const EmbeddingRequest& request = taken->body;
    const auto& engine = taken->engine;
    auto call = open_model_call(options, host, info, res);
    if (!call.ok()) {
        return;
    }
    std::vector<std::vector<int32_t>> prompts;
    std::int64_t estimate = 0;
    for (size_t i = 0; i < request.inputs.size(); ++i) {
        const std::string where = "input[" + std::to_string(i) + "]";
        const PromptInput& input = request.inputs[i];
        if (const auto* given = std::get_if<std::string>(&input)) {
            std::string text = *given;
            if (*call != nullptr) {
                auto guarded = (*call)->guard_input(text);
                if (!guarded.ok()) {
                    send_model_error(res, guarded.status().with_context(where), info);
                    return;
                }
                text = std::move(*guarded);
            }
            auto ids = engine->tokenizer()->encode(text);
            if (!ids.ok()) {
                send_model_error(res, ids.status().with_context(where), info);
                return;
            }
            if (ids->empty()) {
                send_error(res, 400, "invalid_argument", where + " is empty", info.request_id);
                return;
            }
            prompts.push_back(std::move(*ids));
        } else {
            prompts.push_back(std::get<std::vector<int32_t>>(input));
        }
        estimate += static_cast<std::int64_t>(prompts.back().size());
    }
    if (*call != nullptr) {
        std::optional<std::int64_t> retry_after;
        if (Status reserved = (*call)->reserve(estimate, &retry_after); !reserved.ok()) {
            send_model_error(res, reserved, info, retry_after);
            return;
        }
    }
    inference::Usage usage;
    auto vectors = engine->embed_ids(prompts, &usage);
    if (*call != nullptr) {
        // Billed with what the engine counted, also when it failed part way.
        Status settled = (*call)->finish(usage, vectors.ok() ? "ok" : "error");
        if (!settled.ok() && vectors.ok()) {
            send_model_error(res, settled, info);
            return;
        }
    }
    if (!vectors.ok()) {
        send_model_error(res, vectors.status(), info);
        return;
    }
    json data = json::array();
    for (size_t i = 0; i < vectors->size(); ++i) {
        json embedding = request.encoding_format == "base64" ? json(float_base64((*vectors)[i]))
                                                             : json((*vectors)[i]);
        data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", embedding}});
    }
    send_json(res, {{"object", "list"},
                    {"data", data},
                    {"model", host.model_id()},
                    {"usage",
                     {{"prompt_tokens", usage.prompt_tokens},
                      {"total_tokens", usage.prompt_tokens}}}});
}

// The members /tokenize and /detokenize take, and a model they name being the one served.
bool check_token_route_body(const ModelHost& host, const json& body,
                            const std::set<std::string>& accepted, const RequestInfo& info,
                            httplib::Response& res) {
    if (Status keys = check_keys(body, accepted, {}); !keys.ok()) {
        send_status(res, keys, info.request_id);
        return false;
    }
    auto model = body.find("model");
    if (model != body.end() && !model->is_string()) {
        send_error(res, 400, "invalid_argument", "'model' must be a string", info.request_id);
        return false;
    }
    return serves_model(host, model == body.end() ? "" : model->get<std::string>(), info, res);
}

void tokenize(ModelHost& host, const RequestInfo& info, const httplib::Request& req,
              httplib::Response& res) {
    Result<json> body = parse_json_body(req);
    if (!body.ok()) {
        send_status(res, body.status(), info.request_id);
        return;
    }
    auto engine = require_engine(host, info, res);
    if (!engine) {
        return;
    }
    const json& b = *body;
    if (!check_token_route_body(host, b, {"model", "prompt", "messages", "tools"}, info, res)) {
        return;
    }
    if (b.contains("prompt") == b.contains("messages")) {
        send_error(res, 400, "invalid_argument",
                   "expected an object with either 'prompt' (a string) or 'messages'",
                   info.request_id);
        return;
    }
    if (b.contains("prompt") && b.contains("tools")) {
        // Tools are rendered by the chat template, which a plain prompt does not go through:
        // counted with the prompt, they would be silently left out of the count.
        send_error(res, 400, "invalid_argument",
                   "'tools' go with 'messages' (the chat template renders them), not with 'prompt'",
                   info.request_id);
        return;
    }
    Result<std::vector<int32_t>> ids = std::vector<int32_t>();
    if (b.contains("prompt")) {
        if (!b["prompt"].is_string()) {
            send_error(res, 400, "invalid_argument", "'prompt' must be a string",
                       info.request_id);
            return;
        }
        ids = engine->tokenizer()->encode(b["prompt"].get<std::string>());
    } else {
        json chat_body = {{"messages", b["messages"]}};
        if (b.contains("tools")) {
            chat_body["tools"] = b["tools"];
        }
        Result<ChatRequest> chat = parse_chat_request(chat_body);
        if (!chat.ok()) {
            send_status(res, chat.status(), info.request_id);
            return;
        }
        ids = host.chat_template().encode(*engine->tokenizer(), chat->messages, chat->tools);
    }
    if (!ids.ok()) {
        send_status(res, ids.status(), info.request_id);
        return;
    }
    send_json(res, {{"tokens", *ids},
                    {"count", ids->size()},
                    {"max_model_len", engine->model_config().max_seq_len}});
}

void detokenize(ModelHost& host, const RequestInfo& info, const httplib::Request& req,
                httplib::Response& res) {
    Result<json> body = parse_json_body(req);
    if (!body.ok()) {
        send_status(res, body.status(), info.request_id);
        return;
    }
    auto engine = require_engine(host, info, res);
    if (!engine) {
        return;
    }
    const json& b = *body;
    if (!check_token_route_body(host, b, {"model", "tokens"}, info, res)) {
        return;
    }
    auto tokens = b.find("tokens");
    if (tokens == b.end() || !tokens->is_array() ||
        !std::all_of(tokens->begin(), tokens->end(),
                     [](const json& id) { return id.is_number_integer(); })) {
        send_error(res, 400, "invalid_argument", "expected {\"tokens\": [token ids]}",
                   info.request_id);
        return;
    }
    Result<std::vector<int32_t>> ids = parse_token_ids(*tokens, "tokens");
    if (!ids.ok()) {
        send_status(res, ids.status(), info.request_id);
        return;
    }
    auto text = engine->tokenizer()->decode_text(*ids);
    if (!text.ok()) {
        send_status(res, text.status(), info.request_id);
        return;
    }
    send_json(res, {{"prompt", *text}});
}

}  // namespace

void add_embedding_and_token_routes(HttpServer& server, ModelHost& host, OpenAiOptions options) {
    server.route("POST", "/v1/embeddings",
                 [&host, options](const RequestInfo& info, const httplib::Request& req,
                                  httplib::Response& res) {
                     embeddings(host, options, info, req, res);
                 });
    server.route("GET", "/v1/models",
                 [&host](const RequestInfo&, const httplib::Request&, httplib::Response& res) {
                     json data = json::array();
                     if (auto engine = host.engine()) {
                         data.push_back(model_object(host, *engine));
                     }
                     send_json(res, {{"object", "list"}, {"data", data}});
                 });
    server.route("GET", "/v1/models/(.+)",
                 [&host](const RequestInfo& info, const httplib::Request& req,
                         httplib::Response& res) {
                     auto engine = host.engine();
                     const std::string id = req.matches[1];
                     if (!engine || id != host.model_id()) {
                         send_error(res, 404, "model_not_found",
                                    "the model '" + id + "' does not exist", info.request_id);
                         return;
                     }
                     send_json(res, model_object(host, *engine));
                 });
    server.route("POST", "/tokenize",
                 [&host](const RequestInfo& info, const httplib::Request& req,
                         httplib::Response& res) { tokenize(host, info, req, res); });
    server.route("POST", "/detokenize",
                 [&host](const RequestInfo& info, const httplib::Request& req,
                         httplib::Response& res) { detokenize(host, info, req, res); });
}

}  // namespace sluice::app
