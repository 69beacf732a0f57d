#pragma once
// Talking to a `sluice serve` that loads a model, for the integration tests of indexes embedded
// by the model: the model's width, an authenticated client, JSON posts and waiting for the load.

#include <httplib.h>

#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "sluice_server.h"

namespace sluice::testing {

// d_model from a checkpoint folder's config.json.
inline int d_model_of(const std::filesystem::path& model_dir) {
    std::ifstream in(model_dir / "config.json");
    REQUIRE(in);
    return nlohmann::json::parse(in).at("d_model").get<int>();
}

// A client of 127.0.0.1:`port` with `token` as its bearer and room for a model's first answers.
inline httplib::Client model_server_client(int port, const std::string& token) {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(120, 0);
    c.set_bearer_token_auth(token);
    return c;
}

inline nlohmann::json post_json(httplib::Client& c, const std::string& path,
                                const nlohmann::json& body) {
    return ok_json(c.Post(path, body.dump(), "application/json"));
}

// Waits (up to a minute) until /readyz reports the model loaded; fails the test otherwise.
inline void wait_model_loaded(httplib::Client& c) {
    using namespace std::chrono_literals;
    for (int i = 0; i < 1200; ++i) {
        auto ready = c.Get("/readyz");
        REQUIRE(ready);
        nlohmann::json checks = nlohmann::json::parse(ready->body)["checks"];
        if (checks.contains("model") && checks["model"]["ready"] == true) {
            return;
        }
        std::this_thread::sleep_for(50ms);
    }
    FAIL("the model did not load");
}

}  // namespace sluice::testing
