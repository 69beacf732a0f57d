#pragma once
// The catalog and permissions REST API, in Unity Catalog's shapes (docs/governance.md):
//   /api/2.1/unity-catalog/{catalogs|schemas|tables|volumes|vector-indexes|functions|models|
//                           agents|connections}[/{full_name}]
//   /api/2.1/unity-catalog/permissions/{securable_type}/{full_name}
//   /api/2.1/unity-catalog/effective-permissions/{securable_type}/{full_name}
// Every decision goes through governance::Authorizer::require (audited); every write is audited.

#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "app/http_server.h"
#include "governance/governance.h"

namespace sluice::app {

// Drops the stored vector index behind the vector_index securable `full_name` (files, catalog
// entry, grants; audited) for a caller already allowed MANAGE on it. False when no stored index
// is behind it (a catalog entry only), which the route then deletes alone.
using DropStoredIndex = std::function<Result<bool>(const governance::RequestContext& caller,
                                                   const std::string& full_name)>;

// What the stored vector index behind the vector_index securable `full_name` adds to its catalog
// entry (its embedder and the dimension in use); nullopt when no stored index is behind it.
using DescribeStoredIndex =
    std::function<std::optional<nlohmann::json>(const std::string& full_name)>;

// `drop_stored_index` and `describe_stored_index` may be empty where the server holds no
// indexes.
void add_catalog_routes(HttpServer& server, governance::Governance& gov,
                        DropStoredIndex drop_stored_index = {},
                        DescribeStoredIndex describe_stored_index = {});

}  // namespace sluice::app
