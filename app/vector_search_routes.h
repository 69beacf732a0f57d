#pragma once
// The vector search REST API, shaped after Databricks Vector Search:
//   POST   /api/2.0/vector-search/indexes                        create an index
//   GET    /api/2.0/vector-search/indexes                        list indexes
//   GET    /api/2.0/vector-search/indexes/{name}                 describe
//   DELETE /api/2.0/vector-search/indexes/{name}                 delete
//   POST   /api/2.0/vector-search/indexes/{name}/upsert-data     {"inputs_json": "[rows]"}
//   DELETE /api/2.0/vector-search/indexes/{name}/delete-data     {"primary_keys": [...]}
//          (POST is accepted too, for clients that cannot send a DELETE body)
//   POST   /api/2.0/vector-search/indexes/{name}/query           query_text, query_vector, ...
// Shapes of rows, filters and results: app/vector_search_json.h.
//
// {name} is the index's stored name (`docs`) or its catalog name (`main.kb.docs`,
// `vector_search.default.docs`; agents/index_access.h). Every index is a catalog securable of
// type vector_index, and every route asks governance as the caller, audited allow and deny:
//   create          CREATE_TABLE on the schema (with USE_CATALOG, USE_SCHEMA); caller owns it
//   list            shows the indexes the caller may BROWSE or SELECT (one audit record)
//   describe        SELECT or BROWSE on the index
//   delete          MANAGE on the index (its owner and metastore admins hold it)
//   upsert, delete  MODIFY on the index
//   query           SELECT on the index; then each chunk's access list, matched against the
//                   caller and every group it is inside (never anything the body says)
//
// Thread safety: handlers run on the server's worker threads; IndexManager and Governance are
// thread-safe; both must outlive the server.

#include <httplib.h>

#include "app/http_server.h"
#include "governance/governance.h"
#include "retrieval/index_manager.h"

namespace sluice::app {

void add_vector_search_routes(HttpServer& server, retrieval::IndexManager& indexes,
                              governance::Governance& gov);

}  // namespace sluice::app
