#include "app/health_routes.h"

#include <nlohmann/json.hpp>

#include "app/http_errors.h"

namespace sluice::app {

void add_health_routes(HttpServer& server, const Readiness& readiness, const Metrics& metrics) {
    server.route("GET", "/healthz",
                 [](const RequestInfo&, const httplib::Request&, httplib::Response& res) {
                     res.set_content(R"({"status":"alive"})", "application/json");
                 });

    server.route("GET", "/readyz",
                 [&readiness](const RequestInfo& info, const httplib::Request&,
                              httplib::Response& res) {
                     nlohmann::json checks = nlohmann::json::object();
                     for (const auto& check : readiness.checks()) {
                         checks[check.name] = {{"ready", check.ready}, {"reason", check.reason}};
                     }
                     bool ready = readiness.ready();
                     std::string status = readiness.draining() ? "draining"
                                          : ready              ? "ready"
                                                               : "not_ready";
                     nlohmann::json body = {{"status", status}, {"checks", checks}};
                     if (!ready) {
                         // 503 carries the error envelope too, like every 4xx/5xx answer.
                         std::string why = readiness.draining() ? "the server is shutting down"
                                                                : "not every subsystem is ready";
                         body.update(error_envelope(503, "unavailable", why, info.request_id));
                     }
                     res.status = ready ? 200 : 503;
                     res.set_content(body.dump(), "application/json");
                 });

    server.route("GET", "/metrics",
                 [&metrics](const RequestInfo&, const httplib::Request&, httplib::Response& res) {
                     res.set_content(metrics.render(), "text/plain; version=0.0.4; charset=utf-8");
                 });
}

}  // namespace sluice::app
