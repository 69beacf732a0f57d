#pragma once
// Sources over HTTP. Sources are catalog objects (app/source_catalog.h); every decision is the
// authorizer's (audited) and every change is audited as source.create|bind|unbind|remove.
//
//   GET /api/sources          {"sources": [{"name", "type", "config" (redacted), "catalog_name",
//                              "owner", "index", "sync": {"state", "lag_events", "lag_seconds",
//                              "last_error", "recent_errors", "changes", "documents",
//                              "resnapshots", "resnapshot_in_progress", ...}}]}: the sources the
//                              caller may BROWSE; "sync" is null for a source bound to no index
//   GET /api/sources/{name}   one of them (BROWSE); 404 for an unknown source
//   POST /api/sources         {"name", "type", "config", "schema": "catalog.schema"?, "index"?}
//                              → the source; CREATE_TABLE on the schema (default main.sources;
//                              created when missing, by a caller who may create it) and MODIFY
//                              on the index; the caller owns the source; 409 when the name is
//                              taken. The same as `sluice source add` (create_source()).
//   PATCH /api/sources/{name} {"index": "<index>" | null} binds or unbinds (MANAGE; MODIFY on
//                              the index). The running server starts or stops the sync at once.
//   DELETE /api/sources/{name} stops the sync, drops the object, the definition and its state
//                              (MANAGE); the index keeps its documents.
//   POST /api/sources/{name}/sync   "sync now" (MODIFY on the source)
//
// HTTP push into a source of type "http" (MODIFY on the source):
//
//   POST /api/sources/{name}/events    Idempotency-Key: <key>
//   {"events": [{"key", "op": "upsert"|"delete", "document": {"text", "metadata", "acl"}}]}
//   → 200 {"accepted", "first_seq", "last_seq"}; a repeated key answers the first answer again
//     with the header Idempotent-Replayed: true and stores nothing.
//   400 names the bad field; 404 for an unknown source; 409 for a key reused with another body
//   or a source that is not of type http; 413 past the per-request event limit. Every push is
//   audited as "source.push".
//
// Thread safety: the handlers are thread-safe; push sources are opened once (by the
// SyncService) and shared with their sync.

#include "app/http_server.h"
#include "app/sync_service.h"
#include "governance/governance.h"

namespace sluice::app {

void add_source_routes(HttpServer& server, governance::Governance& gov, SyncService& sync);

}  // namespace sluice::app
