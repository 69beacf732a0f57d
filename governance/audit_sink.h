#pragma once
// AuditEvent and the interface that records them. AuditLog (audit_log.h) is the durable,
// hash-chained implementation; a benchmark may measure the cost of auditing against a sink that
// drops events.
//
// Thread safety: implementations are thread-safe.

#include <cstdint>
#include <string>

#include "common/status.h"

namespace sluice::governance {

struct AuditEvent {
    std::int64_t time_us = 0;  // filled by the log when 0
    std::string principal{};     // "" for failed authentication
    std::string action{};        // "authenticate", "authorize:SELECT", "grant", "catalog.create"...
    std::string securable{};     // "table:main.sales.orders", "" when none
    std::string result{};        // "allow", "deny", "ok", "error"
    std::string request_id{};
    std::string client{};
    std::string token_id{};
    std::string decided_by{};  // the grant, ownership or admin right that decided, or why denied
    std::string details{};     // free text (JSON for structured additions); never secrets
    // Not part of the record: the ticket of records deferred for this request (AuditLog::defer),
    // which are then written in the same transaction as this one. 0: none.
    std::uint64_t deferred_ticket = 0;
};

class AuditSink {
public:
    virtual ~AuditSink() = default;
    // Records the event: returns once it is durable or, where the sink acknowledges on queueing
    // (AuditLog, AuditAcknowledge::kQueued), once its place in the chain is fixed.
    // kIoError/kUnavailable when storage fails; callers fail the request rather than act
    // unaudited.
    virtual Status append(AuditEvent event) = 0;
};

// Drops every event. For measuring what auditing costs; never used by the server.
class DiscardingAuditSink final : public AuditSink {
public:
    Status append(AuditEvent) override { return Status(); }
};

}  // namespace sluice::governance
