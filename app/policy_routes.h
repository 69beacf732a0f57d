#pragma once
// Row filters, column masks and table columns over REST (docs/governance.md):
//   GET    /api/2.1/unity-catalog/tables/{full_name}/policies               BROWSE
//   PUT    /api/2.1/unity-catalog/tables/{full_name}/columns                MANAGE  {"columns": [{"name", "type_name"}]}
//   PUT    /api/2.1/unity-catalog/tables/{full_name}/row-filter             MANAGE  {"expression"}
//   DELETE /api/2.1/unity-catalog/tables/{full_name}/row-filter             MANAGE
//   PUT    /api/2.1/unity-catalog/tables/{full_name}/column-masks/{column}  MANAGE  {"expression"}
//   DELETE /api/2.1/unity-catalog/tables/{full_name}/column-masks/{column}  MANAGE
// Decisions go through Authorizer::require (audited); writes are audited.

#include <nlohmann/json.hpp>

#include "app/http_server.h"
#include "governance/governance.h"

namespace sluice::app {

void add_policy_routes(HttpServer& server, governance::Governance& gov);

// Parses Unity Catalog's "columns" array: [{"name": "id", "type_name": "INT"}, ...].
Result<std::vector<governance::ColumnInfo>> columns_from(const nlohmann::json& columns);

}  // namespace sluice::app
