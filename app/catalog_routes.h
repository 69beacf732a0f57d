#pragma once
// The catalog and permissions REST API, in Unity Catalog's shapes (docs/governance.md):
//   /api/2.1/unity-catalog/{catalogs|schemas|tables|volumes|vector-indexes|functions|models|
//                           agents|connections}[/{full_name}]
//   /api/2.1/unity-catalog/permissions/{securable_type}/{full_name}
//   /api/2.1/unity-catalog/effective-permissions/{securable_type}/{full_name}
// Every decision goes through governance::Authorizer::require (audited); every write is audited.

#include "app/http_server.h"
#include "governance/governance.h"

namespace sluice::app {

void add_catalog_routes(HttpServer& server, governance::Governance& gov);

}  // namespace sluice::app
