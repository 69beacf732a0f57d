#pragma once
// What the OpenAI-compatible model routes share: taking a request body apart (JSON, the
// route's parser, the loaded engine, the `model` field, the queue), opening the governed call
// (model_call.h) and answering errors in OpenAI's shape, with Retry-After on every 429.
//
// Thread safety: free functions; thread-safe given a thread-safe ModelHost and Governance.

#include <memory>
#include <optional>
#include <string>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "app/http_errors.h"
#include "app/http_server.h"
#include "app/model_call.h"
#include "app/model_host.h"
#include "app/stream_registry.h"
#include "governance/governance.h"

namespace sluice::app {

// What the model routes are wired to besides the model. Both may be null: without governance
// (an in-process benchmark) calls are neither authorised nor billed; without a registry
// streams are cut at shutdown like any other response.
struct OpenAiOptions {
    governance::Governance* governance = nullptr;
    StreamRegistry* streams = nullptr;
};

// Answers a failed status. kResourceExhausted gets Retry-After: `retry_after_s` seconds (1 for
// the engine's queue; a limit's own hint), none when nullopt (a call that can never fit the
// limit: retrying does not help).
void send_model_error(httplib::Response& res, const Status& status, const RequestInfo& info,
                      std::optional<std::int64_t> retry_after_s = 1);

// A parsed request and the engine that will serve it.
template <typename T>
struct ModelRequest {
    T body;
    std::shared_ptr<inference::Engine> engine;
};

// The body parsed as JSON and by `parse`, the engine loaded, the `model` field naming the
// served model, and room in the engine's queue (checked before any tokenization, so that an
// overloaded server refuses at once). On failure the response is written and nullopt returned.
template <typename T, typename Parse, typename ModelOf>
std::optional<ModelRequest<T>> take_model_request(ModelHost& host, const RequestInfo& info,
                                                  const httplib::Request& req,
                                                  httplib::Response& res, Parse parse,
                                                  ModelOf model_of);

// Opens the governed call for this request and authorises it (EXECUTE on the endpoint's
// securable; with `token_logprobs`, that the endpoint's output policy allows them). Null
// without governance. On failure the response is written and the Result holds the status.
Result<std::unique_ptr<ModelCall>> open_model_call(const OpenAiOptions& options,
                                                   const ModelHost& host, const RequestInfo& info,
                                                   httplib::Response& res,
                                                   bool token_logprobs = false);

// The parts of take_model_request that need no template. serves_model() answers 404
// model_not_found for another model id; check_engine_room() is kResourceExhausted when the
// engine's queue is full.
bool serves_model(const ModelHost& host, const std::string& model, const RequestInfo& info,
                  httplib::Response& res);
Status check_engine_room(inference::Engine& engine);

template <typename T, typename Parse, typename ModelOf>
std::optional<ModelRequest<T>> take_model_request(ModelHost& host, const RequestInfo& info,
                                                  const httplib::Request& req,
                                                  httplib::Response& res, Parse parse,
                                                  ModelOf model_of) {
    Result<nlohmann::json> json = parse_json_body(req);
    if (!json.ok()) {
        send_model_error(res, json.status(), info);
        return std::nullopt;
    }
    Result<T> body = parse(*json);
    if (!body.ok()) {
        send_model_error(res, body.status(), info);
        return std::nullopt;
    }
    auto engine = host.engine();
    if (!engine) {
        send_model_error(res, host.unavailable(), info);
        return std::nullopt;
    }
    if (!serves_model(host, model_of(*body), info, res)) {
        return std::nullopt;
    }
    if (Status checked = check_engine_room(*engine); !checked.ok()) {
        send_model_error(res, checked, info);
        return std::nullopt;
    }
    return ModelRequest<T>{std::move(*body), std::move(engine)};
}

}  // namespace sluice::app
