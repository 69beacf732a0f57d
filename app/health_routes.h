#pragma once
// GET /healthz (the process is alive), GET /readyz (every subsystem ready, with reasons; 503
// otherwise) and GET /metrics (Prometheus text format).

#include "app/http_server.h"
#include "app/metrics.h"
#include "app/readiness.h"

namespace sluice::app {

void add_health_routes(HttpServer& server, const Readiness& readiness, const Metrics& metrics);

}  // namespace sluice::app
