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
// Every query runs as the Reader that `resolve_reader` returns for the request, so access
// control is decided by the caller's identity, never by anything the request body says.
//
// Thread safety: handlers run on the server's worker threads; IndexManager is thread-safe.

#include <functional>

#include <httplib.h>

#include "app/http_server.h"
#include "retrieval/index_manager.h"

namespace sluice::app {

using ReaderResolver = std::function<Result<retrieval::Reader>(const RequestInfo&)>;

void add_vector_search_routes(HttpServer& server, retrieval::IndexManager& indexes,
                              ReaderResolver resolve_reader);

}  // namespace sluice::app
