#include "app/openai_route_support.h"

#include <algorithm>

#include "app/governance_http.h"

namespace sluice::app {

void send_model_error(httplib::Response& res, const Status& status, const RequestInfo& info,
                      std::optional<std::int64_t> retry_after_s) {
    if (status.code() == StatusCode::kResourceExhausted && retry_after_s) {
        res.set_header("Retry-After", std::to_string(std::max<std::int64_t>(*retry_after_s, 1)));
    }
    send_status(res, status, info.request_id);
}

bool serves_model(const ModelHost& host, const std::string& model, const RequestInfo& info,
                  httplib::Response& res) {
    if (model.empty() || model == host.model_id()) {
        return true;
    }
    send_error(res, 404, "model_not_found",
               "the model '" + model + "' does not exist; this server serves '" +
                   host.model_id() + "'",
               info.request_id);
    return false;
}

Status check_engine_room(inference::Engine& engine) { return engine.check_capacity(); }

Result<std::unique_ptr<ModelCall>> open_model_call(const OpenAiOptions& options,
                                                   const ModelHost& host, const RequestInfo& info,
                                                   httplib::Response& res, bool token_logprobs) {
    if (options.governance == nullptr) {
        return std::unique_ptr<ModelCall>();
    }
    auto call = std::make_unique<ModelCall>(*options.governance, context_of(info),
                                            host.model_id(), host.settings().securable);
    if (Status allowed = call->authorize(); !allowed.ok()) {
        send_model_error(res, allowed, info);
        return allowed;
    }
    if (token_logprobs) {
        if (Status allowed = call->allow_token_logprobs(); !allowed.ok()) {
            send_model_error(res, allowed, info);
            return allowed;
        }
    }
    return call;
}

}  // namespace sluice::app
