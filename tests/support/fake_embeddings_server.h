#pragma once
// A loopback stand-in for an OpenAI-compatible embeddings server (POST /v1/embeddings) whose
// answer each test chooses, for tests of the http embedder and what uses it.

#include <httplib.h>

#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>

namespace sluice::testing {

// Records the last request body. Thread safety: last_request() may be called from any thread.
class FakeEmbeddingsServer {
public:
    using Answer = std::function<void(const nlohmann::json& request, httplib::Response& res)>;

    explicit FakeEmbeddingsServer(Answer answer) : answer_(std::move(answer)) {
        server_.Post("/v1/embeddings", [this](const httplib::Request& req, httplib::Response& res) {
            auto request = nlohmann::json::parse(req.body);
            {
                std::lock_guard lock(mutex_);
                last_request_ = request;
            }
            answer_(request, res);
        });
        // Bound and listening on return: a request made before the accept loop starts waits.
        port_ = server_.bind_to_any_port("127.0.0.1");
        thread_ = std::thread([this] { server_.listen_after_bind(); });
    }
    ~FakeEmbeddingsServer() {
        server_.stop();
        thread_.join();
    }

    std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_) + "/"; }
    nlohmann::json last_request() {
        std::lock_guard lock(mutex_);
        return last_request_;
    }

private:
    Answer answer_;
    httplib::Server server_;
    int port_ = 0;
    std::thread thread_;
    std::mutex mutex_;
    nlohmann::json last_request_;
};

}  // namespace sluice::testing
