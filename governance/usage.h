#pragma once
// Usage: what each model call cost (tokens, latency, estimated price) and the limits on it —
// request rates and token budgets per principal, per group and per endpoint.
//
// A model call goes:   reserve(ctx, endpoint, estimated tokens) -> Reservation
//                      ... the call runs ...
//                      settle(std::move(reservation), actual usage)
// reserve() checks every limit that applies and, when all have room, charges the estimate to
// all of them at once, under one mutex: concurrent reservations cannot together pass a limit.
// When one has no room the answer is kResourceExhausted (HTTP 429) naming the limit:
//   token budget 'tokens/day' of group 'analysts' on endpoint 'dbrx' is spent: 100000 of 100000
// and `LimitDenial` carries the limit and a retry-after hint. settle() replaces the estimate by
// the actual tokens and writes the usage row; a Reservation dropped unsettled gives its
// estimate back (the call did not happen).
//
// Limits: (subject, endpoint, kind, max). Subject: a user or service principal (its own
// traffic), a group (the traffic of all its members together, nested groups included), or
// nobody (all callers of the endpoint together). Endpoint: a name, or "*" for every endpoint
// together. Kinds:
//   requests/min, tokens/min  sliding window of the last 60 seconds, in one-second slots
//   tokens/day                fixed window: the UTC calendar day; it resets at 00:00 UTC
// Tokens are prompt + completion tokens (cached prompt tokens included). A call is admitted
// when every applicable limit has room for its estimate; so usage can pass a budget only by
// what calls settle above their estimates.
//
// State: counters live in memory, rebuilt at open from today's usage rows (so budgets survive
// a restart) and recomputed from per-caller totals whenever limits or group memberships change
// (a user who joins a group brings today's usage into the group's budget).
//
// Durability: settle() writes the usage row and its audit record ("usage", the tokens and cost
// in details) in one transaction through the audit log's group commit, and returns once both
// are durable: a settled call is billed, and nothing billed is lost by a crash. Lost by a crash:
// reservations of calls in flight (never billed; their tokens are not counted after restart).
//
// Thread safety: thread-safe. A Reservation is owned by one thread.

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "governance/audit_log.h"
#include "governance/authorizer.h"
#include "governance/endpoints.h"
#include "governance/request_context.h"
#include "governance/store.h"

namespace sluice::governance {

namespace detail {
class Database;
struct RateWindow;
}  // namespace detail

enum class LimitKind : std::uint8_t { kRequestsPerMinute, kTokensPerMinute, kTokensPerDay };
std::string_view limit_kind_name(LimitKind kind);  // "requests/min", "tokens/min", "tokens/day"
Result<LimitKind> parse_limit_kind(std::string_view text);

inline constexpr std::string_view kEveryEndpoint = "*";

struct LimitSpec {
    std::string principal;  // user, service principal or group; "" for all callers together
    std::string endpoint = std::string(kEveryEndpoint);
    LimitKind kind = LimitKind::kTokensPerDay;
    std::int64_t max = 0;
};

struct Limit {
    std::int64_t id = 0;
    LimitSpec spec;
    std::int64_t principal_id = 0;  // 0 for all callers
    std::string created_by;
    std::int64_t created_at_ms = 0;
    std::int64_t used = 0;  // in the current window, reservations included
};

// Why reserve() refused: the first limit without room.
struct LimitDenial {
    Limit limit;
    std::int64_t requested = 0;  // tokens (or 1 request) the call needed
    // Seconds until the call would fit if nothing else ran; nullopt when it never fits (the
    // estimate alone exceeds the limit).
    std::optional<std::int64_t> retry_after_s;
};

struct TokenUsage {
    std::int64_t input_tokens = 0;   // prompt tokens, cached ones included
    std::int64_t output_tokens = 0;  // completion tokens
    std::int64_t cached_tokens = 0;  // prompt tokens served from the prefix cache
};

struct UsageReport {
    TokenUsage tokens;
    double latency_ms = 0;
    std::string agent;           // the agent that made the call, "" for none
    std::string status = "ok";   // "ok", "error", "cancelled"
};

// One stored usage row.
struct UsageRecord {
    std::int64_t time_us = 0;
    std::string request_id;
    std::string principal;
    std::string endpoint;
    std::string agent;
    TokenUsage tokens;
    double latency_ms = 0;
    double cost_usd = 0;
    std::string status;
};

enum class UsageDimension : std::uint8_t { kPrincipal, kEndpoint, kDay, kAgent };
Result<UsageDimension> parse_usage_dimension(std::string_view text);  // principal|endpoint|day|agent

struct UsageQuery {
    std::vector<UsageDimension> group_by;  // empty: one total
    std::optional<std::int64_t> from_us;   // inclusive
    std::optional<std::int64_t> to_us;     // exclusive
    std::optional<std::string> principal;
    std::optional<std::string> endpoint;
};

struct UsageAggregate {
    std::string principal;  // set when grouped by it
    std::string endpoint;
    std::string day;  // "2026-11-26" (UTC)
    std::string agent;
    std::int64_t requests = 0;
    TokenUsage tokens;
    double cost_usd = 0;
    double latency_ms_avg = 0;
};

class Usage;

// A reservation of capacity for one model call. Move-only; settle it with Usage::settle() or
// let it go to give the reservation back.
class Reservation {
public:
    Reservation(Reservation&& other) noexcept;
    Reservation& operator=(Reservation&& other) noexcept;
    Reservation(const Reservation&) = delete;
    Reservation& operator=(const Reservation&) = delete;
    ~Reservation();

    const std::string& endpoint() const { return endpoint_; }
    std::int64_t estimated_tokens() const { return estimated_; }
    bool active() const { return owner_ != nullptr; }

private:
    friend class Usage;
    Reservation(Usage* owner, RequestContext context, std::string endpoint,
                std::int64_t estimated, std::int64_t charged_s, std::uint64_t epoch,
                std::vector<std::int64_t> limit_ids, std::vector<std::int64_t> closure);
    void release();

    Usage* owner_ = nullptr;
    RequestContext context_;
    std::string endpoint_;
    std::int64_t estimated_ = 0;
    std::int64_t charged_s_ = 0;  // the second the estimate was charged at
    std::uint64_t epoch_ = 0;     // the limit set it was charged against
    std::vector<std::int64_t> limit_ids_;
    std::vector<std::int64_t> closure_;  // the caller and its groups
};

class Usage {
public:
    // `db_path` is catalog.db after Store::open() has migrated it. Loads today's usage into the
    // counters.
    static Result<std::unique_ptr<Usage>> open(const std::filesystem::path& db_path, Store& store,
                                               Authorizer& authorizer, AuditLog& audit,
                                               Endpoints& endpoints);
    ~Usage();

    // Checks and charges every applicable limit atomically. kResourceExhausted naming the first
    // limit without room (and `denial`, when given, filled in); the refusal is audited
    // ("usage.reserve", deny). kInvalidArgument for a bad endpoint name or a negative estimate.
    Result<Reservation> reserve(const RequestContext& context, const std::string& endpoint,
                                std::int64_t estimated_tokens, LimitDenial* denial = nullptr);

    // Replaces the estimate by the actual tokens in the counters, computes the cost from the
    // endpoint's prices and writes the usage row and its audit record in one transaction.
    // Returns the stored row. kFailedPrecondition for a reservation already settled or
    // released; kUnavailable when storage fails (the call is then not billed: fail it).
    Result<UsageRecord> settle(Reservation reservation, const UsageReport& report);

    // Records a call that took no reservation (it is counted, never refused).
    Result<UsageRecord> record(const RequestContext& context, const std::string& endpoint,
                               const UsageReport& report);

    // --- limits (stored in catalog.db)
    // Creates or replaces the limit of (principal, endpoint, kind). kNotFound for an unknown
    // principal; kInvalidArgument for a negative max or a bad endpoint name.
    Result<Limit> set_limit(const LimitSpec& spec, const std::string& created_by);
    // kNotFound when no such limit.
    Status delete_limit(std::int64_t id);
    // Every limit with its current use.
    Result<std::vector<Limit>> limits();
    // The limits that apply to a principal's calls (its own, its groups', everyone's).
    Result<std::vector<Limit>> limits_for(std::int64_t principal_id);

    // --- usage rows
    Result<std::vector<UsageAggregate>> query(const UsageQuery& query);

    // The cost of `tokens` at the endpoint's prices, in USD.
    static double cost_usd(const EndpointPrices& prices, const TokenUsage& tokens);

    struct State;
    Usage(std::unique_ptr<detail::Database> db, Store& store, Authorizer& authorizer,
          AuditLog& audit, Endpoints& endpoints);

private:
    friend class Reservation;
    void release(Reservation& reservation);
    Status refresh_locked(std::int64_t now_s);
    Result<std::vector<Limit>> load_limits_locked();
    Status audit_denial(const RequestContext& context, const std::string& endpoint,
                        const std::string& message);
    Result<UsageRecord> write(const RequestContext& context, const std::string& endpoint,
                              const UsageReport& report);
    void correct_locked(const Reservation& reservation, std::int64_t tokens,
                        std::int64_t requests, std::int64_t now_s);

    Store& store_;
    Authorizer& authorizer_;
    AuditLog& audit_;
    Endpoints& endpoints_;

    // Lock order: mutex_, then db_mutex_. Queries take only db_mutex_, so that a long
    // aggregation does not hold up reservations.
    std::mutex mutex_;
    std::unique_ptr<State> state_;  // guarded by mutex_
    std::mutex db_mutex_;
    std::unique_ptr<detail::Database> db_;  // guarded by db_mutex_ (limits and usage queries)
};

}  // namespace sluice::governance
