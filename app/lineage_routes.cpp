#include "app/lineage_routes.h"

#include "app/governance_http.h"
#include "app/http_errors.h"

namespace sluice::app {
namespace {

using governance::LineageDirection;
using governance::LineageGraph;
using nlohmann::json;

constexpr int kDefaultDepth = 3;

// "n" + id, by append: GCC 12 reports a false -Wrestrict on operator+ here.
std::string node_id(int id) { return std::string("n").append(std::to_string(id)); }

json graph_json(const LineageGraph& g, LineageDirection direction, int depth) {
    json nodes = json::array();
    for (const auto& n : g.nodes) {
        json node = {{"id", node_id(n.id)}, {"distance", n.distance}};
        if (n.hidden) {
            node["hidden"] = true;
        } else {
            node["type"] = std::string(governance::lineage_node_type_name(n.node.type));
            node["name"] = n.node.name;
        }
        nodes.push_back(std::move(node));
    }
    json edges = json::array();
    for (const auto& e : g.edges) {
        json edge = {{"source", node_id(e.source)},
                     {"target", node_id(e.target)},
                     {"first_seen", e.first_seen_ms},
                     {"last_seen", e.last_seen_ms},
                     {"times", e.times}};
        if (!e.last_request_id.empty()) {
            edge["last_request_id"] = e.last_request_id;
        }
        edges.push_back(std::move(edge));
    }
    return json{{"root", node_id(g.root)},
                {"direction", direction == LineageDirection::kUpstream ? "upstream" : "downstream"},
                {"depth", depth},
                {"nodes", nodes},
                {"edges", edges},
                {"hidden_nodes", g.hidden},
                {"truncated", g.truncated}};
}

Status read(governance::Governance& gov, LineageDirection direction, const RequestInfo& info,
            const httplib::Request& req, httplib::Response& res) {
    if (!req.has_param("node")) {
        return invalid_argument("query parameter node=TYPE:NAME is required, e.g. "
                                "node=table:main.sales.orders");
    }
    SLUICE_ASSIGN_OR_RETURN(auto root, governance::parse_lineage_node(req.get_param_value("node")));
    int depth = kDefaultDepth;
    if (req.has_param("depth")) {
        std::string text = req.get_param_value("depth");
        if (text.empty() || text.size() > 3 ||
            text.find_first_not_of("0123456789") != std::string::npos) {
            return invalid_argument("depth must be a number of edges, found '" + text + "'");
        }
        depth = std::stoi(text);
    }
    SLUICE_ASSIGN_OR_RETURN(LineageGraph graph,
                            gov.lineage().traverse(context_of(info), root, direction, depth));
    send_json(res, graph_json(graph, direction, depth));
    return Status();
}

Result<governance::LineageNode> node_field(const json& item, const char* key) {
    SLUICE_ASSIGN_OR_RETURN(std::string text, string_field(item, key));
    return governance::parse_lineage_node(text);
}

Status record(governance::Governance& gov, const RequestInfo& info, const httplib::Request& req,
              httplib::Response& res) {
    auto ctx = context_of(info);
    SLUICE_ASSIGN_OR_RETURN(json body, parse_json_body(req));
    if (!body.is_object() || !body.contains("edges") || !body["edges"].is_array()) {
        return invalid_argument("request body: \"edges\" must be an array");
    }
    std::vector<governance::LineageEdge> edges;
    for (const json& item : body["edges"]) {
        governance::LineageEdge edge;
        SLUICE_ASSIGN_OR_RETURN(edge.source, node_field(item, "source"));
        SLUICE_ASSIGN_OR_RETURN(edge.target, node_field(item, "target"));
        if (item.contains("source_governed_by")) {
            SLUICE_ASSIGN_OR_RETURN(std::string text, string_field(item, "source_governed_by"));
            auto colon = text.find(':');
            if (colon == std::string::npos) {
                return invalid_argument("source_governed_by must be TYPE:NAME, found '" + text +
                                        "'");
            }
            SLUICE_ASSIGN_OR_RETURN(auto type,
                                    governance::parse_securable_type(text.substr(0, colon)));
            edge.source.governed_by.emplace(type, text.substr(colon + 1));
        }
        edges.push_back(std::move(edge));
    }
    SLUICE_RETURN_IF_ERROR(require_admin(gov, ctx, "lineage.record"));
    Status recorded = gov.lineage().record(ctx, edges);
    SLUICE_RETURN_IF_ERROR(audit_action(gov, ctx, "lineage.record", "", recorded,
                                        std::to_string(edges.size()) + " edges"));
    SLUICE_RETURN_IF_ERROR(recorded);
    send_json(res, json{{"recorded", edges.size()}});
    return Status();
}

}  // namespace

void add_lineage_routes(HttpServer& server, governance::Governance& gov) {
    for (auto [path, direction] : {std::pair{"upstream", LineageDirection::kUpstream},
                                   std::pair{"downstream", LineageDirection::kDownstream}}) {
        server.route("GET", std::string("/api/2.1/lineage/") + path,
                     [&gov, direction](const RequestInfo& i, const httplib::Request& q,
                                       httplib::Response& r) {
                         Status status = read(gov, direction, i, q, r);
                         if (!status.ok()) {
                             send_status(r, status, i.request_id);
                         }
                     });
    }
    server.route("POST", "/api/2.1/lineage/edges",
                 [&gov](const RequestInfo& i, const httplib::Request& q, httplib::Response& r) {
                     Status status = record(gov, i, q, r);
                     if (!status.ok()) {
                         send_status(r, status, i.request_id);
                     }
                 });
}

}  // namespace sluice::app
