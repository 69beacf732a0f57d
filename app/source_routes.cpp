#include "app/source_routes.h"

#include "app/governance_http.h"
#include "app/http_errors.h"
#include "connectors/source_registry.h"

namespace sluice::app {

using nlohmann::json;

void add_source_routes(HttpServer& server, governance::Governance& gov, SyncService& sync) {
    server.route("GET", "/api/sources",
                 [&gov, &sync](const RequestInfo& info, const httplib::Request&,
                               httplib::Response& res) {
                     Status allowed = require_admin(gov, context_of(info), "source.list");
                     if (!allowed.ok()) {
                         send_status(res, allowed, info.request_id);
                         return;
                     }
                     auto described = sync.describe();
                     if (!described.ok()) {
                         send_status(res, described.status(), info.request_id);
                         return;
                     }
                     send_json(res, *described);
                 });
    server.route("GET", "/api/sources/([a-z0-9][a-z0-9_-]{0,63})",
                 [&gov, &sync](const RequestInfo& info, const httplib::Request& req,
                               httplib::Response& res) {
                     Status allowed = require_admin(gov, context_of(info), "source.get");
                     if (!allowed.ok()) {
                         send_status(res, allowed, info.request_id);
                         return;
                     }
                     auto described = sync.describe(req.matches[1].str());
                     if (!described.ok()) {
                         send_status(res, described.status(), info.request_id);
                         return;
                     }
                     send_json(res, *described);
                 });
    // "Sync now": the source's sync polls at once instead of after its idle wait or backoff.
    server.route("POST", "/api/sources/([a-z0-9][a-z0-9_-]{0,63})/sync",
                 [&gov, &sync](const RequestInfo& info, const httplib::Request& req,
                               httplib::Response& res) {
                     const governance::RequestContext context = context_of(info);
                     const std::string name = req.matches[1].str();
                     Status allowed = require_admin(gov, context, "source.sync");
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
                     auto described = sync.describe(name);
                     if (!described.ok()) {
                         send_status(res, described.status(), info.request_id);
                         return;
                     }
                     send_json(res, *described);
                 });
    server.route(
        "POST", "/api/sources/([a-z0-9][a-z0-9_-]{0,63})/events",
        [&gov, &sync](const RequestInfo& info, const httplib::Request& req,
                        httplib::Response& res) {
            const governance::RequestContext context = context_of(info);
            const std::string name = req.matches[1].str();
            Status allowed = require_admin(gov, context, "source.push");
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
