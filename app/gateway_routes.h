#pragma once
// The AI-gateway REST API (docs/governance.md): endpoint settings (prices, personal-data
// guardrails), rate limits and token budgets, and usage.
//   GET    /api/2.0/serving-endpoints                          configured endpoints
//   GET    /api/2.0/serving-endpoints/{name}/ai-gateway        one endpoint's settings
//   PUT    /api/2.0/serving-endpoints/{name}/ai-gateway        (admin) change them
//   DELETE /api/2.0/serving-endpoints/{name}/ai-gateway        (admin) back to defaults
//   GET    /api/2.0/sluice/limits                              limits (admins: all; others: theirs)
//   POST   /api/2.0/sluice/limits                              (admin) create or replace
//   DELETE /api/2.0/sluice/limits/{id}                         (admin)
//   GET    /api/2.0/sluice/usage?group_by=&from=&to=&principal=&endpoint=
// Admin checks and writes are audited.

#include "app/http_server.h"
#include "governance/governance.h"

namespace sluice::app {

void add_gateway_routes(HttpServer& server, governance::Governance& gov);

// "2026-11-26" → microseconds since the epoch at 00:00 UTC that day. kInvalidArgument otherwise.
Result<std::int64_t> parse_utc_day(const std::string& text);

}  // namespace sluice::app
