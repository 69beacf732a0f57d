#include "app/http_errors.h"

#include <string>
#include <unordered_set>
#include <vector>

namespace sluice::app {

namespace {

// Thrown from the JSON parser's callback to stop at a repeated object member name.
struct DuplicateName {};

}  // namespace

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
    nlohmann::json body;
    // The names of each object being read, innermost last: a name given twice in one object is
    // refused, since parsers disagree on which value wins (nlohmann's keeps the last, others the
    // first) and a proxy that checked one of them must not see a different request than we do.
    std::vector<std::unordered_set<std::string>> open_objects;
    std::string repeated_name;
    auto check_names = [&](int /*depth*/, nlohmann::json::parse_event_t event,
                           nlohmann::json& parsed) {
        using Event = nlohmann::json::parse_event_t;
        if (event == Event::object_start) {
            open_objects.emplace_back();
        } else if (event == Event::object_end) {
            open_objects.pop_back();
        } else if (event == Event::key &&
                   !open_objects.back().insert(parsed.get<std::string>()).second) {
            repeated_name = parsed.get<std::string>();
            throw DuplicateName{};
        }
        return true;
    };
    try {
        body = nlohmann::json::parse(req.body, check_names);
    } catch (const DuplicateName&) {
        return invalid_argument("malformed JSON in request body: the name '" + repeated_name +
                                "' appears twice in one object");
    } catch (const nlohmann::json::parse_error& e) {
        return invalid_argument("malformed JSON in request body at byte " +
                                std::to_string(e.byte) + ": " + e.what());
    } catch (const nlohmann::json::out_of_range& e) {
        // A number beyond double's range (1e400): well-formed JSON that no field can hold.
        return invalid_argument(std::string("JSON in request body that cannot be read: ") +
                                e.what());
    }
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
