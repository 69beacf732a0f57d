#pragma once
// Principals, groups, API tokens and the audit log over REST (docs/governance.md):
//   GET  /api/2.0/sluice/me
//   GET|POST /api/2.0/sluice/principals, DELETE /api/2.0/sluice/principals/{name}   (admin writes)
//   GET /api/2.0/sluice/groups/{group}/members, PUT|DELETE .../members/{member}     (admin writes)
//   POST /api/2.0/token/create, GET /api/2.0/token/list, POST /api/2.0/token/delete
//   GET /api/2.0/sluice/audit (JSON lines), GET /api/2.0/sluice/audit/verify        (admin)

#include "app/http_server.h"
#include "governance/governance.h"

namespace sluice::app {

void add_principal_routes(HttpServer& server, governance::Governance& gov);

}  // namespace sluice::app
