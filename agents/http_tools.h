#pragma once
// HTTP tools through a connection object: `http_request` (the model names a URL) and
// user-defined HTTP endpoint tools (the tool's author fixes method and path template; the model
// fills the {placeholders} and the body).
//
// A Connection is a catalog connection (USE_CONNECTION is required of the identity the call runs
// as, audited) plus what reaching it needs: its secret (sent as one header, never logged,
// traced or returned), the hosts it may reach, and its timeout and response-size limits. A URL
// whose host is not on the list is refused before any byte leaves, whatever the model was
// told by a document or a user.
//
// Thread safety: thread-safe; each call uses its own client.

#include <string>
#include <vector>

#include "agents/tool.h"
#include "governance/authorizer.h"

namespace sluice::agents {

struct Connection {
    std::string name;                        // the catalog connection
    std::vector<std::string> allowed_hosts;  // "host" or "host:port"; exact, lower case
    std::string secret_header;               // e.g. "Authorization"; "" for none
    std::string secret;                      // its value; a secret
    int timeout_ms = 5000;
    size_t max_response_bytes = 256 * 1024;
};

// The URL split for a client: scheme, host, port, path with query.
struct ParsedUrl {
    bool https = false;
    std::string host;
    int port = 80;  // 443 for https when not given
    std::string target;  // "/path?query"
};
// kInvalidArgument for anything but http[s]://host[:port]/path (no user info).
Result<ParsedUrl> parse_http_url(const std::string& url);

// Sends one request through `connection` as `context`'s identity: {"status", "body",
// "truncated", "content_type"}. kPermissionDenied when the host is not allowed or the identity
// lacks USE_CONNECTION; kDeadlineExceeded on timeout; kUnavailable when the host cannot be
// reached.
Result<nlohmann::json> send_through(governance::Authorizer& authorizer,
                                    const ToolContext& context, const Connection& connection,
                                    const std::string& method, const std::string& url,
                                    const std::string& body);

class HttpRequestTool final : public Tool {
public:
    HttpRequestTool(std::string function_name, std::string description, Connection connection,
                    governance::Authorizer& authorizer);
    Result<nlohmann::json> invoke(const ToolContext& context,
                                  const nlohmann::json& arguments) override;

private:
    Connection connection_;
    governance::Authorizer& authorizer_;
};

// method and "http://host/path/{id}" fixed by the author; {name} placeholders are filled from the
// arguments (URL-encoded); an argument "body" (when the schema has it) is sent as the body.
class HttpEndpointTool final : public Tool {
public:
    HttpEndpointTool(std::string function_name, std::string description, std::string method,
                     std::string url_template, nlohmann::json parameters, Connection connection,
                     governance::Authorizer& authorizer);
    Result<nlohmann::json> invoke(const ToolContext& context,
                                  const nlohmann::json& arguments) override;

private:
    std::string method_;
    std::string url_template_;
    Connection connection_;
    governance::Authorizer& authorizer_;
};

}  // namespace sluice::agents
