#pragma once
// What the governance REST routes share: the request context from an authenticated request,
// JSON shapes of securables, and audit records for writes.
//
// Thread safety: free functions; thread-safe.

#include <httplib.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "app/http_server.h"
#include "governance/governance.h"

namespace sluice::app {

// The governance context of an authenticated request. Every governance route sits behind the
// authenticator, so an identity is present; its absence is a wiring bug.
governance::RequestContext context_of(const RequestInfo& info);

// Puts every request not on an open path behind governance's bearer-token authentication, and
// writes each request's held-back audit record when it finishes. `gov` must outlive the server.
void govern_requests(HttpServer& server, governance::Governance& gov,
                     std::vector<std::string> open_paths = {},
                     std::vector<std::string> open_prefixes = {});

// Unity Catalog's shape: {"name", "full_name", "catalog_name", "schema_name", "owner",
// "comment", "tags", "created_at", "updated_at", "securable_type"}.
nlohmann::json securable_json(const governance::Securable& securable);

// An audit log verification as `GET /api/2.0/sluice/audit/verify` and `sluice audit verify`
// print it: {"ok", "records", "checkpoints", "first_seq", "last_seq", "last_checkpoint_seq",
// "archives", "archived_records", "archives_unverified", "first_bad_seq", "problem"}.
nlohmann::json audit_report_json(const governance::AuditVerifyReport& report);

// Audits a completed write (or admin read) by the caller: action, securable, outcome.
Status audit_action(governance::Governance& gov, const governance::RequestContext& context,
                    std::string action, std::string securable, const Status& outcome,
                    std::string details = "");

// Requires that the caller is a metastore admin; audited as "admin:<action>".
Status require_admin(governance::Governance& gov, const governance::RequestContext& context,
                     std::string_view action);

// Writes `body` as the JSON response.
void send_json(httplib::Response& res, const nlohmann::json& body, int status = 200);

// A JSON field as a string: kInvalidArgument naming the field when absent or not a string.
Result<std::string> string_field(const nlohmann::json& body, const std::string& field);

// An optional field: `fallback` when absent or null, kInvalidArgument naming the field when it
// has another type.
Result<std::string> string_field_or(const nlohmann::json& body, const std::string& field,
                                    std::string fallback);
Result<bool> bool_field_or(const nlohmann::json& body, const std::string& field, bool fallback);
// A JSON field as a signed 64-bit integer: kInvalidArgument naming the field when absent, not a
// whole number, or past 2^63 - 1 (never wrapped into a negative one).
Result<std::int64_t> int64_field(const nlohmann::json& body, const std::string& field);

}  // namespace sluice::app
