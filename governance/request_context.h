#pragma once
// Who is asking, on which request: what every governance decision and audit record needs.
// app/ fills it from the authenticated bearer token and the HTTP request; in-process callers
// (benchmarks, offline commands) fill it themselves.
//
// Thread safety: value type.

#include <cstdint>
#include <string>

#include "governance/audit_sink.h"

namespace sluice::governance {

struct RequestContext {
    std::int64_t principal_id = 0;
    std::string principal;       // name, for audit records
    std::string request_id;      // "req_..." or the client's X-Request-Id
    std::string client_address;  // remote address as the server saw it
    std::string token_id;        // "tok_..."; never the secret
    // Records of this request held back to share its next audit commit (AuditLog::defer); 0 when
    // none. Copy it into AuditEvent::deferred_ticket of the request's records.
    std::uint64_t audit_ticket = 0;
};

// An audit record of this request: who (principal, token), from where, which request, and the
// ticket of its held-back records. The caller fills in what happened (action, securable,
// result, decided_by, details).
inline AuditEvent audit_event_for(const RequestContext& context) {
    AuditEvent event;
    event.principal = context.principal;
    event.request_id = context.request_id;
    event.client = context.client_address;
    event.token_id = context.token_id;
    event.deferred_ticket = context.audit_ticket;
    return event;
}

}  // namespace sluice::governance
