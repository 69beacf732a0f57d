#include "app/vector_search_routes.h"

#include "app/http_errors.h"
#include "app/vector_search_json.h"
#include "common/log.h"

namespace sluice::app {
namespace {

using nlohmann::json;

const std::string kBase = "/api/2.0/vector-search/indexes";

void send_json(httplib::Response& res, const json& body, int status = 200) {
    res.status = status;
    res.set_content(body.dump(), "application/json");
}

// Runs `body` with the index named in the path, answering 404 when it does not exist.
template <typename Body>
void with_index(retrieval::IndexManager& indexes, const RequestInfo& info,
                const httplib::Request& req, httplib::Response& res, Body body) {
    auto index = indexes.get(req.matches[1].str());
    if (!index.ok()) {
        send_status(res, index.status(), info.request_id);
        return;
    }
    body(**index);
}

}  // namespace

void add_vector_search_routes(HttpServer& server, retrieval::IndexManager& indexes,
                              ReaderResolver resolve_reader) {
    server.route("POST", kBase,
                 [&indexes](const RequestInfo& info, const httplib::Request& req,
                            httplib::Response& res) {
                     auto body = parse_json_body(req);
                     if (!body.ok()) {
                         send_status(res, body.status(), info.request_id);
                         return;
                     }
                     auto settings = settings_from_json(*body);
                     if (!settings.ok()) {
                         send_status(res, settings.status(), info.request_id);
                         return;
                     }
                     auto index = indexes.create(*settings);
                     if (!index.ok()) {
                         send_status(res, index.status(), info.request_id);
                         return;
                     }
                     log::info("retrieval", "index created",
                               {{"index", settings->name}, {"request_id", info.request_id}});
                     send_json(res, describe_index(**index));
                 });
    server.route("GET", kBase,
                 [&indexes](const RequestInfo&, const httplib::Request&, httplib::Response& res) {
                     json list = json::array();
                     for (const auto& name : indexes.list()) {
                         auto index = indexes.get(name);
                         if (index.ok()) {
                             list.push_back(describe_index(**index));
                         }
                     }
                     send_json(res, json{{"vector_indexes", list}});
                 });
    server.route("GET", kBase + "/([^/]+)",
                 [&indexes](const RequestInfo& info, const httplib::Request& req,
                            httplib::Response& res) {
                     with_index(indexes, info, req, res, [&](retrieval::Index& index) {
                         send_json(res, describe_index(index));
                     });
                 });
    server.route("DELETE", kBase + "/([^/]+)",
                 [&indexes](const RequestInfo& info, const httplib::Request& req,
                            httplib::Response& res) {
                     Status dropped = indexes.drop(req.matches[1].str());
                     if (!dropped.ok()) {
                         send_status(res, dropped, info.request_id);
                         return;
                     }
                     send_json(res, json::object());
                 });
    server.route("POST", kBase + "/([^/]+)/upsert-data",
                 [&indexes](const RequestInfo& info, const httplib::Request& req,
                            httplib::Response& res) {
                     with_index(indexes, info, req, res, [&](retrieval::Index& index) {
                         auto body = parse_json_body(req);
                         if (!body.ok()) {
                             send_status(res, body.status(), info.request_id);
                             return;
                         }
                         json rows = body->value("inputs", json());
                         if (body->contains("inputs_json") && (*body)["inputs_json"].is_string()) {
                             rows = json::parse((*body)["inputs_json"].get<std::string>(), nullptr,
                                                false);
                         }
                         auto documents = documents_from_json(rows);
                         if (!documents.ok()) {
                             send_status(res, documents.status(), info.request_id);
                             return;
                         }
                         auto stats = index.upsert(*documents);
                         if (!stats.ok()) {
                             send_status(res, stats.status(), info.request_id);
                             return;
                         }
                         send_json(res, json{{"status", "SUCCESS"},
                                             {"result",
                                              {{"success_row_count", documents->size()},
                                               {"failed_primary_keys", json::array()},
                                               {"unchanged_row_count", stats->unchanged},
                                               {"chunks_added", stats->chunks_added},
                                               {"chunks_removed", stats->chunks_removed},
                                               {"embedded", stats->embedded},
                                               {"embedding_cache_hits",
                                                stats->embedding_cache_hits}}}});
                     });
                 });
    auto delete_data = [&indexes](const RequestInfo& info, const httplib::Request& req,
                                  httplib::Response& res) {
        with_index(indexes, info, req, res, [&](retrieval::Index& index) {
            auto body = parse_json_body(req);
            if (!body.ok()) {
                send_status(res, body.status(), info.request_id);
                return;
            }
            std::vector<std::string> keys;
            for (const auto& key : body->value("primary_keys", json::array())) {
                if (key.is_string()) {
                    keys.push_back(key.get<std::string>());
                } else if (key.is_number_integer()) {
                    keys.push_back(std::to_string(key.get<long long>()));
                } else {
                    send_status(res, invalid_argument("primary_keys: strings or integers"),
                                info.request_id);
                    return;
                }
            }
            auto removed = index.remove(keys);
            if (!removed.ok()) {
                send_status(res, removed.status(), info.request_id);
                return;
            }
            send_json(res, json{{"status", "SUCCESS"},
                                {"result",
                                 {{"success_row_count", keys.size()},
                                  {"deleted_row_count", *removed},
                                  {"failed_primary_keys", json::array()}}}});
        });
    };
    server.route("DELETE", kBase + "/([^/]+)/delete-data", delete_data);
    server.route("POST", kBase + "/([^/]+)/delete-data", delete_data);
    server.route("POST", kBase + "/([^/]+)/query",
                 [&indexes, resolve_reader](const RequestInfo& info, const httplib::Request& req,
                                            httplib::Response& res) {
                     auto reader = resolve_reader(info);
                     if (!reader.ok()) {
                         send_status(res, reader.status(), info.request_id);
                         return;
                     }
                     with_index(indexes, info, req, res, [&](retrieval::Index& index) {
                         auto body = parse_json_body(req);
                         if (!body.ok()) {
                             send_status(res, body.status(), info.request_id);
                             return;
                         }
                         auto query = query_from_json(*body);
                         if (!query.ok()) {
                             send_status(res, query.status(), info.request_id);
                             return;
                         }
                         std::vector<std::string> columns = default_columns();
                         if (body->contains("columns") && (*body)["columns"].is_array()) {
                             columns.clear();
                             for (const auto& c : (*body)["columns"]) {
                                 if (c.is_string()) {
                                     columns.push_back(c.get<std::string>());
                                 }
                             }
                         }
                         auto hits = index.query(*query, *reader);
                         if (!hits.ok()) {
                             send_status(res, hits.status(), info.request_id);
                             return;
                         }
                         send_json(res, results_to_json(*hits, columns));
                     });
                 });
}

}  // namespace sluice::app
