#include "app/principal_routes.h"

#include <charconv>
#include <sstream>

#include "app/governance_http.h"
#include "app/http_errors.h"

namespace sluice::app {
namespace {

using governance::Governance;
using governance::Principal;
using governance::PrincipalKind;
using governance::TokenInfo;
using nlohmann::json;

json principal_json(const Principal& p) {
    return {{"name", p.name},
            {"kind", std::string(governance::principal_kind_name(p.kind))},
            {"is_admin", p.is_admin},
            {"created_at", p.created_at_ms}};
}

json token_json(const TokenInfo& t) {
    json out = {{"token_id", t.id},
                {"principal", t.principal},
                {"comment", t.comment},
                {"creation_time", t.created_at_ms},
                {"expiry_time", t.expires_at_ms ? *t.expires_at_ms : -1}};
    if (t.revoked_at_ms) {
        out["revoked_time"] = *t.revoked_at_ms;
    }
    if (t.last_used_at_ms) {
        out["last_used_time"] = *t.last_used_at_ms;
    }
    return out;
}

// A query parameter that must be a whole integer, or `fallback` when absent. std::stoll took
// the digits before any junk ("limit=1x" read as 1) and reported the rest by exception.
Result<std::int64_t> integer_param(const httplib::Request& req, const std::string& name,
                                   std::int64_t fallback) {
    if (!req.has_param(name)) {
        return fallback;
    }
    const std::string text = req.get_param_value(name);
    std::int64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
        return invalid_argument(name + " must be an integer, found '" + text + "'");
    }
    return value;
}

using Handler = std::function<Status(const governance::RequestContext&, const httplib::Request&,
                                     httplib::Response&)>;

// Wraps a handler that returns a Status: failures become the error envelope.
HttpHandler handle(Handler handler) {
    return [handler = std::move(handler)](const RequestInfo& info, const httplib::Request& req,
                                          httplib::Response& res) {
        Status status = handler(context_of(info), req, res);
        if (!status.ok()) {
            send_status(res, status, info.request_id);
        }
    };
}

Status create_principal(Governance& gov, const governance::RequestContext& ctx,
                        const httplib::Request& req, httplib::Response& res) {
    SLUICE_ASSIGN_OR_RETURN(json body, parse_json_body(req));
    SLUICE_ASSIGN_OR_RETURN(std::string name, string_field(body, "name"));
    SLUICE_ASSIGN_OR_RETURN(std::string kind_name, string_field_or(body, "kind", "user"));
    SLUICE_ASSIGN_OR_RETURN(PrincipalKind kind, governance::parse_principal_kind(kind_name));
    SLUICE_ASSIGN_OR_RETURN(bool admin, bool_field_or(body, "is_admin", false));
    SLUICE_RETURN_IF_ERROR(require_admin(gov, ctx, "principal.create"));
    auto created = gov.store().create_principal(name, kind, admin);
    SLUICE_RETURN_IF_ERROR(audit_action(gov, ctx, "principal.create", "principal:" + name,
                                        created.status(), admin ? "admin" : ""));
    SLUICE_RETURN_IF_ERROR(created.status());
    send_json(res, principal_json(*created));
    return Status();
}

Status create_token(Governance& gov, const governance::RequestContext& ctx,
                    const httplib::Request& req, httplib::Response& res) {
    SLUICE_ASSIGN_OR_RETURN(json body, parse_json_body(req));
    SLUICE_ASSIGN_OR_RETURN(std::string who, string_field_or(body, "principal", ctx.principal));
    SLUICE_ASSIGN_OR_RETURN(std::string comment, string_field_or(body, "comment", ""));
    if (who != ctx.principal) {
        SLUICE_RETURN_IF_ERROR(require_admin(gov, ctx, "token.create_for_other"));
    }
    SLUICE_ASSIGN_OR_RETURN(Principal principal, gov.store().principal(who));
    if (principal.kind == PrincipalKind::kGroup) {
        return failed_precondition("'" + who + "' is a group; tokens belong to users and "
                                   "service principals");
    }
    std::optional<std::int64_t> lifetime;
    if (body.contains("lifetime_seconds")) {
        SLUICE_ASSIGN_OR_RETURN(lifetime, int64_field(body, "lifetime_seconds"));
    }
    auto token = gov.store().create_token(principal.id, comment, lifetime);
    SLUICE_RETURN_IF_ERROR(audit_action(gov, ctx, "token.create", "principal:" + who,
                                        token.status(), token.ok() ? token->info.id : ""));
    SLUICE_RETURN_IF_ERROR(token.status());
    send_json(res, json{{"token_value", token->secret}, {"token_info", token_json(token->info)}});
    return Status();
}

Status delete_token(Governance& gov, const governance::RequestContext& ctx,
                    const httplib::Request& req, httplib::Response& res) {
    SLUICE_ASSIGN_OR_RETURN(json body, parse_json_body(req));
    SLUICE_ASSIGN_OR_RETURN(std::string id, string_field(body, "token_id"));
    auto found = gov.store().token(id);
    if (!found.ok() || found->principal_id != ctx.principal_id) {
        SLUICE_RETURN_IF_ERROR(found.status());
        // Another principal's token answers a non-admin as a missing one does (the denial is
        // audited), so that token ids cannot be probed for existence.
        Status allowed = require_admin(gov, ctx, "token.revoke_for_other");
        if (allowed.code() == StatusCode::kPermissionDenied) {
            return not_found("token " + id + " does not exist");
        }
        SLUICE_RETURN_IF_ERROR(allowed);
    }
    const TokenInfo& token = *found;
    Status revoked = gov.store().revoke_token(id);
    SLUICE_RETURN_IF_ERROR(
        audit_action(gov, ctx, "token.revoke", "principal:" + token.principal, revoked, id));
    SLUICE_RETURN_IF_ERROR(revoked);
    send_json(res, json::object());
    return Status();
}

Status membership(Governance& gov, const governance::RequestContext& ctx,
                  const httplib::Request& req, httplib::Response& res, bool add) {
    std::string group = req.matches[1].str();
    std::string member = req.matches[2].str();
    SLUICE_RETURN_IF_ERROR(require_admin(gov, ctx, add ? "group.add_member" : "group.remove_member"));
    Status changed = add ? gov.store().add_member(group, member)
                         : gov.store().remove_member(group, member);
    SLUICE_RETURN_IF_ERROR(audit_action(gov, ctx, add ? "group.add_member" : "group.remove_member",
                                        "principal:" + group, changed, member));
    SLUICE_RETURN_IF_ERROR(changed);
    send_json(res, json::object());
    return Status();
}

}  // namespace

void add_principal_routes(HttpServer& server, Governance& gov) {
    const std::string base = "/api/2.0/sluice";
    server.route("GET", base + "/me", handle([&gov](const auto& ctx, const auto&, auto& res) {
                     SLUICE_ASSIGN_OR_RETURN(Principal p, gov.store().principal(ctx.principal));
                     SLUICE_ASSIGN_OR_RETURN(bool admin, gov.authorizer().is_admin(p.id));
                     json out = principal_json(p);
                     out["is_metastore_admin"] = admin;
                     out["token_id"] = ctx.token_id;
                     send_json(res, out);
                     return Status();
                 }));
    server.route("GET", base + "/principals",
                 handle([&gov](const auto&, const auto&, auto& res) {
                     SLUICE_ASSIGN_OR_RETURN(auto all, gov.store().principals());
                     json out = json::array();
                     for (const auto& p : all) {
                         out.push_back(principal_json(p));
                     }
                     send_json(res, json{{"principals", out}});
                     return Status();
                 }));
    server.route("POST", base + "/principals",
                 handle([&gov](const auto& ctx, const auto& req, auto& res) {
                     return create_principal(gov, ctx, req, res);
                 }));
    server.route("DELETE", base + "/principals/([^/]+)",
                 handle([&gov](const auto& ctx, const auto& req, auto& res) {
                     std::string name = req.matches[1].str();
                     SLUICE_RETURN_IF_ERROR(require_admin(gov, ctx, "principal.delete"));
                     Status deleted = gov.store().delete_principal(name);
                     SLUICE_RETURN_IF_ERROR(audit_action(gov, ctx, "principal.delete",
                                                         "principal:" + name, deleted));
                     SLUICE_RETURN_IF_ERROR(deleted);
                     send_json(res, json::object());
                     return Status();
                 }));
    server.route("GET", base + "/groups/([^/]+)/members",
                 handle([&gov](const auto&, const auto& req, auto& res) {
                     SLUICE_ASSIGN_OR_RETURN(auto members,
                                             gov.store().members(req.matches[1].str()));
                     send_json(res, json{{"members", members}});
                     return Status();
                 }));
    server.route("PUT", base + "/groups/([^/]+)/members/([^/]+)",
                 handle([&gov](const auto& ctx, const auto& req, auto& res) {
                     return membership(gov, ctx, req, res, true);
                 }));
    server.route("DELETE", base + "/groups/([^/]+)/members/([^/]+)",
                 handle([&gov](const auto& ctx, const auto& req, auto& res) {
                     return membership(gov, ctx, req, res, false);
                 }));
    server.route("POST", "/api/2.0/token/create",
                 handle([&gov](const auto& ctx, const auto& req, auto& res) {
                     return create_token(gov, ctx, req, res);
                 }));
    server.route("POST", "/api/2.0/token/delete",
                 handle([&gov](const auto& ctx, const auto& req, auto& res) {
                     return delete_token(gov, ctx, req, res);
                 }));
    server.route("GET", "/api/2.0/token/list",
                 handle([&gov](const auto& ctx, const auto& req, auto& res) {
                     std::optional<std::int64_t> whose = ctx.principal_id;
                     if (req.get_param_value("all") == "true") {
                         SLUICE_RETURN_IF_ERROR(require_admin(gov, ctx, "token.list_all"));
                         whose.reset();
                     }
                     SLUICE_ASSIGN_OR_RETURN(auto tokens, gov.store().tokens(whose));
                     json out = json::array();
                     for (const auto& t : tokens) {
                         out.push_back(token_json(t));
                     }
                     send_json(res, json{{"token_infos", out}});
                     return Status();
                 }));
    server.route("GET", base + "/audit",
                 handle([&gov](const auto& ctx, const auto& req, auto& res) {
                     SLUICE_RETURN_IF_ERROR(require_admin(gov, ctx, "audit.export"));
                     // Records of requests already answered may still be queued: write them first.
                     SLUICE_RETURN_IF_ERROR(gov.audit().sync());
                     SLUICE_ASSIGN_OR_RETURN(std::int64_t after,
                                             integer_param(req, "after_seq", 0));
                     SLUICE_ASSIGN_OR_RETURN(std::int64_t limit, integer_param(req, "limit", 1000));
                     std::ostringstream out;
                     SLUICE_RETURN_IF_ERROR(governance::export_audit_log(gov.data_dir() / governance::kCatalogFile,
                                                             after, std::clamp<std::int64_t>(limit, 1, 100000),
                                                             out)
                                                .status());
                     res.set_content(out.str(), "application/x-ndjson");
                     return Status();
                 }));
    server.route("GET", base + "/audit/verify",
                 handle([&gov](const auto& ctx, const auto& req, auto& res) {
                     SLUICE_RETURN_IF_ERROR(require_admin(gov, ctx, "audit.verify"));
                     SLUICE_RETURN_IF_ERROR(gov.audit().sync());
                     governance::AuditVerifyOptions options;
                     SLUICE_ASSIGN_OR_RETURN(options.trusted_public_key,
                                             governance::audit_public_key(
                                                 gov.data_dir() / governance::kSigningKeyFile));
                     options.checkpoint_every = gov.audit().checkpoint_every();
                     options.allow_missing_archives =
                         req.get_param_value("archives_offline") == "true";
                     if (req.has_param("expect_checkpoint")) {
                         SLUICE_ASSIGN_OR_RETURN(options.expect_checkpoint_seq,
                                                 integer_param(req, "expect_checkpoint", 0));
                     }
                     SLUICE_ASSIGN_OR_RETURN(
                         auto report,
                         governance::verify_audit_log(gov.data_dir() / governance::kCatalogFile,
                                                      options));
                     send_json(res, audit_report_json(report));
                     return Status();
                 }));
}

}  // namespace sluice::app
