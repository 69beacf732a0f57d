// Starts the real `sluice serve` binary on an ephemeral port and talks to it over loopback.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>
#include <httplib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>

#include "child_process.h"
#include "sluice_server.h"

namespace {

using sluice::testing::ChildProcess;
using namespace std::chrono_literals;

std::filesystem::path fresh_dir(const std::string& name) {
    std::random_device random;
    auto dir = std::filesystem::temp_directory_path() /
               ("sluice-it-" + name + "-" + std::to_string(random()));
    std::filesystem::remove_all(dir);
    return dir;
}

// A running server: started on port 0, its port read from the "listening" log line.
struct Server {
    std::unique_ptr<ChildProcess> process;
    int port = 0;
    std::filesystem::path data_dir;
    std::string admin_token;  // printed once on the first start of a data directory

    explicit Server(const std::filesystem::path& dir,
                    std::map<std::string, std::string> environment = {},
                    std::vector<std::string> extra_args = {})
        : data_dir(dir) {
        std::vector<std::string> argv = {SLUICE_BINARY, "serve", "--port", "0", "--data-dir",
                                         dir.string()};
        argv.insert(argv.end(), extra_args.begin(), extra_args.end());
        process = std::make_unique<ChildProcess>(argv, environment);
        REQUIRE(process->started());
        auto line = process->wait_for_line("\"listening\"", 20s);
        REQUIRE_MESSAGE(line.has_value(), "server did not start: " << process->output());
        auto record = nlohmann::json::parse(*line);
        std::string address = record.at("address");
        port = std::stoi(address.substr(address.rfind(':') + 1));
        std::string output = process->output();
        auto marker = output.find("admin token: ");
        if (marker != std::string::npos) {
            admin_token = output.substr(marker + 13, output.find('\n', marker) - marker - 13);
        }
    }

    httplib::Client client() const {
        httplib::Client c("127.0.0.1", port);
        c.set_read_timeout(10, 0);
        // One connection: the server finishes recording a request before it reads the next
        // one on the same connection, so /metrics sees every earlier request.
        c.set_keep_alive(true);
        return c;
    }
};

// A plain TCP connection, for requests no well-behaved client would send.
class RawConnection {
public:
    explicit RawConnection(int port) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(static_cast<uint16_t>(port));
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        connected_ =
            ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
    }
    ~RawConnection() { ::close(fd_); }
    bool connected() const { return connected_; }
    void send(const std::string& bytes) {
        REQUIRE(::write(fd_, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
    }
    // Reads until the peer closes or `expected_bytes` arrived.
    std::string receive_all() {
        std::string out;
        char chunk[4096];
        timeval timeout{10, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
        while (true) {
            ssize_t n = ::read(fd_, chunk, sizeof(chunk));
            if (n <= 0) {
                break;
            }
            out.append(chunk, static_cast<std::size_t>(n));
            auto header_end = out.find("\r\n\r\n");
            if (header_end != std::string::npos) {
                auto length_at = out.find("Content-Length: ");
                if (length_at != std::string::npos && length_at < header_end) {
                    std::size_t length = std::stoul(out.substr(length_at + 16));
                    if (out.size() >= header_end + 4 + length) {
                        break;
                    }
                }
            }
        }
        return out;
    }

private:
    int fd_ = -1;
    bool connected_ = false;
};

nlohmann::json error_of(const httplib::Result& result) {
    REQUIRE(result);
    auto body = nlohmann::json::parse(result->body);
    REQUIRE(body.contains("error"));
    CHECK(body["error"].contains("message"));
    CHECK(body["error"].contains("type"));
    CHECK(body["error"].contains("code"));
    CHECK(body["error"]["request_id"] == result->get_header_value("X-Request-Id"));
    return body["error"];
}

}  // namespace

TEST_CASE("serve answers health, readiness and metrics") {
    auto dir = fresh_dir("health");
    Server server(dir, {}, {"--model", sluice::testing::tiny_model_dir()});
    auto client = server.client();
    // Ready once the model has loaded (on its own thread, after the server listens).
    for (int i = 0; i < 600; ++i) {
        auto ready = client.Get("/readyz");
        REQUIRE(ready);
        if (ready->status == 200) {
            break;
        }
        std::this_thread::sleep_for(50ms);
    }

    auto health = client.Get("/healthz");
    REQUIRE(health);
    CHECK(health->status == 200);
    CHECK(nlohmann::json::parse(health->body)["status"] == "alive");
    CHECK(health->get_header_value("X-Request-Id").rfind("req_", 0) == 0);

    auto ready = client.Get("/readyz");
    REQUIRE(ready);
    CHECK(ready->status == 200);
    auto readiness = nlohmann::json::parse(ready->body);
    CHECK(readiness["status"] == "ready");
    CHECK(readiness["checks"]["storage"]["ready"] == true);
    CHECK(readiness["checks"]["http"]["ready"] == true);
    CHECK(readiness["checks"]["model"]["ready"] == true);

    httplib::Headers with_id = {{"X-Request-Id", "client-chosen.id-42"}};
    auto echoed = client.Get("/healthz", with_id);
    REQUIRE(echoed);
    CHECK(echoed->get_header_value("X-Request-Id") == "client-chosen.id-42");

    httplib::Headers bad_id = {{"X-Request-Id", "has spaces and \"quotes\""}};
    auto replaced = client.Get("/healthz", bad_id);
    REQUIRE(replaced);
    CHECK(replaced->get_header_value("X-Request-Id").rfind("req_", 0) == 0);

    // A request is counted once its response is written (cpp-httplib's logger hook), which can
    // come just after the client has read it: read the metrics until the third count lands.
    const std::string three_healthz =
        "sluice_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 3";
    auto metrics = client.Get("/metrics");
    for (int i = 0; i < 100 && metrics && metrics->body.find(three_healthz) == std::string::npos;
         ++i) {
        std::this_thread::sleep_for(20ms);
        metrics = client.Get("/metrics");
    }
    REQUIRE(metrics);
    CHECK(metrics->status == 200);
    CHECK(metrics->body.find("sluice_build_info{") != std::string::npos);
    CHECK(metrics->body.find(three_healthz) != std::string::npos);
    CHECK(metrics->body.find("process_resident_memory_bytes ") != std::string::npos);
    CHECK(metrics->body.find("sluice_http_request_duration_seconds_bucket{route=\"/readyz\"") !=
          std::string::npos);

    // The data directory is private and versioned.
    CHECK((std::filesystem::status(dir).permissions() & std::filesystem::perms::others_all) ==
          std::filesystem::perms::none);
    CHECK(std::filesystem::exists(dir / "FORMAT"));

    server.process->signal(SIGTERM);
    CHECK(server.process->wait(20s) == 0);
    std::filesystem::remove_all(dir);
}

TEST_CASE("serve answers errors with the JSON envelope") {
    auto dir = fresh_dir("errors");
    Server server(dir, {{"SLUICE_SERVER_MAX_BODY_BYTES", "1024"}});
    auto client = server.client();

    SUBCASE("unknown route is 401 without a token and 404 with one") {
        auto anonymous = client.Get("/no/such/route");
        REQUIRE(anonymous);
        CHECK(anonymous->status == 401);
        CHECK(error_of(anonymous)["type"] == "authentication_error");
        CHECK(anonymous->get_header_value("WWW-Authenticate").rfind("Bearer", 0) == 0);
        auto result = client.Get("/no/such/route",
                                 {{"Authorization", "Bearer " + server.admin_token}});
        REQUIRE(result);
        CHECK(result->status == 404);
        CHECK(error_of(result)["type"] == "not_found_error");
    }
    SUBCASE("wrong method is 405 with Allow") {
        auto result = client.Post("/healthz", "{}", "application/json");
        REQUIRE(result);
        CHECK(result->status == 405);
        CHECK(result->get_header_value("Allow") == "GET, HEAD");
        CHECK(error_of(result)["code"] == "method_not_allowed");
    }
    SUBCASE("oversized body is 413") {
        auto result = client.Post("/healthz", std::string(4096, 'x'), "text/plain");
        REQUIRE(result);
        CHECK(result->status == 413);
        CHECK(error_of(result)["message"].get<std::string>().find("1024") != std::string::npos);
    }
    SUBCASE("malformed request line is 400") {
        RawConnection connection(server.port);
        REQUIRE(connection.connected());
        connection.send("THIS IS NOT HTTP\r\n\r\n");
        std::string response = connection.receive_all();
        CHECK(response.rfind("HTTP/1.1 400", 0) == 0);
        auto body = nlohmann::json::parse(response.substr(response.find("\r\n\r\n") + 4));
        CHECK(body["error"]["code"] == "bad_request");
        CHECK(response.find("X-Request-Id: ") != std::string::npos);
    }
    server.process->signal(SIGTERM);
    CHECK(server.process->wait(20s) == 0);
    std::filesystem::remove_all(dir);
}

TEST_CASE("a second instance on the same data directory fails at once") {
    auto dir = fresh_dir("lock");
    Server first(dir);
    ChildProcess second({SLUICE_BINARY, "serve", "--port", "0", "--data-dir", dir.string()});
    auto code = second.wait(10s);
    REQUIRE(code.has_value());
    CHECK(*code == 1);
    CHECK(second.output().find("is in use by another sluice process (pid " +
                               std::to_string(first.process->pid()) + ")") !=
          std::string::npos);
    // The first one is unaffected.
    auto health = first.client().Get("/healthz");
    REQUIRE(health);
    CHECK(health->status == 200);
    first.process->signal(SIGTERM);
    CHECK(first.process->wait(20s) == 0);
    std::filesystem::remove_all(dir);
}

TEST_CASE("a first start that cannot bind its port still shows the admin token it made") {
    auto dir = fresh_dir("bind");
    Server first(dir);
    const std::string taken = std::to_string(first.port);
    auto second_dir = fresh_dir("bind-second");
    ChildProcess second(
        {SLUICE_BINARY, "serve", "--port", taken, "--data-dir", second_dir.string()});
    auto code = second.wait(20s);
    REQUIRE(code.has_value());
    CHECK(*code == 1);
    const std::string output = second.output();
    const auto error = output.find("sluice serve: cannot bind");
    const auto token = output.find("admin token: slc_");
    // The token exists now (only its hash is stored), so it is shown, after the error.
    REQUIRE(error != std::string::npos);
    REQUIRE(token != std::string::npos);
    CHECK(token > error);
    first.process->signal(SIGTERM);
    CHECK(first.process->wait(20s) == 0);
    std::filesystem::remove_all(dir);
    std::filesystem::remove_all(second_dir);
}

TEST_CASE("SIGTERM lets a request in flight finish, then exits 0") {
    auto dir = fresh_dir("drain");
    Server server(dir);

    // A request whose body is only half sent is in flight on the server.
    RawConnection connection(server.port);
    REQUIRE(connection.connected());
    connection.send("POST /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n"
                    "Content-Length: 10\r\nConnection: close\r\n\r\nhello");
    std::this_thread::sleep_for(300ms);

    server.process->signal(SIGTERM);
    REQUIRE(server.process->wait_for_line("shutting down", 10s).has_value());
    // Not exited while the request is unfinished.
    CHECK_FALSE(server.process->wait(500ms).has_value());
    // New connections are no longer accepted.
    RawConnection late(server.port);
    CHECK_FALSE(late.connected());

    connection.send("world");
    std::string response = connection.receive_all();
    CHECK(response.rfind("HTTP/1.1 405", 0) == 0);
    CHECK(server.process->wait(20s) == 0);
    std::filesystem::remove_all(dir);
}

TEST_CASE("bad configuration is refused with the JSON path") {
    auto dir = fresh_dir("config");
    std::filesystem::create_directories(dir);
    auto config_path = dir / "bad.json";
    std::ofstream(config_path) << R"({"server": {"port": "eighty"}})";
    ChildProcess bad_file({SLUICE_BINARY, "serve", "--config", config_path.string()});
    CHECK(bad_file.wait(10s) == 1);
    CHECK(bad_file.output().find("/server/port: expected an integer") != std::string::npos);

    ChildProcess bad_env({SLUICE_BINARY, "serve", "--data-dir", (dir / "data").string()},
                         {{"SLUICE_SERVER_THREADS", "many"}});
    CHECK(bad_env.wait(10s) == 1);
    CHECK(bad_env.output().find("SLUICE_SERVER_THREADS") != std::string::npos);
    std::filesystem::remove_all(dir);
}
