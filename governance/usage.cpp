#include "governance/usage.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <utility>

#include "governance/detail/rate_window.h"
#include "governance/detail/sqlite.h"

namespace sluice::governance {
namespace {

using detail::RateWindow;

std::int64_t now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::int64_t now_s() { return now_us() / 1'000'000; }

bool applies(const Limit& limit, const std::vector<std::int64_t>& closure,
             const std::string& endpoint) {
    if (limit.spec.endpoint != kEveryEndpoint && limit.spec.endpoint != endpoint) {
        return false;
    }
    return limit.principal_id == 0 ||
           std::find(closure.begin(), closure.end(), limit.principal_id) != closure.end();
}

std::int64_t used_in(const RateWindow& window, LimitKind kind, std::int64_t now) {
    switch (kind) {
        case LimitKind::kRequestsPerMinute: return window.minute_requests(now);
        case LimitKind::kTokensPerMinute: return window.minute_tokens(now);
        case LimitKind::kTokensPerDay: return window.today_tokens(now);
    }
    return 0;
}

void json_string(std::string& out, std::string_view text) {
    out += '"';
    for (char c : text) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            char escaped[8];
            std::snprintf(escaped, sizeof(escaped), "\\u%04x", c);
            out += escaped;
        } else {
            out += c;
        }
    }
    out += '"';
}

std::string format_number(double value) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.9g", value);
    return text;
}

}  // namespace

struct Usage::State {
    bool loaded = false;           // today's usage rows read into `callers`
    bool limits_dirty = true;      // limits changed here since the last rebuild
    std::uint64_t generation = 0;  // store generation at the last rebuild
    std::uint64_t epoch = 0;       // bumped by every rebuild
    std::vector<Limit> limits;
    std::map<std::int64_t, RateWindow> limit_windows;  // by limit id
    // Every caller's counts per endpoint: what the limit windows are rebuilt from.
    std::map<std::pair<std::int64_t, std::string>, RateWindow> callers;
    std::map<std::int64_t, std::vector<std::int64_t>> closures;  // as of the last rebuild
};

std::string_view limit_kind_name(LimitKind kind) {
    switch (kind) {
        case LimitKind::kRequestsPerMinute: return "requests/min";
        case LimitKind::kTokensPerMinute: return "tokens/min";
        case LimitKind::kTokensPerDay: return "tokens/day";
    }
    return "tokens/day";
}

Result<LimitKind> parse_limit_kind(std::string_view text) {
    for (LimitKind kind : {LimitKind::kRequestsPerMinute, LimitKind::kTokensPerMinute,
                           LimitKind::kTokensPerDay}) {
        if (text == limit_kind_name(kind)) {
            return kind;
        }
    }
    return invalid_argument("limit kind must be requests/min, tokens/min or tokens/day, found '" +
                            std::string(text) + "'");
}

Result<UsageDimension> parse_usage_dimension(std::string_view text) {
    if (text == "principal") {
        return UsageDimension::kPrincipal;
    }
    if (text == "endpoint") {
        return UsageDimension::kEndpoint;
    }
    if (text == "day") {
        return UsageDimension::kDay;
    }
    if (text == "agent") {
        return UsageDimension::kAgent;
    }
    return invalid_argument("usage can be grouped by principal, endpoint, day and agent, not '" +
                            std::string(text) + "'");
}

// --- Reservation

Reservation::Reservation(Usage* owner, RequestContext context, std::string endpoint,
                         std::int64_t estimated, std::int64_t charged_s, std::uint64_t epoch,
                         std::vector<std::int64_t> limit_ids, std::vector<std::int64_t> closure)
    : owner_(owner), context_(std::move(context)), endpoint_(std::move(endpoint)),
      estimated_(estimated), charged_s_(charged_s), epoch_(epoch),
      limit_ids_(std::move(limit_ids)), closure_(std::move(closure)) {}

Reservation::Reservation(Reservation&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)), context_(std::move(other.context_)),
      endpoint_(std::move(other.endpoint_)), estimated_(other.estimated_),
      charged_s_(other.charged_s_), epoch_(other.epoch_),
      limit_ids_(std::move(other.limit_ids_)), closure_(std::move(other.closure_)) {}

Reservation& Reservation::operator=(Reservation&& other) noexcept {
    if (this != &other) {
        release();
        owner_ = std::exchange(other.owner_, nullptr);
        context_ = std::move(other.context_);
        endpoint_ = std::move(other.endpoint_);
        estimated_ = other.estimated_;
        charged_s_ = other.charged_s_;
        epoch_ = other.epoch_;
        limit_ids_ = std::move(other.limit_ids_);
        closure_ = std::move(other.closure_);
    }
    return *this;
}

Reservation::~Reservation() { release(); }

void Reservation::release() {
    if (owner_ != nullptr) {
        owner_->release(*this);
        owner_ = nullptr;
    }
}

// --- Usage

Usage::Usage(std::unique_ptr<detail::Database> db, Store& store, Authorizer& authorizer,
             AuditLog& audit, Endpoints& endpoints)
    : store_(store), authorizer_(authorizer), audit_(audit), endpoints_(endpoints),
      state_(std::make_unique<State>()), db_(std::move(db)) {}

Usage::~Usage() = default;

Result<std::unique_ptr<Usage>> Usage::open(const std::filesystem::path& db_path, Store& store,
                                           Authorizer& authorizer, AuditLog& audit,
                                           Endpoints& endpoints) {
    SLUICE_ASSIGN_OR_RETURN(auto db, detail::Database::open(db_path.string()));
    auto usage = std::make_unique<Usage>(std::move(db), store, authorizer, audit, endpoints);
    {
        std::lock_guard lock(usage->mutex_);
        SLUICE_RETURN_IF_ERROR(usage->refresh_locked(now_s()));
    }
    return usage;
}

double Usage::cost_usd(const EndpointPrices& prices, const TokenUsage& tokens) {
    std::int64_t cached = std::min(tokens.cached_tokens, tokens.input_tokens);
    double uncached = static_cast<double>(tokens.input_tokens - cached);
    return (uncached * prices.input_per_million +
            static_cast<double>(cached) * prices.cached_input_per_million +
            static_cast<double>(tokens.output_tokens) * prices.output_per_million) /
           1e6;
}

Result<std::vector<Limit>> Usage::load_limits_locked() {
    std::lock_guard db_lock(db_mutex_);
    SLUICE_ASSIGN_OR_RETURN(
        auto select,
        db_->prepare("SELECT r.id, COALESCE(r.principal_id, 0), COALESCE(p.name, ''), "
                     "r.endpoint, r.kind, r.max_value, r.created_by, r.created_at_ms FROM "
                     "rate_limits r LEFT JOIN principals p ON p.id = r.principal_id ORDER BY r.id"));
    std::vector<Limit> out;
    while (true) {
        SLUICE_ASSIGN_OR_RETURN(bool row, select.step());
        if (!row) {
            break;
        }
        Limit limit;
        limit.id = select.column_int(0);
        limit.principal_id = select.column_int(1);
        limit.spec.principal = select.column_text(2);
        limit.spec.endpoint = select.column_text(3);
        SLUICE_ASSIGN_OR_RETURN(limit.spec.kind, parse_limit_kind(select.column_text(4)));
        limit.spec.max = select.column_int(5);
        limit.created_by = select.column_text(6);
        limit.created_at_ms = select.column_int(7);
        out.push_back(std::move(limit));
    }
    return out;
}

// Brings the counters up to date: today's usage rows on the first call, and the limit windows
// rebuilt from the callers' counts when the limits or the catalog (group memberships) changed.
Status Usage::refresh_locked(std::int64_t now) {
    State& s = *state_;
    if (!s.loaded) {
        std::lock_guard db_lock(db_mutex_);
        const std::int64_t day_start_us = now / RateWindow::kDay * RateWindow::kDay * 1'000'000;
        SLUICE_ASSIGN_OR_RETURN(
            auto by_second,
            db_->prepare("SELECT principal_id, endpoint, time_us / 1000000, "
                         "SUM(input_tokens + output_tokens), COUNT(*) FROM usage WHERE time_us >= ? "
                         "GROUP BY 1, 2, 3"));
        by_second.bind(1, day_start_us);
        while (true) {
            SLUICE_ASSIGN_OR_RETURN(bool row, by_second.step());
            if (!row) {
                break;
            }
            RateWindow& window = s.callers[{by_second.column_int(0), by_second.column_text(1)}];
            // Rows older than a minute count for the day only (charge() sees to that).
            window.charge(by_second.column_int(2), now, by_second.column_int(3),
                          by_second.column_int(4));
        }
        s.loaded = true;
    }
    std::uint64_t generation = store_.generation();
    if (!s.limits_dirty && generation == s.generation) {
        return Status();
    }
    SLUICE_ASSIGN_OR_RETURN(s.limits, load_limits_locked());
    s.closures.clear();
    s.limit_windows.clear();
    for (const Limit& limit : s.limits) {
        s.limit_windows[limit.id];
    }
    for (const auto& [key, window] : s.callers) {
        auto closure = authorizer_.principal_closure(key.first);
        if (!closure.ok()) {
            continue;  // a deleted principal: its usage no longer counts towards any limit
        }
        for (const Limit& limit : s.limits) {
            if (applies(limit, *closure, key.second)) {
                s.limit_windows[limit.id].merge(window, now);
            }
        }
        s.closures[key.first] = std::move(*closure);
    }
    s.generation = generation;
    s.limits_dirty = false;
    ++s.epoch;
    return Status();
}

Status Usage::audit_denial(const RequestContext& context, const std::string& endpoint,
                           const std::string& message) {
    AuditEvent event = audit_event_for(context);
    event.action = "usage.reserve";
    event.securable = "endpoint:" + endpoint;
    event.result = "deny";
    event.decided_by = message;
    return audit_.append(std::move(event));
}

Result<Reservation> Usage::reserve(const RequestContext& context, const std::string& endpoint,
                                   std::int64_t estimated_tokens, LimitDenial* denial) {
    SLUICE_RETURN_IF_ERROR(validate_endpoint_name(endpoint));
    if (estimated_tokens < 0) {
        return invalid_argument("estimated tokens must not be negative, found " +
                                std::to_string(estimated_tokens));
    }
    SLUICE_ASSIGN_OR_RETURN(std::vector<std::int64_t> closure,
                            authorizer_.principal_closure(context.principal_id));
    std::optional<LimitDenial> refused;
    std::vector<std::int64_t> charged;
    std::uint64_t epoch = 0;
    const std::int64_t now = now_s();
    {
        std::lock_guard lock(mutex_);
        SLUICE_RETURN_IF_ERROR(refresh_locked(now));
        State& s = *state_;
        std::vector<const Limit*> applicable;
        for (const Limit& limit : s.limits) {
            if (applies(limit, closure, endpoint)) {
                applicable.push_back(&limit);
            }
        }
        for (const Limit* limit : applicable) {
            const RateWindow& window = s.limit_windows[limit->id];
            bool requests = limit->spec.kind == LimitKind::kRequestsPerMinute;
            std::int64_t need = requests ? 1 : estimated_tokens;
            std::int64_t used = used_in(window, limit->spec.kind, now);
            if (used + need <= limit->spec.max) {
                continue;
            }
            LimitDenial d;
            d.limit = *limit;
            d.limit.used = used;
            d.requested = need;
            d.retry_after_s =
                limit->spec.kind == LimitKind::kTokensPerDay
                    ? RateWindow::day_retry_after(now, need, limit->spec.max)
                    : window.minute_retry_after(now, need, limit->spec.max, !requests);
            refused = std::move(d);
            break;
        }
        if (!refused) {
            for (const Limit* limit : applicable) {
                s.limit_windows[limit->id].charge(now, now, estimated_tokens, 1);
                charged.push_back(limit->id);
            }
            s.callers[{context.principal_id, endpoint}].charge(now, now, estimated_tokens, 1);
            epoch = s.epoch;
        }
    }
    if (refused) {
        const Limit& limit = refused->limit;
        bool requests = limit.spec.kind == LimitKind::kRequestsPerMinute;
        std::string subject = "all callers";
        if (limit.principal_id != 0) {
            subject = authorizer_.principal_name(limit.principal_id)
                          .value_or("principal '" + limit.spec.principal + "'");
        }
        std::string where = limit.spec.endpoint == kEveryEndpoint
                                ? "on every endpoint"
                                : "on endpoint '" + limit.spec.endpoint + "'";
        std::string message =
            std::string(requests ? "rate limit '" : "token budget '") +
            std::string(limit_kind_name(limit.spec.kind)) + "' of " + subject + " " + where +
            (requests ? " is reached: " : " is spent: ") + std::to_string(limit.used) + " of " +
            std::to_string(limit.spec.max);
        if (!refused->retry_after_s) {
            message += "; the call's estimate of " + std::to_string(refused->requested) +
                       " tokens exceeds it outright";
        } else {
            if (!requests && limit.used < limit.spec.max) {
                message += "; the call needs an estimated " + std::to_string(refused->requested) +
                           " tokens";
            }
            message += "; retry after " + std::to_string(*refused->retry_after_s) + " s";
        }
        Status audited = audit_denial(context, endpoint, message);
        if (!audited.ok()) {
            return unavailable("rate limit decision could not be audited: " + audited.message());
        }
        if (denial != nullptr) {
            *denial = *refused;
        }
        return Status(StatusCode::kResourceExhausted, message);
    }
    return Reservation(this, context, endpoint, estimated_tokens, now, epoch, std::move(charged),
                       std::move(closure));
}

void Usage::correct_locked(const Reservation& reservation, std::int64_t tokens,
                           std::int64_t requests, std::int64_t now) {
    State& s = *state_;
    s.callers[{reservation.context_.principal_id, reservation.endpoint_}].charge(
        reservation.charged_s_, now, tokens, requests);
    if (reservation.epoch_ == s.epoch) {
        for (std::int64_t id : reservation.limit_ids_) {
            auto window = s.limit_windows.find(id);
            if (window != s.limit_windows.end()) {
                window->second.charge(reservation.charged_s_, now, tokens, requests);
            }
        }
        return;
    }
    // The windows were rebuilt from the callers' counts, estimate included, since the charge:
    // correct the limits that apply now.
    for (const Limit& limit : s.limits) {
        if (applies(limit, reservation.closure_, reservation.endpoint_)) {
            s.limit_windows[limit.id].charge(reservation.charged_s_, now, tokens, requests);
        }
    }
}

void Usage::release(Reservation& reservation) {
    std::lock_guard lock(mutex_);
    correct_locked(reservation, -reservation.estimated_, -1, now_s());
}

Result<UsageRecord> Usage::settle(Reservation reservation, const UsageReport& report) {
    if (reservation.owner_ != this) {
        return failed_precondition("reservation is already settled or released");
    }
    const TokenUsage& t = report.tokens;
    if (t.input_tokens < 0 || t.output_tokens < 0 || t.cached_tokens < 0) {
        return invalid_argument("token counts must not be negative");
    }
    {
        std::lock_guard lock(mutex_);
        correct_locked(reservation,
                       t.input_tokens + t.output_tokens - reservation.estimated_, 0, now_s());
    }
    reservation.owner_ = nullptr;  // settled: nothing to give back
    return write(reservation.context_, reservation.endpoint_, report);
}

Result<UsageRecord> Usage::record(const RequestContext& context, const std::string& endpoint,
                                  const UsageReport& report) {
    SLUICE_RETURN_IF_ERROR(validate_endpoint_name(endpoint));
    const TokenUsage& t = report.tokens;
    if (t.input_tokens < 0 || t.output_tokens < 0 || t.cached_tokens < 0) {
        return invalid_argument("token counts must not be negative");
    }
    SLUICE_ASSIGN_OR_RETURN(std::vector<std::int64_t> closure,
                            authorizer_.principal_closure(context.principal_id));
    {
        std::lock_guard lock(mutex_);
        const std::int64_t now = now_s();
        SLUICE_RETURN_IF_ERROR(refresh_locked(now));
        std::int64_t tokens = t.input_tokens + t.output_tokens;
        for (const Limit& limit : state_->limits) {
            if (applies(limit, closure, endpoint)) {
                state_->limit_windows[limit.id].charge(now, now, tokens, 1);
            }
        }
        state_->callers[{context.principal_id, endpoint}].charge(now, now, tokens, 1);
    }
    return write(context, endpoint, report);
}

Result<UsageRecord> Usage::write(const RequestContext& context, const std::string& endpoint,
                                 const UsageReport& report) {
    SLUICE_ASSIGN_OR_RETURN(EndpointSettings settings, endpoints_.get(endpoint));
    UsageRecord row;
    row.time_us = now_us();
    row.request_id = context.request_id;
    row.principal = context.principal;
    row.endpoint = endpoint;
    row.agent = report.agent;
    row.tokens = report.tokens;
    row.latency_ms = report.latency_ms;
    row.cost_usd = cost_usd(settings.prices, report.tokens);
    row.status = report.status;

    std::string details = "{\"agent\":";
    json_string(details, row.agent);
    details += ",\"cached_tokens\":" + std::to_string(row.tokens.cached_tokens) +
               ",\"cost_usd\":" + format_number(row.cost_usd) +
               ",\"input_tokens\":" + std::to_string(row.tokens.input_tokens) +
               ",\"latency_ms\":" + format_number(row.latency_ms) +
               ",\"output_tokens\":" + std::to_string(row.tokens.output_tokens) + "}";
    AuditEvent event = audit_event_for(context);
    event.time_us = row.time_us;
    event.action = "usage";
    event.securable = "endpoint:" + endpoint;
    event.result = row.status;
    event.details = std::move(details);
    const std::int64_t principal_id = context.principal_id;
    Status written = audit_.append(std::move(event), [&row, principal_id](detail::Database& db) {
        SLUICE_ASSIGN_OR_RETURN(
            auto* insert,
            db.cached("INSERT INTO usage (time_us, request_id, principal_id, principal, endpoint, "
                      "agent, input_tokens, output_tokens, cached_tokens, latency_ms, cost_usd, "
                      "status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
        return insert->bind(1, row.time_us)
            .bind(2, row.request_id)
            .bind(3, principal_id)
            .bind(4, row.principal)
            .bind(5, row.endpoint)
            .bind(6, row.agent)
            .bind(7, row.tokens.input_tokens)
            .bind(8, row.tokens.output_tokens)
            .bind(9, row.tokens.cached_tokens)
            .bind(10, row.latency_ms)
            .bind(11, row.cost_usd)
            .bind(12, row.status)
            .run();
    });
    if (!written.ok()) {
        return unavailable("usage of request " + context.request_id +
                           " could not be recorded: " + written.message());
    }
    return row;
}

// --- limits

Result<Limit> Usage::set_limit(const LimitSpec& spec, const std::string& created_by) {
    if (spec.endpoint != kEveryEndpoint) {
        SLUICE_RETURN_IF_ERROR(validate_endpoint_name(spec.endpoint));
    }
    if (spec.max < 0) {
        return invalid_argument("limit must be 0 or more, found " + std::to_string(spec.max));
    }
    std::optional<std::int64_t> principal_id;
    if (!spec.principal.empty()) {
        SLUICE_ASSIGN_OR_RETURN(Principal principal, store_.principal(spec.principal));
        principal_id = principal.id;
    }
    std::lock_guard lock(mutex_);
    std::int64_t id = 0;
    {
        std::lock_guard db_lock(db_mutex_);
        SLUICE_ASSIGN_OR_RETURN(auto transaction, detail::Transaction::begin(*db_));
        SLUICE_ASSIGN_OR_RETURN(
            auto find, db_->prepare("SELECT id FROM rate_limits WHERE COALESCE(principal_id, 0) = ? "
                                    "AND endpoint = ? AND kind = ?"));
        find.bind(1, principal_id.value_or(0))
            .bind(2, spec.endpoint)
            .bind(3, limit_kind_name(spec.kind));
        SLUICE_ASSIGN_OR_RETURN(bool exists, find.step());
        if (exists) {
            id = find.column_int(0);
            find.reset();
            SLUICE_ASSIGN_OR_RETURN(
                auto update, db_->prepare("UPDATE rate_limits SET max_value = ?, created_by = ?, "
                                          "created_at_ms = ? WHERE id = ?"));
            SLUICE_RETURN_IF_ERROR(
                update.bind(1, spec.max).bind(2, created_by).bind(3, now_ms()).bind(4, id).run());
        } else {
            find.reset();
            SLUICE_ASSIGN_OR_RETURN(
                auto insert,
                db_->prepare("INSERT INTO rate_limits (principal_id, endpoint, kind, max_value, "
                             "created_by, created_at_ms) VALUES (?, ?, ?, ?, ?, ?)"));
            SLUICE_RETURN_IF_ERROR(insert.bind(1, principal_id)
                                       .bind(2, spec.endpoint)
                                       .bind(3, limit_kind_name(spec.kind))
                                       .bind(4, spec.max)
                                       .bind(5, created_by)
                                       .bind(6, now_ms())
                                       .run());
            id = db_->last_insert_rowid();
        }
        SLUICE_RETURN_IF_ERROR(transaction->commit());
    }
    state_->limits_dirty = true;
    const std::int64_t now = now_s();
    SLUICE_RETURN_IF_ERROR(refresh_locked(now));
    for (const Limit& limit : state_->limits) {
        if (limit.id == id) {
            Limit out = limit;
            out.used = used_in(state_->limit_windows[id], limit.spec.kind, now);
            return out;
        }
    }
    return internal_error("limit " + std::to_string(id) + " vanished after it was written");
}

Status Usage::delete_limit(std::int64_t id) {
    std::lock_guard lock(mutex_);
    {
        std::lock_guard db_lock(db_mutex_);
        SLUICE_ASSIGN_OR_RETURN(auto erase, db_->prepare("DELETE FROM rate_limits WHERE id = ?"));
        SLUICE_RETURN_IF_ERROR(erase.bind(1, id).run());
        if (db_->changes() == 0) {
            return not_found("limit " + std::to_string(id) + " does not exist");
        }
    }
    state_->limits_dirty = true;
    return refresh_locked(now_s());
}

Result<std::vector<Limit>> Usage::limits() {
    std::lock_guard lock(mutex_);
    const std::int64_t now = now_s();
    SLUICE_RETURN_IF_ERROR(refresh_locked(now));
    std::vector<Limit> out = state_->limits;
    for (Limit& limit : out) {
        limit.used = used_in(state_->limit_windows[limit.id], limit.spec.kind, now);
    }
    return out;
}

Result<std::vector<Limit>> Usage::limits_for(std::int64_t principal_id) {
    SLUICE_ASSIGN_OR_RETURN(std::vector<std::int64_t> closure,
                            authorizer_.principal_closure(principal_id));
    SLUICE_ASSIGN_OR_RETURN(std::vector<Limit> all, limits());
    std::vector<Limit> out;
    for (Limit& limit : all) {
        if (limit.principal_id == 0 ||
            std::find(closure.begin(), closure.end(), limit.principal_id) != closure.end()) {
            out.push_back(std::move(limit));
        }
    }
    return out;
}

// --- queries

Result<std::vector<UsageAggregate>> Usage::query(const UsageQuery& q) {
    // Column expressions come from this fixed list; values are bound, never spliced.
    auto column = [](UsageDimension d) -> std::string_view {
        switch (d) {
            case UsageDimension::kPrincipal: return "principal";
            case UsageDimension::kEndpoint: return "endpoint";
            case UsageDimension::kDay: return "strftime('%Y-%m-%d', time_us / 1000000, 'unixepoch')";
            case UsageDimension::kAgent: return "agent";
        }
        return "principal";
    };
    std::string dims;
    for (UsageDimension d : q.group_by) {
        dims += std::string(dims.empty() ? "" : ", ") + std::string(column(d));
    }
    std::string sql = "SELECT " + (dims.empty() ? std::string() : dims + ", ") +
                      "COUNT(*), COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), "
                      "COALESCE(SUM(cached_tokens), 0), COALESCE(SUM(cost_usd), 0), "
                      "COALESCE(AVG(latency_ms), 0) FROM usage WHERE 1 = 1";
    std::vector<std::pair<bool, std::string>> binds;  // (is integer, value)
    if (q.from_us) {
        sql += " AND time_us >= ?";
        binds.emplace_back(true, std::to_string(*q.from_us));
    }
    if (q.to_us) {
        sql += " AND time_us < ?";
        binds.emplace_back(true, std::to_string(*q.to_us));
    }
    if (q.principal) {
        sql += " AND principal = ?";
        binds.emplace_back(false, *q.principal);
    }
    if (q.endpoint) {
        sql += " AND endpoint = ?";
        binds.emplace_back(false, *q.endpoint);
    }
    if (!dims.empty()) {
        sql += " GROUP BY " + dims + " ORDER BY " + dims;
    }
    std::lock_guard db_lock(db_mutex_);
    SLUICE_ASSIGN_OR_RETURN(auto select, db_->prepare(sql));
    for (std::size_t i = 0; i < binds.size(); ++i) {
        int index = static_cast<int>(i) + 1;
        if (binds[i].first) {
            select.bind(index, static_cast<std::int64_t>(std::stoll(binds[i].second)));
        } else {
            select.bind(index, binds[i].second);
        }
    }
    std::vector<UsageAggregate> out;
    while (true) {
        SLUICE_ASSIGN_OR_RETURN(bool row, select.step());
        if (!row) {
            break;
        }
        UsageAggregate a;
        int c = 0;
        for (UsageDimension d : q.group_by) {
            std::string value = select.column_text(c++);
            switch (d) {
                case UsageDimension::kPrincipal: a.principal = value; break;
                case UsageDimension::kEndpoint: a.endpoint = value; break;
                case UsageDimension::kDay: a.day = value; break;
                case UsageDimension::kAgent: a.agent = value; break;
            }
        }
        a.requests = select.column_int(c++);
        a.tokens.input_tokens = select.column_int(c++);
        a.tokens.output_tokens = select.column_int(c++);
        a.tokens.cached_tokens = select.column_int(c++);
        a.cost_usd = select.column_double(c++);
        a.latency_ms_avg = select.column_double(c++);
        if (a.requests > 0 || !q.group_by.empty()) {
            out.push_back(std::move(a));
        }
    }
    return out;
}

}  // namespace sluice::governance
