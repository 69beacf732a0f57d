#pragma once
// One error envelope for every 4xx and 5xx answer, in the shape OpenAI clients understand:
//   {"error": {"message": "...", "type": "invalid_request_error", "code": "invalid_argument",
//              "request_id": "..."}}
// and the one mapping from StatusCode to HTTP status.

#include <string>
#include <string_view>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "common/result.h"

namespace sluice::app {

int http_status_for(StatusCode code);

// OpenAI's error "type" for an HTTP status: invalid_request_error, authentication_error,
// permission_error, not_found_error, rate_limit_error, server_error...
std::string_view error_type_for(int http_status);

nlohmann::json error_envelope(int http_status, std::string_view code, std::string_view message,
                              std::string_view request_id);

// Writes the envelope as the response body with the given status.
void send_error(httplib::Response& res, int http_status, std::string_view code,
                std::string_view message, std::string_view request_id);

// Writes a failed Status as an error response.
void send_status(httplib::Response& res, const Status& status, std::string_view request_id);

// Parses a request body as a JSON object. kInvalidArgument (400) when Content-Type is present
// and not JSON, when the body is empty, when it is malformed (the message gives the byte
// offset), when an object names a member twice (strict_json.h), or when it is JSON but not an
// object.
Result<nlohmann::json> parse_json_body(const httplib::Request& req);

}  // namespace sluice::app
