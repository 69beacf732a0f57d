// HangUpWatch: a handler that works before it answers learns that its client hung up (its stop
// token is requested), and one whose client waits is left alone.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "app/build_info.h"
#include "app/connection_probe.h"
#include "app/http_server.h"

using namespace sluice::app;
using namespace std::chrono_literals;

namespace {

// A server whose one route watches its client for up to `watch_for`, then answers whether the
// client hung up meanwhile.
struct WatchingServer {
    Metrics metrics{build_info()};
    HttpServer server;
    std::jthread thread;
    std::atomic<bool> started{false};
    std::promise<bool> saw_hang_up;

    explicit WatchingServer(std::chrono::milliseconds watch_for)
        : server(HttpServerOptions{.host = "127.0.0.1", .port = 0, .access_log = false}, metrics) {
        server.route("POST", "/slow",
                     [this, watch_for](const RequestInfo&, const httplib::Request& req,
                                       httplib::Response& res) {
                         HangUpWatch watch(req);
                         started = true;
                         const auto until = std::chrono::steady_clock::now() + watch_for;
                         while (!watch.stop_token().stop_requested() &&
                                std::chrono::steady_clock::now() < until) {
                             std::this_thread::sleep_for(10ms);
                         }
                         saw_hang_up.set_value(watch.stop_token().stop_requested());
                         res.set_content("done", "text/plain");
                     });
        REQUIRE(server.bind().ok());
        thread = std::jthread([this] { (void)server.serve(); });
    }
    ~WatchingServer() { server.stop(); }
};

// A connected socket that has sent one whole POST /slow.
int send_request(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
    const std::string request =
        "POST /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Content-Length: 2\r\n\r\n{}";
    REQUIRE(::send(fd, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size()));
    return fd;
}

}  // namespace

TEST_CASE("a client that hangs up requests the watch's stop") {
    WatchingServer running(20s);
    const int fd = send_request(running.server.port());
    for (int i = 0; i < 500 && !running.started; ++i) {
        std::this_thread::sleep_for(10ms);
    }
    REQUIRE(running.started);
    ::close(fd);
    auto seen = running.saw_hang_up.get_future();
    REQUIRE(seen.wait_for(15s) == std::future_status::ready);
    CHECK(seen.get());
}

TEST_CASE("a client that waits for its answer is not taken for gone") {
    WatchingServer running(1500ms);
    const int fd = send_request(running.server.port());
    auto seen = running.saw_hang_up.get_future();
    REQUIRE(seen.wait_for(15s) == std::future_status::ready);
    CHECK_FALSE(seen.get());
    ::close(fd);
}
