#include "app/source_routes.h"

#include <map>
#include <memory>
#include <mutex>

#include "app/governance_http.h"
#include "app/http_errors.h"
#include "connectors/source_registry.h"

namespace sluice::app {

namespace {

using nlohmann::json;

// Push sources by name, opened on first use and kept for the server's life.
class PushSources {
public:
    explicit PushSources(std::filesystem::path data_dir) : data_dir_(std::move(data_dir)) {}

    Result<connectors::PushSource*> get(const std::string& name) {
        std::lock_guard lock(mutex_);
        if (auto it = open_.find(name); it != open_.end()) {
            return it->second.get();
        }
        if (registry_ == nullptr) {
            SLUICE_ASSIGN_OR_RETURN(registry_, connectors::SourceRegistry::open(data_dir_));
        }
        SLUICE_ASSIGN_OR_RETURN(connectors::SourceDefinition definition, registry_->get(name));
        SLUICE_ASSIGN_OR_RETURN(auto source, connectors::open_push_source(
                                                 definition, registry_->state_dir(name)));
        connectors::PushSource* raw = source.get();
        open_.emplace(name, std::move(source));
        return raw;
    }

private:
    std::filesystem::path data_dir_;
    std::mutex mutex_;
    std::unique_ptr<connectors::SourceRegistry> registry_;  // guarded by mutex_
    std::map<std::string, std::unique_ptr<connectors::PushSource>> open_;  // guarded by mutex_
};

}  // namespace

void add_source_routes(HttpServer& server, governance::Governance& gov,
                       const std::filesystem::path& data_dir) {
    auto sources = std::make_shared<PushSources>(data_dir);
    server.route(
        "POST", "/api/sources/([a-z0-9][a-z0-9_-]{0,63})/events",
        [&gov, sources](const RequestInfo& info, const httplib::Request& req,
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
                SLUICE_ASSIGN_OR_RETURN(connectors::PushSource * source, sources->get(name));
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
