#pragma once
// Integration-test helpers: a tiny model folder made once per test process by the real
// `sluice model init-tiny`, and a `sluice serve` child on an ephemeral port.

#include <doctest/doctest.h>
#include <httplib.h>

#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "child_process.h"
#include "inference/hf_tokenizer.h"
#include "inference/tokenizer_files.h"

namespace sluice::testing {

using namespace std::chrono_literals;

inline std::filesystem::path fresh_test_dir(const std::string& name) {
    std::random_device random;
    auto dir = std::filesystem::temp_directory_path() /
               ("sluice-it-" + name + "-" + std::to_string(random()));
    std::filesystem::remove_all(dir);
    return dir;
}

// A tiny random DBRX checkpoint with tokenizer files, shared by the tests of this process and
// removed when it exits.
inline std::string tiny_model_dir() {
    struct Folder {
        std::filesystem::path path = fresh_test_dir("model");
        ~Folder() {
            std::error_code ec;
            std::filesystem::remove_all(path, ec);
        }
    };
    static const Folder folder;
    static const bool written = [] {
        ChildProcess init({SLUICE_BINARY, "model", "init-tiny", "--out", folder.path.string()});
        REQUIRE(init.wait(120s) == 0);
        if (!std::filesystem::exists(folder.path / "tokenizer.json")) {
            auto tokenizer = inference::open_dbrx_tiktoken(std::string(SLUICE_SOURCE_DIR) +
                                                           "/inference/assets/cl100k_base.tiktoken");
            REQUIRE(tokenizer.ok());
            REQUIRE(inference::write_hf_tokenizer_files(**tokenizer, folder.path).ok());
        }
        return true;
    }();
    (void)written;
    return folder.path.string();
}

// What a started `sluice serve` printed: where it listens and, on the first start of a data
// directory, the admin token (empty on later starts).
struct ServeStart {
    std::string address;  // "127.0.0.1:PORT"
    int port = 0;
    std::string admin_token;
};

// Waits for the "listening" log line of a `sluice serve` child and reads what it printed.
inline ServeStart wait_listening(ChildProcess& serve, std::chrono::seconds timeout = 20s) {
    auto line = serve.wait_for_line("\"listening\"", timeout);
    REQUIRE_MESSAGE(line.has_value(), "server did not start: " << serve.output());
    ServeStart start;
    start.address = nlohmann::json::parse(*line).at("address").get<std::string>();
    start.port = std::stoi(start.address.substr(start.address.rfind(':') + 1));
    const std::string output = serve.output();
    const auto marker = output.find("admin token: ");
    if (marker != std::string::npos) {
        start.admin_token = output.substr(marker + 13, output.find('\n', marker) - marker - 13);
    }
    return start;
}

// The body of a 200 answer as JSON; fails the test, showing the body, otherwise.
inline nlohmann::json ok_json(const httplib::Result& result) {
    REQUIRE(result);
    INFO(result->body);
    REQUIRE(result->status == 200);
    return nlohmann::json::parse(result->body);
}

// A running server, its port read from the "listening" log line.
struct ServerProcess {
    std::unique_ptr<ChildProcess> process;
    int port = 0;
    std::filesystem::path data_dir;
    std::string admin_token;  // printed on the first start of a data directory

    ServerProcess(const std::string& name, const std::string& model,
                  std::map<std::string, std::string> environment = {})
        : data_dir(fresh_test_dir(name)) {
        environment.emplace("SLUICE_LOG_ACCESS_LOG", "false");
        std::vector<std::string> argv = {SLUICE_BINARY, "serve",   "--port", "0", "--data-dir",
                                         data_dir.string(), "--model", model};
        process = std::make_unique<ChildProcess>(argv, environment);
        REQUIRE(process->started());
        const ServeStart start = wait_listening(*process);
        REQUIRE_MESSAGE(!start.admin_token.empty(), "no admin token in: " << process->output());
        port = start.port;
        admin_token = start.admin_token;
    }
    ~ServerProcess() {
        process->signal(SIGTERM);
        process->wait(20s);
        std::error_code ec;
        std::filesystem::remove_all(data_dir, ec);
    }

    // A JSON request as `token`: "PUT", "GET" or "POST" (anything else).
    httplib::Result send(const std::string& token, const std::string& method,
                         const std::string& path, const nlohmann::json& body = nullptr) const {
        httplib::Client c("127.0.0.1", port);
        c.set_read_timeout(300, 0);
        httplib::Headers headers = {{"Authorization", "Bearer " + token}};
        if (method == "PUT") {
            return c.Put(path, headers, body.dump(), "application/json");
        }
        if (method == "GET") {
            return c.Get(path, headers);
        }
        return c.Post(path, headers, body.dump(), "application/json");
    }

    httplib::Client client() const {
        httplib::Client c("127.0.0.1", port);
        c.set_read_timeout(60, 0);
        c.set_bearer_token_auth(admin_token);
        return c;
    }

    // Waits (bounded) until the model check of /readyz has the wanted state.
    nlohmann::json wait_model_ready(bool ready) const {
        nlohmann::json body;
        for (int i = 0; i < 600; ++i) {
            auto result = client().Get("/readyz");
            REQUIRE(result);
            body = nlohmann::json::parse(result->body);
            if (body["checks"].contains("model") && body["checks"]["model"]["ready"] == ready &&
                (ready || body["checks"]["model"]["reason"].get<std::string>().find(
                              "loading") == std::string::npos)) {
                return body;
            }
            std::this_thread::sleep_for(50ms);
        }
        FAIL("model readiness never became " << ready << ": " << body.dump());
        return body;
    }

    // The value of an unlabelled metric from /metrics.
    double metric(const std::string& name) const {
        auto result = client().Get("/metrics");
        REQUIRE(result);
        auto at = result->body.find("\n" + name + " ");
        REQUIRE_MESSAGE(at != std::string::npos, name << " missing from /metrics");
        return std::stod(result->body.substr(at + name.size() + 2));
    }
};

}  // namespace sluice::testing
