#include "app/http_errors.h"

#include <string>

#include "app/strict_json.h"

namespace sluice::app {

int http_status_for(StatusCode code) {
    switch (code) {
        case StatusCode::kOk: return 200;
        case StatusCode::kInvalidArgument: return 400;
        case StatusCode::kUnauthenticated: return 401;
        case StatusCode::kPermissionDenied: return 403;
        case StatusCode::kNotFound: return 404;
        case StatusCode::kAlreadyExists: return 409;
        case StatusCode::kFailedPrecondition: return 409;
        case StatusCode::kAborted: return 409;
        case StatusCode::kPayloadTooLarge: return 413;
        case StatusCode::kResourceExhausted: return 429;
        case StatusCode::kCancelled: return 499;
        case StatusCode::kInternal: return 500;
        case StatusCode::kNotSupported: return 501;
        case StatusCode::kUnavailable: return 503;
        case StatusCode::kDeadlineExceeded: return 504;
        case StatusCode::kDataLoss: return 500;
        case StatusCode::kIoError: return 500;
    }
    return 500;
}

std::string_view error_type_for(int http_status) {
    switch (http_status) {
        case 401: return "authentication_error";
        case 403: return "permission_error";
        case 404: return "not_found_error";
        case 429: return "rate_limit_error";
        default: break;
    }
    if (http_status >= 500) {
        return "server_error";
    }
    return "invalid_request_error";
}

nlohmann::json error_envelope(int http_status, std::string_view code, std::string_view message,
                              std::string_view request_id) {
    return {{"error",
             {{"message", message},
              {"type", error_type_for(http_status)},
              {"code", code},
              {"request_id", request_id}}}};
}

void send_error(httplib::Response& res, int http_status, std::string_view code,
                std::string_view message, std::string_view request_id) {
    res.status = http_status;
    res.set_content(error_envelope(http_status, code, message, request_id)
                        .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                    "application/json");
}

void send_status(httplib::Response& res, const Status& status, std::string_view request_id) {
    send_error(res, http_status_for(status.code()), status_code_name(status.code()),
               status.message(), request_id);
}

Result<nlohmann::json> parse_json_body(const httplib::Request& req) {
    if (req.has_header("Content-Type")) {
        std::string type = req.get_header_value("Content-Type");
        if (type.rfind("application/json", 0) != 0) {
            return invalid_argument("expected Content-Type application/json, found '" + type +
                                    "'");
        }
    }
    if (req.body.empty()) {
        return invalid_argument("request body is empty: expected a JSON object");
    }
    // A name given twice in one object is refused (strict_json.h).
    SLUICE_ASSIGN_OR_RETURN(nlohmann::json body, parse_json_unique_names(req.body, "request body"));
    // Every route takes an object; checked here once, so that no handler reads fields of an
    // array or a number (a type error that would answer 500 instead of saying what is wrong).
    if (!body.is_object()) {
        return invalid_argument(std::string("the request body must be a JSON object, found ") +
                                (body.is_array() ? "an array" : body.is_null() ? "null"
                                 : body.is_string()                            ? "a string"
                                 : body.is_boolean()                           ? "a boolean"
                                                                               : "a number"));
    }
    return body;
}

}  // namespace sluice::app
