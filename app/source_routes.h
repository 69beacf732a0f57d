#pragma once
// Sources over HTTP.
//
//   GET /api/sources          {"sources": [{"name", "type", "config" (redacted), "index",
//                              "sync": {"state", "lag_events", "lag_seconds", "last_error",
//                              "recent_errors", "changes", "documents", "changes_per_second",
//                              ...}}]}; "sync" is null for a source bound to no index
//   GET /api/sources/{name}   one of them; 404 for an unknown source
//
// HTTP push into a source of type "http":
//
//   POST /api/sources/{name}/events    Idempotency-Key: <key>
//   {"events": [{"key", "op": "upsert"|"delete", "document": {"text", "metadata", "acl"}}]}
//   → 200 {"accepted", "first_seq", "last_seq"}; a repeated key answers the first answer again
//     with the header Idempotent-Replayed: true and stores nothing.
//   400 names the bad field; 404 for an unknown source; 409 for a key reused with another body
//   or a source that is not of type http; 413 past the per-request event limit.
//
// Sources are not yet catalog securables, so pushing needs a metastore admin (a service
// principal flagged admin, typically); every push is audited as "source.push".
//
// Thread safety: the handlers are thread-safe; push sources are opened once (by the
// SyncService) and shared with their sync.

#include "app/http_server.h"
#include "app/sync_service.h"
#include "governance/governance.h"

namespace sluice::app {

void add_source_routes(HttpServer& server, governance::Governance& gov, SyncService& sync);

}  // namespace sluice::app
