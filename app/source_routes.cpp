#include "app/source_routes.h"

#include "app/governance_http.h"
#include "app/http_errors.h"
#include "connectors/source_registry.h"

namespace sluice::app {

using nlohmann::json;

namespace {

const std::string kSourcePath = "/api/sources/([a-z0-9][a-z0-9_-]{0,63})";

// Answers `result` as JSON, or its status.
void answer(httplib::Response& res, const RequestInfo& info, const Result<json>& result) {
    if (!result.ok()) {
        send_status(res, result.status(), info.request_id);
        return;
    }
    send_json(res, *result);
}

}  // namespace

void add_source_routes(HttpServer& server, governance::Governance& gov, SyncService& sync) {
    server.route("GET", "/api/sources",
                 [&gov, &sync](const RequestInfo& info, const httplib::Request&,
                               httplib::Response& res) {
                     const governance::RequestContext context = context_of(info);
                     auto described = sync.describe(context);
                     Status audited = audit_action(gov, context, "source.list", "",
                                                   described.ok() ? Status() : described.status());
                     if (!audited.ok()) {
                         send_status(res, audited, info.request_id);
                         return;
                     }
                     answer(res, info, described);
                 });
    server.route("POST", "/api/sources",
                 [&sync](const RequestInfo& info, const httplib::Request& req,
                         httplib::Response& res) {
                     auto body = parse_json_body(req);
                     if (!body.ok()) {
                         send_status(res, body.status(), info.request_id);
                         return;
                     }
                     answer(res, info, sync.create(context_of(info), *body));
                 });
    server.route("GET", kSourcePath,
                 [&sync](const RequestInfo& info, const httplib::Request& req,
                         httplib::Response& res) {
                     answer(res, info, sync.describe(context_of(info), req.matches[1].str()));
                 });
    server.route("PATCH", kSourcePath,
                 [&sync](const RequestInfo& info, const httplib::Request& req,
                         httplib::Response& res) {
                     auto body = parse_json_body(req);
                     if (!body.ok()) {
                         send_status(res, body.status(), info.request_id);
                         return;
                     }
                     answer(res, info, sync.alter(context_of(info), req.matches[1].str(), *body));
                 });
    server.route(
        "DELETE", kSourcePath,
        [&sync](const RequestInfo& info, const httplib::Request& req, httplib::Response& res) {
            answer(res, info, sync.remove(context_of(info), req.matches[1].str()));
        });
    // "Sync now": the source's sync polls at once instead of after its idle wait or backoff.
    server.route("POST", kSourcePath + "/sync",
                 [&gov, &sync](const RequestInfo& info, const httplib::Request& req,
                               httplib::Response& res) {
                     const governance::RequestContext context = context_of(info);
                     const std::string name = req.matches[1].str();
                     Status allowed = sync.authorize_write(context, name);
                     if (!allowed.ok()) {
                         send_status(res, allowed, info.request_id);
                         return;
                     }
                     Status woken = sync.wake(name);
                     Status audited =
                         audit_action(gov, context, "source.sync", "source:" + name, woken);
                     if (!woken.ok() || !audited.ok()) {
                         send_status(res, woken.ok() ? audited : woken, info.request_id);
                         return;
                     }
                     answer(res, info, sync.describe(context, name));
                 });
    server.route(
        "POST", kSourcePath + "/events",
        [&gov, &sync](const RequestInfo& info, const httplib::Request& req,
                      httplib::Response& res) {
            const governance::RequestContext context = context_of(info);
            const std::string name = req.matches[1].str();
            Status allowed = sync.authorize_write(context, name);
            if (!allowed.ok()) {
                send_status(res, allowed, info.request_id);
                return;
            }
            auto run = [&]() -> Result<connectors::IngestResult> {
                if (!req.has_header("Idempotency-Key")) {
                    return invalid_argument("Idempotency-Key: header required");
                }
                SLUICE_ASSIGN_OR_RETURN(json body, parse_json_body(req));
                SLUICE_ASSIGN_OR_RETURN(auto source, sync.push_source(name));
                return source->ingest(req.get_header_value("Idempotency-Key"), body);
            };
            auto result = run();
            Status outcome = result.ok() ? Status() : result.status();
            [[maybe_unused]] Status audited =
                audit_action(gov, context, "source.push", "source:" + name, outcome,
                             result.ok() ? result->response.dump() : "");
            if (!result.ok()) {
                send_status(res, result.status(), info.request_id);
                return;
            }
            if (result->replayed) {
                res.set_header("Idempotent-Replayed", "true");
            }
            send_json(res, result->response);
        });
}

}  // namespace sluice::app
