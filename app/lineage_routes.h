#pragma once
// The lineage REST API (docs/governance.md):
//   GET  /api/2.1/lineage/upstream?node=TYPE:NAME[&depth=N]     what the node came from
//   GET  /api/2.1/lineage/downstream?node=TYPE:NAME[&depth=N]   where it went
//   POST /api/2.1/lineage/edges  {"edges": [{"source", "target", "source_governed_by"}]}  (admin)
// Reading is authorised per node by governance::Lineage; nodes the caller may not see come back
// as {"id", "hidden": true} without type or name.

#include "app/http_server.h"
#include "governance/governance.h"

namespace sluice::app {

void add_lineage_routes(HttpServer& server, governance::Governance& gov);

}  // namespace sluice::app
