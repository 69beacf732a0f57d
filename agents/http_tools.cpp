#include "agents/http_tools.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>

#include "common/log.h"

namespace sluice::agents {
namespace {

using nlohmann::json;

constexpr size_t kMaxUrlBytes = 2048;
constexpr size_t kMaxBodyBytes = 64 * 1024;

std::string lower(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

std::string url_encode(const std::string& text) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : text) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out.push_back(static_cast<char>(c));
        } else {
            out += '%';
            out += kHex[c >> 4];
            out += kHex[c & 0xF];
        }
    }
    return out;
}

bool host_allowed(const Connection& connection, const ParsedUrl& url) {
    std::string with_port = url.host + ":" + std::to_string(url.port);
    for (const std::string& allowed : connection.allowed_hosts) {
        std::string entry = lower(allowed);
        bool default_port = url.port == (url.https ? 443 : 80);
        if (entry == with_port || (entry == url.host && default_port)) {
            return true;
        }
    }
    return false;
}

}  // namespace

Result<ParsedUrl> parse_http_url(const std::string& url) {
    ParsedUrl parsed;
    std::string rest;
    if (lower(url.substr(0, 7)) == "http://") {
        rest = url.substr(7);
    } else if (lower(url.substr(0, 8)) == "https://") {
        rest = url.substr(8);
        parsed.https = true;
        parsed.port = 443;
    } else {
        return invalid_argument("url '" + url + "': expected an http:// or https:// URL");
    }
    size_t slash = rest.find('/');
    std::string authority = rest.substr(0, slash);
    parsed.target = slash == std::string::npos ? "/" : rest.substr(slash);
    if (authority.empty() || authority.find('@') != std::string::npos) {
        return invalid_argument("url '" + url + "': expected http://host[:port]/path");
    }
    size_t colon = authority.rfind(':');
    parsed.host = lower(authority.substr(0, colon));
    if (colon != std::string::npos) {
        std::string port = authority.substr(colon + 1);
        if (port.empty() || port.size() > 5 ||
            !std::all_of(port.begin(), port.end(), [](unsigned char c) { return std::isdigit(c); })) {
            return invalid_argument("url '" + url + "': bad port '" + port + "'");
        }
        parsed.port = std::stoi(port);
        if (parsed.port < 1 || parsed.port > 65535) {
            return invalid_argument("url '" + url + "': port out of range");
        }
    }
    for (char c : parsed.target) {
        if (static_cast<unsigned char>(c) <= 0x20) {
            return invalid_argument("url '" + url + "': spaces or control characters in the path");
        }
    }
    return parsed;
}

Result<json> send_through(governance::Authorizer& authorizer, const ToolContext& context,
                          const Connection& connection, const std::string& method,
                          const std::string& url, const std::string& body) {
    // Lengths are checked here rather than in the tool's schema: a bound in the schema becomes
    // a repetition in the generation grammar, and long ones are costly or refused there.
    if (url.size() > kMaxUrlBytes) {
        return invalid_argument("url: " + std::to_string(url.size()) + " bytes, at most " +
                                std::to_string(kMaxUrlBytes));
    }
    if (body.size() > kMaxBodyBytes) {
        return invalid_argument("body: " + std::to_string(body.size()) + " bytes, at most " +
                                std::to_string(kMaxBodyBytes));
    }
    SLUICE_ASSIGN_OR_RETURN(ParsedUrl parsed, parse_http_url(url));
    SLUICE_RETURN_IF_ERROR(authorizer.require(context.request,
                                              governance::Privilege::kUseConnection,
                                              governance::SecurableType::kConnection,
                                              connection.name));
    if (!host_allowed(connection, parsed)) {
        log::warn("agents", "http tool refused a host",
                  {{"connection", connection.name}, {"host", parsed.host},
                   {"request_id", context.request.request_id}});
        return Status(StatusCode::kPermissionDenied,
                      "host '" + parsed.host + ":" + std::to_string(parsed.port) +
                          "' is not allowed by connection '" + connection.name + "'");
    }
    auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(
        context.deadline - std::chrono::steady_clock::now());
    std::int64_t timeout_ms = std::min<std::int64_t>(connection.timeout_ms, remaining.count());
    if (timeout_ms <= 0) {
        return Status(StatusCode::kDeadlineExceeded, "no time left for the http request");
    }
    httplib::Client client((parsed.https ? "https://" : "http://") + parsed.host + ":" +
                           std::to_string(parsed.port));
    client.enable_server_certificate_verification(true);
    auto timeout = std::chrono::milliseconds(timeout_ms);
    client.set_connection_timeout(timeout);
    client.set_read_timeout(timeout);
    client.set_write_timeout(timeout);
    client.set_follow_location(false);  // a redirect could leave the allowed hosts
    httplib::Headers headers;
    if (!connection.secret_header.empty()) {
        headers.emplace(connection.secret_header, connection.secret);
    }
    std::string received;
    bool truncated = false;
    auto receive = [&](const char* data, size_t length) {
        size_t room = connection.max_response_bytes - received.size();
        received.append(data, std::min(room, length));
        if (length > room) {
            truncated = true;
            return false;  // stop reading: the limit is what we keep, not what we download
        }
        return true;
    };
    if (method != "GET" && method != "POST" && method != "PUT" && method != "DELETE") {
        return invalid_argument("method '" + method + "': expected GET, POST, PUT or DELETE");
    }
    httplib::Result result = [&] {
        if (method == "GET") {
            return client.Get(parsed.target, headers, receive);
        }
        httplib::Request request;
        request.method = method;
        request.path = parsed.target;
        request.headers = headers;
        request.body = body;
        if (!body.empty()) {
            request.headers.emplace("Content-Type", "application/json");
        }
        request.content_receiver = [&](const char* data, size_t length, uint64_t, uint64_t) {
            return receive(data, length);
        };
        return client.send(request);
    }();
    if (!result) {
        if (truncated && result.error() == httplib::Error::Canceled) {
            return json{{"status", 200}, {"body", received}, {"truncated", true},
                        {"content_type", ""}};
        }
        if (result.error() == httplib::Error::Read || result.error() == httplib::Error::Write ||
            result.error() == httplib::Error::ConnectionTimeout) {
            return Status(StatusCode::kDeadlineExceeded,
                          "http " + method + " " + parsed.host + ": " +
                              httplib::to_string(result.error()) + " within " +
                              std::to_string(timeout_ms) + " ms");
        }
        return unavailable("http " + method + " " + parsed.host + ": " +
                           httplib::to_string(result.error()));
    }
    return json{{"status", result->status},
                {"body", received},
                {"truncated", truncated},
                {"content_type", result->get_header_value("Content-Type")}};
}

HttpRequestTool::HttpRequestTool(std::string function_name, std::string description,
                                 Connection connection, governance::Authorizer& authorizer)
    : Tool(std::move(function_name), std::move(description),
           json({{"type", "object"},
                 {"properties",
                  {{"method", {{"type", "string"}, {"enum", {"GET", "POST"}}}},
                   {"url", {{"type", "string"}, {"minLength", 8}}},
                   {"body", {{"type", "string"}}}}},
                 {"required", {"method", "url"}},
                 {"additionalProperties", false}})),
      connection_(std::move(connection)),
      authorizer_(authorizer) {}

Result<json> HttpRequestTool::invoke(const ToolContext& context, const json& arguments) {
    return send_through(authorizer_, context, connection_, arguments.at("method"),
                        arguments.at("url"), arguments.value("body", ""));
}

HttpEndpointTool::HttpEndpointTool(std::string function_name, std::string description,
                                   std::string method, std::string url_template, json parameters,
                                   Connection connection, governance::Authorizer& authorizer)
    : Tool(std::move(function_name), std::move(description), std::move(parameters)),
      method_(std::move(method)),
      url_template_(std::move(url_template)),
      connection_(std::move(connection)),
      authorizer_(authorizer) {}

Result<json> HttpEndpointTool::invoke(const ToolContext& context, const json& arguments) {
    std::string url = url_template_;
    for (const auto& [key, value] : arguments.items()) {
        std::string placeholder = "{" + key + "}";
        std::string text = value.is_string() ? value.get<std::string>() : value.dump();
        for (size_t at = url.find(placeholder); at != std::string::npos;
             at = url.find(placeholder, at)) {
            std::string encoded = url_encode(text);
            url.replace(at, placeholder.size(), encoded);
            at += encoded.size();
        }
    }
    if (url.find('{') != std::string::npos) {
        return invalid_argument("url template '" + url_template_ +
                                "': a placeholder has no argument");
    }
    return send_through(authorizer_, context, connection_, method_, url,
                        arguments.value("body", ""));
}

}  // namespace sluice::agents
