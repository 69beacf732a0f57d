#include "app/console_routes.h"

#include <doctest/doctest.h>

#include <thread>

#include "app/build_info.h"
#include "app/http_errors.h"
#include "app/web_assets.h"

using namespace sluice::app;

namespace {

// A server whose authenticator refuses everyone, with the console and one API route: what the
// console serves must not depend on credentials, and must open nothing else.
struct ConsoleServer {
    Metrics metrics{build_info()};
    HttpServer server{HttpServerOptions{.host = "127.0.0.1", .port = 0, .access_log = false},
                      metrics};
    std::jthread thread;

    ConsoleServer() {
        server.set_authenticator(
            [](const httplib::Request&, const std::string&,
               const std::string&) -> sluice::Result<Identity> {
                return sluice::Status(sluice::StatusCode::kUnauthenticated, "no token");
            },
            {"/", "/console"}, {kConsolePrefix});
        add_console_routes(server);
        server.route("GET", "/api/secret",
                     [](const RequestInfo&, const httplib::Request&, httplib::Response& res) {
                         res.set_content("secret", "text/plain");
                     });
        REQUIRE(server.bind().ok());
        thread = std::jthread([this] { (void)server.serve(); });
    }
    ~ConsoleServer() { server.stop(); }

    httplib::Client client() { return httplib::Client("127.0.0.1", server.port()); }
};

}  // namespace

TEST_CASE("the embedded console holds its page, scripts and styles") {
    bool index = false;
    bool script = false;
    bool style = false;
    for (const WebAsset& asset : web_assets()) {
        CHECK_FALSE(asset.content.empty());
        index = index || (asset.path == "index.html" &&
                          asset.content_type == "text/html; charset=utf-8");
        script = script || (asset.path == "js/app.js" &&
                            asset.content_type == "text/javascript; charset=utf-8");
        style = style || (asset.path == "css/console.css" &&
                          asset.content_type == "text/css; charset=utf-8");
    }
    CHECK(index);
    CHECK(script);
    CHECK(style);
}

TEST_CASE("console files are open, typed, cached by ETag and under a strict policy") {
    ConsoleServer running;
    auto client = running.client();

    auto root = client.Get("/");
    REQUIRE(root);
    CHECK(root->status == 302);
    CHECK(root->get_header_value("Location") == "/console/");
    auto bare = client.Get("/console");
    REQUIRE(bare);
    CHECK(bare->status == 302);

    auto index = client.Get("/console/");
    REQUIRE(index);
    CHECK(index->status == 200);
    CHECK(index->get_header_value("Content-Type") == "text/html; charset=utf-8");
    CHECK(index->get_header_value("Content-Security-Policy") == kConsoleContentSecurityPolicy);
    CHECK(index->get_header_value("X-Content-Type-Options") == "nosniff");
    CHECK(index->get_header_value("Cache-Control") == "no-cache");
    CHECK(index->body.find("<script type=\"module\" src=\"js/app.js\">") != std::string::npos);

    auto script = client.Get("/console/js/app.js");
    REQUIRE(script);
    CHECK(script->status == 200);
    CHECK(script->get_header_value("Content-Type") == "text/javascript; charset=utf-8");
    std::string etag = script->get_header_value("ETag");
    REQUIRE_FALSE(etag.empty());
    auto again = client.Get("/console/js/app.js", httplib::Headers{{"If-None-Match", etag}});
    REQUIRE(again);
    CHECK(again->status == 304);
    CHECK(again->body.empty());

    auto missing = client.Get("/console/js/nope.js");
    REQUIRE(missing);
    CHECK(missing->status == 404);
}

TEST_CASE("the console's open prefix opens nothing but the console") {
    ConsoleServer running;
    auto client = running.client();
    auto api = client.Get("/api/secret");
    REQUIRE(api);
    CHECK(api->status == 401);
    for (const char* path : {"/console/../api/secret", "/console/%2e%2e/api/secret",
                             "/consolex/", "/console/js/../../api/secret"}) {
        CAPTURE(path);
        auto sneaky = client.Get(path);
        REQUIRE(sneaky);
        CHECK(sneaky->status != 200);
        CHECK(sneaky->body != "secret");
    }
}
