#include "app/http_server.h"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>

#include "app/build_info.h"
#include "app/http_errors.h"
#include "raw_client.h"

using namespace sluice::app;

namespace {

// An HttpServer on an ephemeral loopback port, served on a background thread.
struct RunningServer {
    Metrics metrics{build_info()};
    HttpServer server;
    std::jthread thread;

    explicit RunningServer(HttpServerOptions options) : server(options_for(options), metrics) {
        server.route("POST", "/echo",
                     [](const RequestInfo& info, const httplib::Request& req,
                        httplib::Response& res) {
                         auto body = parse_json_body(req);
                         if (!body.ok()) {
                             send_status(res, body.status(), info.request_id);
                             return;
                         }
                         res.set_content(body->dump(), "application/json");
                     });
        server.route("GET", "/boom",
                     [](const RequestInfo&, const httplib::Request&, httplib::Response&) {
                         throw std::runtime_error("a bug");
                     });
        server.route("GET", R"(/items/(\d+))",
                     [](const RequestInfo&, const httplib::Request& req, httplib::Response& res) {
                         res.set_content(req.matches[1].str(), "text/plain");
                     });
        REQUIRE(server.bind().ok());
        thread = std::jthread([this] { (void)server.serve(); });
    }
    ~RunningServer() {
        server.stop();
    }

    static HttpServerOptions options_for(HttpServerOptions options) {
        options.host = "127.0.0.1";
        options.port = 0;
        options.access_log = false;
        return options;
    }

    httplib::Client client() { return httplib::Client("127.0.0.1", server.port()); }
};

}  // namespace

TEST_CASE("handlers get a request id and JSON bodies are parsed") {
    RunningServer running(HttpServerOptions{});
    auto client = running.client();
    auto ok = client.Post("/echo", R"({"a": [1, 2]})", "application/json");
    REQUIRE(ok);
    CHECK(ok->status == 200);
    CHECK(nlohmann::json::parse(ok->body) == nlohmann::json{{"a", {1, 2}}});
    CHECK_FALSE(ok->get_header_value("X-Request-Id").empty());
}

TEST_CASE("malformed JSON is a 400 envelope with the byte offset") {
    RunningServer running(HttpServerOptions{});
    auto client = running.client();
    auto bad = client.Post("/echo", R"({"a": [1, 2})", "application/json");
    REQUIRE(bad);
    CHECK(bad->status == 400);
    auto error = nlohmann::json::parse(bad->body)["error"];
    CHECK(error["type"] == "invalid_request_error");
    CHECK(error["code"] == "invalid_argument");
    CHECK(error["message"].get<std::string>().find("malformed JSON in request body at byte") !=
          std::string::npos);
    CHECK(error["request_id"] == bad->get_header_value("X-Request-Id"));

    auto wrong_type = client.Post("/echo", "a=1", "application/x-www-form-urlencoded");
    REQUIRE(wrong_type);
    CHECK(wrong_type->status == 400);
}

TEST_CASE("a POST that gives no body length is told so: 411") {
    RunningServer running(HttpServerOptions{});
    // What `curl -X POST URL` sends: neither Content-Length nor Transfer-Encoding.
    sluice::testing::RawClient raw(running.server.port(), "");
    raw.send("POST /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    const std::string answer = raw.read_until("}}");
    CHECK(answer.starts_with("HTTP/1.1 411"));
    CHECK(answer.find("\"code\":\"length_required\"") != std::string::npos);
    CHECK(answer.find("a POST request needs a Content-Length header") != std::string::npos);

    // A request line that is not HTTP stays a plain 400.
    sluice::testing::RawClient garbage(running.server.port(), "");
    garbage.send("NOT HTTP AT ALL\r\n\r\n");
    CHECK(garbage.read_until("}}").starts_with("HTTP/1.1 400"));
}

TEST_CASE("a handler that throws answers 500 and the server keeps serving") {
    RunningServer running(HttpServerOptions{});
    auto client = running.client();
    auto boom = client.Get("/boom");
    REQUIRE(boom);
    CHECK(boom->status == 500);
    CHECK(nlohmann::json::parse(boom->body)["error"]["type"] == "server_error");
    auto after = client.Get("/items/42");
    REQUIRE(after);
    CHECK(after->body == "42");
}

TEST_CASE("405 lists the allowed methods; 404 for paths no route matches") {
    RunningServer running(HttpServerOptions{});
    auto client = running.client();
    auto wrong = client.Delete("/items/7");
    REQUIRE(wrong);
    CHECK(wrong->status == 405);
    CHECK(wrong->get_header_value("Allow") == "GET, HEAD");
    auto missing = client.Get("/items/abc");
    REQUIRE(missing);
    CHECK(missing->status == 404);
}

TEST_CASE("bodies over the limit get 413") {
    HttpServerOptions options;
    options.max_body_bytes = 16;
    RunningServer running(options);
    auto client = running.client();
    auto big = client.Post("/echo", std::string(100, ' '), "application/json");
    REQUIRE(big);
    CHECK(big->status == 413);
    CHECK(nlohmann::json::parse(big->body)["error"]["code"] == "payload_too_large");
}

TEST_CASE("requests are counted by route pattern, not raw path") {
    RunningServer running(HttpServerOptions{});
    auto client = running.client();
    REQUIRE(client.Get("/items/1"));
    REQUIRE(client.Get("/items/2"));
    REQUIRE(client.Get("/nowhere"));
    // The server records a request after its last byte is written, so the client can be first.
    for (int i = 0; i < 500 && running.server.in_flight() != 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::string text = running.metrics.render();
    CHECK(text.find("sluice_http_requests_total{route=\"/items/(\\\\d+)\",method=\"GET\","
                    "status=\"200\"} 2") != std::string::npos);
    CHECK(text.find("route=\"unmatched\",method=\"GET\",status=\"404\"} 1") != std::string::npos);
    CHECK(running.server.in_flight() == 0);
}

TEST_CASE("status codes map to HTTP statuses one to one") {
    CHECK(http_status_for(sluice::StatusCode::kInvalidArgument) == 400);
    CHECK(http_status_for(sluice::StatusCode::kUnauthenticated) == 401);
    CHECK(http_status_for(sluice::StatusCode::kPermissionDenied) == 403);
    CHECK(http_status_for(sluice::StatusCode::kNotFound) == 404);
    CHECK(http_status_for(sluice::StatusCode::kPayloadTooLarge) == 413);
    CHECK(http_status_for(sluice::StatusCode::kResourceExhausted) == 429);
    CHECK(http_status_for(sluice::StatusCode::kUnavailable) == 503);
    CHECK(error_type_for(429) == "rate_limit_error");
}

TEST_CASE("request ids from clients are accepted only when well-formed") {
    httplib::Request req;
    req.set_header("X-Request-Id", "abc-123_x.y:z");
    CHECK(request_id_from(req) == "abc-123_x.y:z");
    httplib::Request bad;
    bad.set_header("X-Request-Id", std::string(200, 'a'));
    CHECK(request_id_from(bad).rfind("req_", 0) == 0);
    CHECK(request_id_from(bad).size() == 28);
}

TEST_CASE("a second server cannot bind a port that a server listens on") {
    RunningServer first(HttpServerOptions{});
    Metrics metrics{build_info()};
    HttpServerOptions options;
    options.host = "127.0.0.1";
    options.port = first.server.port();
    options.access_log = false;
    HttpServer second(options, metrics);
    sluice::Status bound = second.bind();
    CHECK(bound.code() == sluice::StatusCode::kUnavailable);
    CHECK(bound.message().find(std::to_string(first.server.port())) != std::string::npos);
    // The first still answers every request (none goes to a second listener).
    for (int i = 0; i < 8; ++i) {
        auto res = first.client().Get("/items/7");
        REQUIRE(res);
        CHECK(res->body == "7");
    }
}
