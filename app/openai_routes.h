#pragma once
// The OpenAI-compatible API over the loaded model (docs/api.md):
//   POST /v1/chat/completions, POST /v1/completions   (stream or not)
//   POST /v1/embeddings, GET /v1/models, GET /v1/models/{id}
//   POST /tokenize, POST /detokenize
// Errors use the JSON envelope (http_errors.h): 400 for bad parameters, 404 for another model
// id, 429 with Retry-After when the engine's queue is full or a usage limit has no room, 403
// when the caller may not query the endpoint or the answer is withheld by a guardrail, 503
// while the model is not loaded, 504 when a request passes /model/request_timeout_s.
//
// With governance (OpenAiOptions), generation and embeddings are governed calls
// (model_call.h): authorised, guarded, reserved before and settled after.
//
// Thread safety: handlers run on HTTP worker threads; they share the ModelHost and what the
// options point to, which are thread-safe and must outlive the server.

#include <functional>

#include <nlohmann/json.hpp>

#include "app/http_server.h"
#include "app/model_host.h"
#include "app/openai_route_support.h"

namespace sluice::app {

// Serves a chat completion whose "model" names something other than the served model (an
// agent, "agents/<name>"); returns false, having written nothing, when the model is not its own.
using ChatDelegate = std::function<bool(const RequestInfo&, const httplib::Request&,
                                        const nlohmann::json& body, httplib::Response&)>;

// All of the above; chat completions for models the delegate knows go to it.
void add_openai_routes(HttpServer& server, ModelHost& host, OpenAiOptions options = {},
                       ChatDelegate delegate = {});

// Embeddings, models, tokenize and detokenize (openai_misc_routes.cpp).
void add_embedding_and_token_routes(HttpServer& server, ModelHost& host,
                                    OpenAiOptions options = {});

}  // namespace sluice::app
