#include "app/governance_http.h"

#include <limits>
#include <utility>

#include "app/http_errors.h"

namespace sluice::app {

using governance::AuditEvent;
using governance::RequestContext;

RequestContext context_of(const RequestInfo& info) {
    SLUICE_CHECK(info.identity.has_value(), "governance route reached without authentication");
    RequestContext context{info.identity->principal_id, info.identity->principal,
                           info.request_id, info.client_address, info.identity->token_id};
    context.audit_ticket = info.identity->audit_ticket;
    return context;
}

nlohmann::json audit_report_json(const governance::AuditVerifyReport& report) {
    return {{"ok", report.ok},
            {"records", report.records},
            {"checkpoints", report.checkpoints},
            {"first_seq", report.first_seq},
            {"last_seq", report.last_seq},
            {"last_checkpoint_seq", report.last_checkpoint_seq},
            {"archives", report.archives},
            {"archived_records", report.archived_records},
            {"archives_unverified", report.archives_unverified},
            {"key_rotations", report.key_rotations},
            {"first_bad_seq", report.first_bad_seq},
            {"problem", report.problem}};
}

nlohmann::json securable_json(const governance::Securable& s) {
    nlohmann::json out = {{"name", s.name},
                          {"full_name", s.full_name},
                          {"securable_type", std::string(governance::securable_type_name(s.type))},
                          {"owner", s.owner},
                          {"comment", s.comment},
                          {"tags", s.tags},
                          {"created_at", s.created_at_ms},
                          {"updated_at", s.updated_at_ms}};
    auto dot = s.full_name.find('.');
    if (s.type != governance::SecurableType::kCatalog &&
        s.type != governance::SecurableType::kConnection && dot != std::string::npos) {
        out["catalog_name"] = s.full_name.substr(0, dot);
        auto second = s.full_name.find('.', dot + 1);
        if (second != std::string::npos) {
            out["schema_name"] = s.full_name.substr(dot + 1, second - dot - 1);
        }
    }
    return out;
}

Status audit_action(governance::Governance& gov, const RequestContext& context,
                    std::string action, std::string securable, const Status& outcome,
                    std::string details) {
    AuditEvent event = audit_event_for(context);
    event.action = std::move(action);
    event.securable = std::move(securable);
    event.result = outcome.ok() ? "ok" : "error";
    event.decided_by = outcome.ok() ? "" : outcome.to_string();
    event.details = std::move(details);
    return gov.audit().append(std::move(event));
}

Status require_admin(governance::Governance& gov, const RequestContext& context,
                     std::string_view action) {
    Result<bool> admin = gov.authorizer().is_admin(context.principal_id);
    AuditEvent event = audit_event_for(context);
    event.action = "admin:" + std::string(action);
    event.securable = "metastore:";
    bool allowed = admin.ok() && *admin;
    event.result = allowed ? "allow" : "deny";
    event.decided_by = allowed ? "'" + context.principal + "' is a metastore admin"
                               : "'" + context.principal + "' is not a metastore admin";
    SLUICE_RETURN_IF_ERROR(gov.audit().append(std::move(event)));
    if (!admin.ok()) {
        return admin.status();
    }
    if (!allowed) {
        return Status(StatusCode::kPermissionDenied,
                      std::string(action) + " needs a metastore admin; '" + context.principal +
                          "' is not one");
    }
    return Status();
}

void send_json(httplib::Response& res, const nlohmann::json& body, int status) {
    res.status = status;
    res.set_content(body.dump(), "application/json");
}

Result<std::string> string_field(const nlohmann::json& body, const std::string& field) {
    if (!body.is_object() || !body.contains(field) || !body[field].is_string()) {
        return invalid_argument("request body: \"" + field + "\" must be a string");
    }
    return body[field].get<std::string>();
}

Result<std::string> string_field_or(const nlohmann::json& body, const std::string& field,
                                    std::string fallback) {
    auto it = body.find(field);
    if (it == body.end() || it->is_null()) {
        return fallback;
    }
    if (!it->is_string()) {
        return invalid_argument("request body: \"" + field + "\" must be a string");
    }
    return it->get<std::string>();
}

Result<bool> bool_field_or(const nlohmann::json& body, const std::string& field, bool fallback) {
    auto it = body.find(field);
    if (it == body.end() || it->is_null()) {
        return fallback;
    }
    if (!it->is_boolean()) {
        return invalid_argument("request body: \"" + field + "\" must be true or false");
    }
    return it->get<bool>();
}

Result<std::int64_t> int64_field(const nlohmann::json& body, const std::string& field) {
    auto it = body.find(field);
    if (it == body.end() || !it->is_number_integer()) {
        return invalid_argument("request body: \"" + field + "\" must be an integer");
    }
    if (it->is_number_unsigned() &&
        it->get<std::uint64_t>() >
            static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return invalid_argument("request body: \"" + field + "\" is " + it->dump() +
                                ", beyond the largest integer taken (9223372036854775807)");
    }
    return it->get<std::int64_t>();
}

void govern_requests(HttpServer& server, governance::Governance& gov,
                     std::vector<std::string> open_paths, std::vector<std::string> open_prefixes) {
    server.set_authenticator(
        [&gov](const httplib::Request& req, const std::string& request_id,
               const std::string& client) -> Result<Identity> {
            // The success record is held back and written with the request's next record (or
            // before the response by the finisher): one commit per request instead of two.
            SLUICE_ASSIGN_OR_RETURN(
                governance::RequestContext context,
                gov.authenticate(req.get_header_value("Authorization"), request_id, client, true));
            return Identity{context.principal_id, context.principal, context.token_id,
                            context.audit_ticket};
        },
        std::move(open_paths), std::move(open_prefixes));
    server.set_request_finisher(
        [&gov](const RequestInfo& info) { return gov.finish_request(context_of(info)); });
}

}  // namespace sluice::app
