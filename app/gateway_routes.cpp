#include "app/gateway_routes.h"

#include <cstdio>

#include "app/governance_http.h"
#include "app/http_errors.h"
#include "app/request_members.h"

namespace sluice::app {
namespace {

using governance::EndpointSettings;
using governance::Governance;
using governance::Limit;
using governance::LimitSpec;
using governance::PiiAction;
using governance::RequestContext;
using nlohmann::json;

using Handler =
    std::function<Status(const RequestContext&, const httplib::Request&, httplib::Response&)>;

HttpHandler handle(Handler handler) {
    return [handler = std::move(handler)](const RequestInfo& info, const httplib::Request& req,
                                          httplib::Response& res) {
        Status status = handler(context_of(info), req, res);
        if (!status.ok()) {
            send_status(res, status, info.request_id);
        }
    };
}

std::string behavior(PiiAction action) {
    std::string name(governance::pii_action_name(action));
    for (char& c : name) {
        c = static_cast<char>(c - 'a' + 'A');
    }
    return name;
}

json types_json(governance::PiiTypeSet types) {
    json out = json::array();
    for (int i = 0; i < governance::kPiiTypeCount; ++i) {
        auto type = static_cast<governance::PiiType>(i);
        if (types & governance::pii_bit(type)) {
            out.push_back(std::string(governance::pii_type_name(type)));
        }
    }
    return out;
}

// Databricks AI Gateway's shape for guardrails, with Sluice's pricing beside it.
json settings_json(const EndpointSettings& s) {
    const auto& g = s.guardrails;
    json out = {{"name", s.name},
                {"configured", s.configured},
                {"guardrails",
                 {{"input", {{"pii", {{"behavior", behavior(g.input)}}}}},
                  {"output", {{"pii", {{"behavior", behavior(g.output)}}}}},
                  {"pii_types", types_json(g.types)}}},
                {"pricing",
                 {{"input_per_million", s.prices.input_per_million},
                  {"output_per_million", s.prices.output_per_million},
                  {"cached_input_per_million", s.prices.cached_input_per_million}}}};
    if (s.configured) {
        out["updated_by"] = s.updated_by;
        out["updated_at"] = s.updated_at_ms;
    }
    return out;
}

Result<double> price_field(const json& pricing, const char* key, double current) {
    if (!pricing.contains(key)) {
        return current;
    }
    if (!pricing[key].is_number()) {
        return invalid_argument(std::string("request body: pricing.") + key + " must be a number");
    }
    return pricing[key].get<double>();
}

// Applies a PUT body to the current settings: what the body leaves out stays as it was.
Status apply_settings(const json& body, EndpointSettings& s) {
    if (!body.is_object()) {
        return invalid_argument("request body must be a JSON object");
    }
    // A member we do not apply (a misspelt one, or a Databricks guardrail such as "safety") is
    // refused, so that no one believes a guardrail or a price took effect when it did not. What
    // GET answers besides the settings may come back unchanged.
    SLUICE_RETURN_IF_ERROR(check_keys(body, {"guardrails", "pricing"},
                                      {"name", "configured", "updated_by", "updated_at"})
                               .with_context("request body"));
    if (body.contains("guardrails")) {
        const json& g = body["guardrails"];
        if (!g.is_object()) {
            return invalid_argument("request body: \"guardrails\" must be an object");
        }
        SLUICE_RETURN_IF_ERROR(check_keys(g, {"input", "output", "pii_types"}, {})
                                   .with_context("request body: guardrails"));
        for (const char* direction : {"input", "output"}) {
            if (!g.contains(direction)) {
                continue;
            }
            const json& d = g[direction];
            if (!d.is_object() || !d.contains("pii") || !d["pii"].is_object() ||
                !d["pii"].contains("behavior") || !d["pii"]["behavior"].is_string()) {
                return invalid_argument(std::string("request body: guardrails.") + direction +
                                        " must be {\"pii\": {\"behavior\": "
                                        "\"NONE\"|\"MASK\"|\"BLOCK\"}}");
            }
            SLUICE_RETURN_IF_ERROR(
                check_keys(d, {"pii"}, {})
                    .with_context(std::string("request body: guardrails.") + direction));
            SLUICE_RETURN_IF_ERROR(
                check_keys(d["pii"], {"behavior"}, {})
                    .with_context(std::string("request body: guardrails.") + direction + ".pii"));
            SLUICE_ASSIGN_OR_RETURN(
                PiiAction action,
                governance::parse_pii_action(d["pii"]["behavior"].get<std::string>()));
            (std::string(direction) == "input" ? s.guardrails.input : s.guardrails.output) =
                action;
        }
        if (g.contains("pii_types")) {
            if (!g["pii_types"].is_array()) {
                return invalid_argument("request body: guardrails.pii_types must be an array");
            }
            governance::PiiTypeSet types = 0;
            for (const json& name : g["pii_types"]) {
                if (!name.is_string()) {
                    return invalid_argument("request body: pii_types must be strings");
                }
                SLUICE_ASSIGN_OR_RETURN(auto type,
                                        governance::parse_pii_type(name.get<std::string>()));
                types |= governance::pii_bit(type);
            }
            s.guardrails.types = types;
        }
    }
    if (body.contains("pricing")) {
        const json& p = body["pricing"];
        if (!p.is_object()) {
            return invalid_argument("request body: \"pricing\" must be an object");
        }
        SLUICE_RETURN_IF_ERROR(
            check_keys(p, {"input_per_million", "output_per_million", "cached_input_per_million"},
                       {})
                .with_context("request body: pricing"));
        SLUICE_ASSIGN_OR_RETURN(s.prices.input_per_million,
                                price_field(p, "input_per_million", s.prices.input_per_million));
        SLUICE_ASSIGN_OR_RETURN(s.prices.output_per_million,
                                price_field(p, "output_per_million", s.prices.output_per_million));
        SLUICE_ASSIGN_OR_RETURN(s.prices.cached_input_per_million,
                                price_field(p, "cached_input_per_million",
                                            s.prices.cached_input_per_million));
    }
    return Status();
}

json limit_json(const Limit& l) {
    json out = {{"id", l.id},
                {"principal", l.spec.principal.empty() ? json(nullptr) : json(l.spec.principal)},
                {"endpoint", l.spec.endpoint},
                {"kind", std::string(governance::limit_kind_name(l.spec.kind))},
                {"limit", l.spec.max},
                {"used", l.used},
                {"created_by", l.created_by},
                {"created_at", l.created_at_ms}};
    return out;
}

Status get_settings(Governance& gov, const RequestContext&, const httplib::Request& req,
                    httplib::Response& res) {
    SLUICE_ASSIGN_OR_RETURN(EndpointSettings s, gov.endpoints().get(req.matches[1].str()));
    send_json(res, settings_json(s));
    return Status();
}

Status put_settings(Governance& gov, const RequestContext& ctx, const httplib::Request& req,
                    httplib::Response& res) {
    SLUICE_ASSIGN_OR_RETURN(json body, parse_json_body(req));
    std::string name = req.matches[1].str();
    SLUICE_RETURN_IF_ERROR(require_admin(gov, ctx, "endpoint.update"));
    SLUICE_ASSIGN_OR_RETURN(EndpointSettings s, gov.endpoints().get(name));
    SLUICE_RETURN_IF_ERROR(apply_settings(body, s));
    auto stored = gov.endpoints().put(s, ctx.principal);
    SLUICE_RETURN_IF_ERROR(audit_action(gov, ctx, "endpoint.update", "endpoint:" + name,
                                        stored.status(), body.dump()));
    SLUICE_RETURN_IF_ERROR(stored.status());
    send_json(res, settings_json(*stored));
    return Status();
}

Status delete_settings(Governance& gov, const RequestContext& ctx, const httplib::Request& req,
                       httplib::Response& res) {
    std::string name = req.matches[1].str();
    SLUICE_RETURN_IF_ERROR(require_admin(gov, ctx, "endpoint.delete"));
    Status removed = gov.endpoints().remove(name);
    SLUICE_RETURN_IF_ERROR(audit_action(gov, ctx, "endpoint.delete", "endpoint:" + name, removed));
    SLUICE_RETURN_IF_ERROR(removed);
    send_json(res, json::object());
    return Status();
}

Status list_settings(Governance& gov, const RequestContext&, const httplib::Request&,
                     httplib::Response& res) {
    SLUICE_ASSIGN_OR_RETURN(auto all, gov.endpoints().list());
    json out = json::array();
    for (const auto& s : all) {
        out.push_back(settings_json(s));
    }
    send_json(res, json{{"endpoints", out}});
    return Status();
}

Status list_limits(Governance& gov, const RequestContext& ctx, const httplib::Request&,
                   httplib::Response& res) {
    SLUICE_ASSIGN_OR_RETURN(bool admin, gov.authorizer().is_admin(ctx.principal_id));
    SLUICE_ASSIGN_OR_RETURN(std::vector<Limit> limits,
                            admin ? gov.usage().limits() : gov.usage().limits_for(ctx.principal_id));
    json out = json::array();
    for (const Limit& l : limits) {
        out.push_back(limit_json(l));
    }
    send_json(res, json{{"limits", out}});
    return Status();
}

Status create_limit(Governance& gov, const RequestContext& ctx, const httplib::Request& req,
                    httplib::Response& res) {
    SLUICE_ASSIGN_OR_RETURN(json body, parse_json_body(req));
    // A misspelt "principal" or "endpoint" would otherwise set the limit for every caller or
    // every endpoint.
    SLUICE_RETURN_IF_ERROR(check_keys(body, {"principal", "endpoint", "kind", "limit"}, {})
                               .with_context("request body"));
    SLUICE_ASSIGN_OR_RETURN(std::string kind, string_field(body, "kind"));
    LimitSpec spec;
    SLUICE_ASSIGN_OR_RETURN(spec.kind, governance::parse_limit_kind(kind));
    SLUICE_ASSIGN_OR_RETURN(spec.max, int64_field(body, "limit"));
    if (body.contains("principal") && !body["principal"].is_null()) {
        SLUICE_ASSIGN_OR_RETURN(spec.principal, string_field(body, "principal"));
    }
    if (body.contains("endpoint")) {
        SLUICE_ASSIGN_OR_RETURN(spec.endpoint, string_field(body, "endpoint"));
    }
    SLUICE_RETURN_IF_ERROR(require_admin(gov, ctx, "limit.set"));
    auto stored = gov.usage().set_limit(spec, ctx.principal);
    SLUICE_RETURN_IF_ERROR(audit_action(
        gov, ctx, "limit.set", "endpoint:" + spec.endpoint, stored.status(), body.dump()));
    SLUICE_RETURN_IF_ERROR(stored.status());
    send_json(res, limit_json(*stored));
    return Status();
}

Status delete_limit(Governance& gov, const RequestContext& ctx, const httplib::Request& req,
                    httplib::Response& res) {
    std::string id = req.matches[1].str();
    SLUICE_RETURN_IF_ERROR(require_admin(gov, ctx, "limit.delete"));
    Status removed = gov.usage().delete_limit(std::stoll(id));
    SLUICE_RETURN_IF_ERROR(audit_action(gov, ctx, "limit.delete", "limit:" + id, removed));
    SLUICE_RETURN_IF_ERROR(removed);
    send_json(res, json::object());
    return Status();
}

Status get_usage(Governance& gov, const RequestContext& ctx, const httplib::Request& req,
                 httplib::Response& res) {
    governance::UsageQuery query;
    std::string group_by = req.has_param("group_by") ? req.get_param_value("group_by")
                                                     : "principal,endpoint,day";
    std::size_t start = 0;
    while (!group_by.empty() && start <= group_by.size()) {
        std::size_t comma = group_by.find(',', start);
        std::string item = group_by.substr(start, comma == std::string::npos ? std::string::npos
                                                                             : comma - start);
        SLUICE_ASSIGN_OR_RETURN(auto dimension, governance::parse_usage_dimension(item));
        query.group_by.push_back(dimension);
        if (comma == std::string::npos) {
            break;
        }
        start = comma + 1;
    }
    if (req.has_param("from")) {
        SLUICE_ASSIGN_OR_RETURN(query.from_us, parse_utc_day(req.get_param_value("from")));
    }
    if (req.has_param("to")) {
        // Inclusive: up to the end of that day.
        SLUICE_ASSIGN_OR_RETURN(std::int64_t to, parse_utc_day(req.get_param_value("to")));
        query.to_us = to + 86'400'000'000;
    }
    if (req.has_param("endpoint")) {
        query.endpoint = req.get_param_value("endpoint");
    }
    if (req.has_param("principal")) {
        query.principal = req.get_param_value("principal");
    }
    // Admins see everyone's usage; others only their own.
    SLUICE_ASSIGN_OR_RETURN(bool admin, gov.authorizer().is_admin(ctx.principal_id));
    if (!admin) {
        if (query.principal && *query.principal != ctx.principal) {
            SLUICE_RETURN_IF_ERROR(require_admin(gov, ctx, "usage.read_others"));
        }
        query.principal = ctx.principal;
    }
    SLUICE_ASSIGN_OR_RETURN(auto rows, gov.usage().query(query));
    SLUICE_RETURN_IF_ERROR(audit_action(gov, ctx, "usage.read", "", Status(),
                                        query.principal ? "principal " + *query.principal : ""));
    json out = json::array();
    for (const auto& a : rows) {
        json row = {{"requests", a.requests},
                    {"input_tokens", a.tokens.input_tokens},
                    {"output_tokens", a.tokens.output_tokens},
                    {"cached_tokens", a.tokens.cached_tokens},
                    {"cost_usd", a.cost_usd},
                    {"latency_ms_avg", a.latency_ms_avg}};
        for (auto d : query.group_by) {
            switch (d) {
                case governance::UsageDimension::kPrincipal: row["principal"] = a.principal; break;
                case governance::UsageDimension::kEndpoint: row["endpoint"] = a.endpoint; break;
                case governance::UsageDimension::kDay: row["day"] = a.day; break;
                case governance::UsageDimension::kAgent: row["agent"] = a.agent; break;
            }
        }
        out.push_back(row);
    }
    send_json(res, json{{"usage", out}});
    return Status();
}

}  // namespace

Result<std::int64_t> parse_utc_day(const std::string& text) {
    // Digits where the format has them: sscanf's %d and %u also took a sign or a space.
    bool digits = text.size() == 10 && text[4] == '-' && text[7] == '-';
    for (std::size_t i = 0; digits && i < text.size(); ++i) {
        digits = i == 4 || i == 7 || (text[i] >= '0' && text[i] <= '9');
    }
    int y = 0;
    unsigned m = 0;
    unsigned d = 0;
    if (!digits || std::sscanf(text.c_str(), "%4d-%2u-%2u", &y, &m, &d) != 3 || m < 1 || m > 12 ||
        d < 1) {
        return invalid_argument("date must be YYYY-MM-DD, found '" + text + "'");
    }
    // A day past the month's end (2026-02-30) is refused rather than read as a day of the next.
    const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    constexpr unsigned kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const unsigned days_in_month = kDays[m - 1] + (m == 2 && leap ? 1 : 0);
    if (d > days_in_month) {
        return invalid_argument("date '" + text + "' is past the end of its month (" +
                                std::to_string(days_in_month) + " days)");
    }
    // Days from civil (H. Hinnant's algorithm, proleptic Gregorian calendar).
    y -= m <= 2 ? 1 : 0;
    const int era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    const std::int64_t days = static_cast<std::int64_t>(era) * 146097 + doe - 719468;
    return days * 86'400'000'000;
}

void add_gateway_routes(HttpServer& server, Governance& gov) {
    auto bind = [&gov](Status (*fn)(Governance&, const RequestContext&, const httplib::Request&,
                                    httplib::Response&)) {
        return handle([&gov, fn](const RequestContext& c, const httplib::Request& q,
                                 httplib::Response& r) { return fn(gov, c, q, r); });
    };
    const std::string endpoint = "/api/2.0/serving-endpoints/([A-Za-z0-9_.-]+)/ai-gateway";
    server.route("GET", "/api/2.0/serving-endpoints", bind(list_settings));
    server.route("GET", endpoint, bind(get_settings));
    server.route("PUT", endpoint, bind(put_settings));
    server.route("DELETE", endpoint, bind(delete_settings));
    server.route("GET", "/api/2.0/sluice/limits", bind(list_limits));
    server.route("POST", "/api/2.0/sluice/limits", bind(create_limit));
    server.route("DELETE", "/api/2.0/sluice/limits/([0-9]{1,18})", bind(delete_limit));
    server.route("GET", "/api/2.0/sluice/usage", bind(get_usage));
}

}  // namespace sluice::app
