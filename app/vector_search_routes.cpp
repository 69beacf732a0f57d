#include "app/vector_search_routes.h"

#include "agents/index_access.h"
#include "app/governance_http.h"
#include "app/http_errors.h"
#include "app/index_catalog.h"
#include "app/vector_search_json.h"
#include "common/log.h"

namespace sluice::app {
namespace {

using governance::Privilege;
using governance::SecurableType;
using nlohmann::json;

const std::string kBase = "/api/2.0/vector-search/indexes";

json describe(const agents::IndexRef& ref) {
    json out = describe_index(*ref.index);
    out["full_name"] = ref.securable;
    return out;
}

// Runs `body` with the index named in the path once the caller holds `privilege` on it;
// answers the refusal (403, 404) otherwise.
template <typename Body>
void with_index(governance::Governance& gov, retrieval::IndexManager& indexes, Privilege privilege,
                const RequestInfo& info, const httplib::Request& req, httplib::Response& res,
                Body body) {
    auto ref = agents::open_index(gov.authorizer(), context_of(info), privilege, indexes,
                                  req.matches[1].str());
    if (!ref.ok()) {
        send_status(res, ref.status(), info.request_id);
        return;
    }
    body(*ref);
}

bool may(governance::Governance& gov, std::int64_t principal_id, Privilege privilege,
         const std::string& securable) {
    auto decision =
        gov.authorizer().check(principal_id, privilege, SecurableType::kVectorIndex, securable);
    return decision.ok() && decision->allowed;
}

void create(governance::Governance& gov, retrieval::IndexManager& indexes,
            const RequestInfo& info, const httplib::Request& req, httplib::Response& res) {
    auto body = parse_json_body(req);
    if (!body.ok()) {
        return send_status(res, body.status(), info.request_id);
    }
    auto settings = settings_from_json(*body);
    if (!settings.ok()) {
        return send_status(res, settings.status(), info.request_id);
    }
    // settings_from_json refused a comment that is not a string.
    const std::string comment = body->value("comment", std::string());
    auto created = create_index(gov, indexes, context_of(info), *settings, comment);
    if (!created.ok()) {
        return send_status(res, created.status(), info.request_id);
    }
    log::info("retrieval", "index created",
              {{"index", settings->name},
               {"securable", created->securable},
               {"request_id", info.request_id}});
    send_json(res, describe(*created));
}

void list(governance::Governance& gov, retrieval::IndexManager& indexes, const RequestInfo& info,
          httplib::Response& res) {
    auto context = context_of(info);
    json out = json::array();
    std::size_t total = 0;
    for (const auto& name : indexes.list()) {
        auto ref = agents::find_index(indexes, name);
        if (!ref.ok()) {
            continue;
        }
        ++total;
        if (may(gov, context.principal_id, Privilege::kBrowse, ref->securable) ||
            may(gov, context.principal_id, Privilege::kSelect, ref->securable)) {
            out.push_back(describe(*ref));
        }
    }
    // The listing is audited once, as the catalog's listings are, not one record per index.
    Status audited = audit_action(gov, context, "securable.list", "vector_index:", Status(),
                                  std::to_string(out.size()) + " of " + std::to_string(total) +
                                      " vector indexes visible");
    if (!audited.ok()) {
        return send_status(res, audited, info.request_id);
    }
    send_json(res, json{{"vector_indexes", out}});
}

void describe_one(governance::Governance& gov, retrieval::IndexManager& indexes,
                  const RequestInfo& info, const httplib::Request& req, httplib::Response& res) {
    // Metadata is for those who may read the index or browse it; the audited decision is the
    // one that lets the caller in (SELECT when held, else BROWSE, whose denial is reported).
    auto securable = agents::securable_for(indexes, req.matches[1].str());
    Privilege needed = securable.ok() && may(gov, context_of(info).principal_id,
                                             Privilege::kSelect, *securable)
                           ? Privilege::kSelect
                           : Privilege::kBrowse;
    with_index(gov, indexes, needed, info, req, res,
               [&](const agents::IndexRef& ref) { send_json(res, describe(ref)); });
}

void drop(governance::Governance& gov, retrieval::IndexManager& indexes, const RequestInfo& info,
          const httplib::Request& req, httplib::Response& res) {
    Status dropped = drop_index(gov, indexes, context_of(info), req.matches[1].str());
    if (!dropped.ok()) {
        return send_status(res, dropped, info.request_id);
    }
    send_json(res, json::object());
}

void upsert(governance::Governance& gov, retrieval::IndexManager& indexes,
            const RequestInfo& info, const httplib::Request& req, httplib::Response& res) {
    auto body = parse_json_body(req);
    if (!body.ok()) {
        return send_status(res, body.status(), info.request_id);
    }
    auto documents = upsert_rows_from_json(*body);
    if (!documents.ok()) {
        return send_status(res, documents.status(), info.request_id);
    }
    with_index(gov, indexes, Privilege::kModify, info, req, res, [&](const agents::IndexRef& ref) {
        auto stats = ref.index->upsert(*documents);
        if (!stats.ok()) {
            return send_status(res, stats.status(), info.request_id);
        }
        send_json(res, json{{"status", "SUCCESS"},
                            {"result",
                             {{"success_row_count", documents->size()},
                              {"failed_primary_keys", json::array()},
                              {"unchanged_row_count", stats->unchanged},
                              {"chunks_added", stats->chunks_added},
                              {"chunks_removed", stats->chunks_removed},
                              {"embedded", stats->embedded},
                              {"embedding_cache_hits", stats->embedding_cache_hits}}}});
    });
}

void delete_data(governance::Governance& gov, retrieval::IndexManager& indexes,
                 const RequestInfo& info, const httplib::Request& req, httplib::Response& res) {
    auto body = parse_json_body(req);
    if (!body.ok()) {
        return send_status(res, body.status(), info.request_id);
    }
    auto keys = primary_keys_from_json(*body);
    if (!keys.ok()) {
        return send_status(res, keys.status(), info.request_id);
    }
    with_index(gov, indexes, Privilege::kModify, info, req, res, [&](const agents::IndexRef& ref) {
        auto removed = ref.index->remove(*keys);
        if (!removed.ok()) {
            return send_status(res, removed.status(), info.request_id);
        }
        send_json(res, json{{"status", "SUCCESS"},
                            {"result",
                             {{"success_row_count", keys->size()},
                              {"deleted_row_count", *removed},
                              {"failed_primary_keys", json::array()}}}});
    });
}

void query(governance::Governance& gov, retrieval::IndexManager& indexes, const RequestInfo& info,
           const httplib::Request& req, httplib::Response& res) {
    auto context = context_of(info);
    auto body = parse_json_body(req);
    if (!body.ok()) {
        return send_status(res, body.status(), info.request_id);
    }
    auto query = query_from_json(*body);
    if (!query.ok()) {
        return send_status(res, query.status(), info.request_id);
    }
    auto columns = columns_from_json(*body);
    if (!columns.ok()) {
        return send_status(res, columns.status(), info.request_id);
    }
    // The caller with every group it is inside, so that a chunk's access list is matched
    // against the same identity governance knows.
    auto groups = gov.authorizer().groups_of(context.principal_id);
    if (!groups.ok()) {
        return send_status(res, groups.status(), info.request_id);
    }
    retrieval::Reader reader{context.principal, std::move(*groups)};
    with_index(gov, indexes, Privilege::kSelect, info, req, res, [&](const agents::IndexRef& ref) {
        auto hits = ref.index->query(*query, reader);
        if (!hits.ok()) {
            return send_status(res, hits.status(), info.request_id);
        }
        send_json(res, results_to_json(*hits, *columns));
    });
}

}  // namespace

void add_vector_search_routes(HttpServer& server, retrieval::IndexManager& indexes,
                              governance::Governance& gov) {
    auto route = [&](const std::string& method, const std::string& path, auto handler) {
        server.route(method, path,
                     [&gov, &indexes, handler](const RequestInfo& info,
                                               const httplib::Request& req,
                                               httplib::Response& res) {
                         handler(gov, indexes, info, req, res);
                     });
    };
    route("POST", kBase, create);
    route("GET", kBase,
          [](governance::Governance& g, retrieval::IndexManager& i, const RequestInfo& info,
             const httplib::Request&, httplib::Response& res) { list(g, i, info, res); });
    // Catalog names carry dots: the name segment is anything but a slash.
    route("GET", kBase + "/([^/]+)", describe_one);
    route("DELETE", kBase + "/([^/]+)", drop);
    route("POST", kBase + "/([^/]+)/upsert-data", upsert);
    // POST is accepted too, for clients that cannot send a DELETE body.
    route("DELETE", kBase + "/([^/]+)/delete-data", delete_data);
    route("POST", kBase + "/([^/]+)/delete-data", delete_data);
    route("POST", kBase + "/([^/]+)/query", query);
}

}  // namespace sluice::app
