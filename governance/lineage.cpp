#include "governance/lineage.h"

#include <deque>
#include <map>

#include "governance/detail/sqlite.h"
#include "governance/store.h"

namespace sluice::governance {
namespace {

constexpr std::pair<LineageNodeType, std::string_view> kNodeTypes[] = {
    {LineageNodeType::kSource, "source"},   {LineageNodeType::kTable, "table"},
    {LineageNodeType::kVolume, "volume"},   {LineageNodeType::kVectorIndex, "vector_index"},
    {LineageNodeType::kChunk, "chunk"},     {LineageNodeType::kFunction, "function"},
    {LineageNodeType::kModel, "model"},     {LineageNodeType::kAgent, "agent"},
    {LineageNodeType::kAnswer, "answer"},
};

// The catalog type of a node that is a catalog object.
std::optional<SecurableType> securable_of(LineageNodeType type) {
    switch (type) {
        case LineageNodeType::kTable: return SecurableType::kTable;
        case LineageNodeType::kVolume: return SecurableType::kVolume;
        case LineageNodeType::kVectorIndex: return SecurableType::kVectorIndex;
        case LineageNodeType::kFunction: return SecurableType::kFunction;
        case LineageNodeType::kModel: return SecurableType::kModel;
        case LineageNodeType::kAgent: return SecurableType::kAgent;
        default: return std::nullopt;
    }
}

bool has_control(std::string_view text) {
    for (char c : text) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
            return true;
        }
    }
    return false;
}

Status validate_node(const LineageNode& node) {
    const std::string what = std::string(lineage_node_type_name(node.type)) + " node";
    if (auto securable = securable_of(node.type)) {
        return split_full_name(*securable, node.name).status().with_context(what);
    }
    switch (node.type) {
        case LineageNodeType::kChunk: {
            auto slash = node.name.find('/');
            if (slash == std::string::npos || slash + 1 == node.name.size()) {
                return invalid_argument("chunk node '" + node.name +
                                        "' must be named '<vector index>/<chunk key>'");
            }
            SLUICE_RETURN_IF_ERROR(
                split_full_name(SecurableType::kVectorIndex, node.name.substr(0, slash))
                    .status()
                    .with_context(what));
            if (node.name.size() > 2048 || has_control(node.name)) {
                return invalid_argument("chunk key must be 1-2048 printable characters");
            }
            return Status();
        }
        case LineageNodeType::kSource:
            if (node.name.empty() || node.name.size() > 2048 || has_control(node.name)) {
                return invalid_argument("source node must be named by 1-2048 printable "
                                        "characters");
            }
            if (node.governed_by) {
                return split_full_name(node.governed_by->first, node.governed_by->second)
                    .status()
                    .with_context("securable governing source '" + node.name + "'");
            }
            return Status();
        case LineageNodeType::kAnswer:
            if (node.name.empty() || node.name.size() > 128) {
                return invalid_argument("answer node must be named by a request id of 1-128 "
                                        "characters");
            }
            for (char c : node.name) {
                bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                          (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' || c == '-';
                if (!ok) {
                    return invalid_argument("answer node '" + node.name +
                                            "' is not a request id ([A-Za-z0-9._:-])");
                }
            }
            return Status();
        default: return Status();
    }
}

}  // namespace

struct Lineage::StoredNode {
    std::int64_t id = 0;
    LineageNode node;
    std::int64_t owner_id = 0;
};

std::string_view lineage_node_type_name(LineageNodeType type) {
    for (const auto& [t, name] : kNodeTypes) {
        if (t == type) {
            return name;
        }
    }
    return "source";
}

Result<LineageNodeType> parse_lineage_node_type(std::string_view text) {
    for (const auto& [t, name] : kNodeTypes) {
        if (text == name) {
            return t;
        }
    }
    return invalid_argument("unknown lineage node type '" + std::string(text) +
                            "'; known: source, table, volume, vector_index, chunk, function, "
                            "model, agent, answer");
}

Result<LineageNode> parse_lineage_node(std::string_view text) {
    auto colon = text.find(':');
    if (colon == std::string_view::npos) {
        return invalid_argument("lineage node must be written type:name, e.g. "
                                "table:main.sales.orders; found '" +
                                std::string(text) + "'");
    }
    SLUICE_ASSIGN_OR_RETURN(LineageNodeType type, parse_lineage_node_type(text.substr(0, colon)));
    LineageNode node{type, std::string(text.substr(colon + 1))};
    SLUICE_RETURN_IF_ERROR(validate_node(node));
    return node;
}

std::string lineage_node_label(const LineageNode& node) {
    return std::string(lineage_node_type_name(node.type)) + ":" + node.name;
}

Lineage::Lineage(std::unique_ptr<detail::Database> db, Authorizer& authorizer, AuditSink& audit)
    : authorizer_(authorizer), audit_(audit), db_(std::move(db)) {}

Lineage::~Lineage() = default;

Result<std::unique_ptr<Lineage>> Lineage::open(const std::filesystem::path& db_path,
                                               Authorizer& authorizer, AuditSink& audit) {
    SLUICE_ASSIGN_OR_RETURN(auto db, detail::Database::open(db_path.string()));
    return std::make_unique<Lineage>(std::move(db), authorizer, audit);
}

Result<std::int64_t> Lineage::node_id_locked(const RequestContext& context,
                                             const LineageNode& node) {
    SLUICE_ASSIGN_OR_RETURN(
        auto* insert,
        db_->cached("INSERT INTO lineage_nodes (type, name, governed_type, governed_name, "
                    "owner_id, first_seen_ms) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (type, name) "
                    "DO UPDATE SET governed_type = excluded.governed_type, governed_name = "
                    "excluded.governed_name WHERE governed_type = '' AND excluded.governed_type "
                    "<> ''"));
    std::string governed_type;
    std::string governed_name;
    if (node.governed_by) {
        governed_type = securable_type_name(node.governed_by->first);
        governed_name = node.governed_by->second;
    }
    std::int64_t owner = node.type == LineageNodeType::kAnswer ? context.principal_id : 0;
    SLUICE_RETURN_IF_ERROR(insert->bind(1, lineage_node_type_name(node.type))
                               .bind(2, node.name)
                               .bind(3, governed_type)
                               .bind(4, governed_name)
                               .bind(5, owner)
                               .bind(6, now_ms())
                               .run());
    SLUICE_ASSIGN_OR_RETURN(auto* select,
                            db_->cached("SELECT id FROM lineage_nodes WHERE type = ? AND name = ?"));
    select->bind(1, lineage_node_type_name(node.type)).bind(2, node.name);
    SLUICE_ASSIGN_OR_RETURN(bool row, select->step());
    if (!row) {
        return internal_error("lineage node " + lineage_node_label(node) +
                              " vanished after it was written");
    }
    std::int64_t id = select->column_int(0);
    select->reset();
    return id;
}

Status Lineage::record(const RequestContext& context, const std::vector<LineageEdge>& edges) {
    for (const LineageEdge& edge : edges) {
        SLUICE_RETURN_IF_ERROR(validate_node(edge.source));
        SLUICE_RETURN_IF_ERROR(validate_node(edge.target));
        if (edge.source.type == edge.target.type && edge.source.name == edge.target.name) {
            return invalid_argument("lineage edge from " + lineage_node_label(edge.source) +
                                    " to itself");
        }
    }
    std::lock_guard lock(mutex_);
    SLUICE_ASSIGN_OR_RETURN(auto transaction, detail::Transaction::begin(*db_));
    SLUICE_ASSIGN_OR_RETURN(
        auto* upsert,
        db_->cached("INSERT INTO lineage_edges (source_id, target_id, first_seen_ms, "
                    "last_seen_ms, last_request_id, times) VALUES (?, ?, ?, ?, ?, 1) ON "
                    "CONFLICT (source_id, target_id) DO UPDATE SET last_seen_ms = "
                    "excluded.last_seen_ms, last_request_id = excluded.last_request_id, times = "
                    "times + 1"));
    const std::int64_t now = now_ms();
    for (const LineageEdge& edge : edges) {
        SLUICE_ASSIGN_OR_RETURN(std::int64_t source, node_id_locked(context, edge.source));
        SLUICE_ASSIGN_OR_RETURN(std::int64_t target, node_id_locked(context, edge.target));
        upsert->reset();
        SLUICE_RETURN_IF_ERROR(upsert->bind(1, source)
                                   .bind(2, target)
                                   .bind(3, now)
                                   .bind(4, now)
                                   .bind(5, context.request_id)
                                   .run());
    }
    return transaction->commit();
}

Result<bool> Lineage::visible(const RequestContext& context, bool admin, const StoredNode& stored) {
    if (admin) {
        return true;
    }
    const LineageNode& node = stored.node;
    std::optional<std::pair<SecurableType, std::string>> governing;
    if (auto securable = securable_of(node.type)) {
        governing.emplace(*securable, node.name);
    } else if (node.type == LineageNodeType::kChunk) {
        governing.emplace(SecurableType::kVectorIndex, node.name.substr(0, node.name.find('/')));
    } else if (node.type == LineageNodeType::kSource) {
        governing = node.governed_by;
    } else if (node.type == LineageNodeType::kAnswer) {
        return stored.owner_id == context.principal_id;
    }
    if (!governing) {
        return false;
    }
    Result<Decision> decision = authorizer_.check(context.principal_id, Privilege::kBrowse,
                                                  governing->first, governing->second);
    if (!decision.ok()) {
        if (decision.status().code() == StatusCode::kNotFound) {
            return false;  // the object was dropped: its lineage is for admins
        }
        return decision.status();
    }
    return decision->allowed;
}

namespace {

Result<std::optional<std::pair<std::int64_t, LineageNode>>> load_node(detail::Database& db,
                                                                      std::int64_t id,
                                                                      std::int64_t* owner) {
    SLUICE_ASSIGN_OR_RETURN(auto* select,
                            db.cached("SELECT type, name, governed_type, governed_name, owner_id "
                                      "FROM lineage_nodes WHERE id = ?"));
    select->bind(1, id);
    SLUICE_ASSIGN_OR_RETURN(bool row, select->step());
    if (!row) {
        return std::optional<std::pair<std::int64_t, LineageNode>>();
    }
    LineageNode node;
    SLUICE_ASSIGN_OR_RETURN(node.type, parse_lineage_node_type(select->column_text(0)));
    node.name = select->column_text(1);
    std::string governed_type = select->column_text(2);
    if (!governed_type.empty()) {
        SLUICE_ASSIGN_OR_RETURN(SecurableType type, parse_securable_type(governed_type));
        node.governed_by.emplace(type, select->column_text(3));
    }
    *owner = select->column_int(4);
    select->reset();
    return std::optional(std::pair{id, std::move(node)});
}

}  // namespace

Result<LineageGraph> Lineage::traverse(const RequestContext& context, const LineageNode& root,
                                       LineageDirection direction, int depth) {
    if (depth < 1 || depth > kLineageMaxDepth) {
        return invalid_argument("lineage depth must be 1-" + std::to_string(kLineageMaxDepth) +
                                ", found " + std::to_string(depth));
    }
    SLUICE_RETURN_IF_ERROR(validate_node(root));
    SLUICE_ASSIGN_OR_RETURN(bool admin, authorizer_.is_admin(context.principal_id));
    bool found = false;
    StoredNode stored{0, root, 0};
    {
        std::lock_guard lock(mutex_);
        SLUICE_ASSIGN_OR_RETURN(
            auto* find, db_->cached("SELECT id FROM lineage_nodes WHERE type = ? AND name = ?"));
        find->bind(1, lineage_node_type_name(root.type)).bind(2, root.name);
        SLUICE_ASSIGN_OR_RETURN(found, find->step());
        stored.id = found ? find->column_int(0) : 0;
        find->reset();
        if (found) {
            SLUICE_ASSIGN_OR_RETURN(auto loaded, load_node(*db_, stored.id, &stored.owner_id));
            if (loaded) {
                stored.node = loaded->second;
            }
        }
    }
    const std::int64_t root_id = stored.id;
    SLUICE_ASSIGN_OR_RETURN(bool root_visible, visible(context, admin, stored));
    // Audited outside the lock: a commit may wait for others, and reads need not wait for it.
    AuditEvent event = audit_event_for(context);
    event.action = direction == LineageDirection::kUpstream ? "lineage.upstream"
                                                            : "lineage.downstream";
    event.securable = "lineage:" + lineage_node_label(root);
    event.result = root_visible ? "allow" : "deny";
    event.decided_by = root_visible ? "the caller may see the node"
                                    : "the caller may not see the node";
    Status audited = audit_.append(std::move(event));
    if (!audited.ok()) {
        return unavailable("lineage read could not be audited: " + audited.message());
    }
    if (!root_visible) {
        return Status(StatusCode::kPermissionDenied,
                      "'" + context.principal + "' may not see lineage node " +
                          lineage_node_label(root));
    }
    if (!found) {
        return not_found("no lineage is recorded for " + lineage_node_label(root));
    }

    std::lock_guard lock(mutex_);
    LineageGraph graph;
    std::map<std::int64_t, int> index_of;  // stored id → graph node id
    graph.nodes.push_back(LineageGraphNode{0, false, stored.node, 0});
    index_of[root_id] = 0;
    std::deque<std::int64_t> queue{root_id};
    const bool up = direction == LineageDirection::kUpstream;
    SLUICE_ASSIGN_OR_RETURN(
        auto* neighbours,
        db_->cached(up ? "SELECT source_id, first_seen_ms, last_seen_ms, times, last_request_id "
                         "FROM lineage_edges WHERE target_id = ? ORDER BY source_id"
                       : "SELECT target_id, first_seen_ms, last_seen_ms, times, last_request_id "
                         "FROM lineage_edges WHERE source_id = ? ORDER BY target_id"));
    while (!queue.empty()) {
        std::int64_t at = queue.front();
        queue.pop_front();
        const int at_index = index_of.at(at);
        const int distance = graph.nodes[static_cast<std::size_t>(at_index)].distance;
        if (distance >= depth) {
            continue;
        }
        struct Next {
            std::int64_t id;
            LineageGraphEdge edge;
        };
        std::vector<Next> next;
        neighbours->reset();
        neighbours->bind(1, at);
        while (true) {
            SLUICE_ASSIGN_OR_RETURN(bool row, neighbours->step());
            if (!row) {
                break;
            }
            LineageGraphEdge edge;
            edge.first_seen_ms = neighbours->column_int(1);
            edge.last_seen_ms = neighbours->column_int(2);
            edge.times = neighbours->column_int(3);
            edge.last_request_id = neighbours->column_text(4);
            next.push_back(Next{neighbours->column_int(0), std::move(edge)});
        }
        neighbours->reset();
        for (Next& n : next) {
            auto known = index_of.find(n.id);
            int other = 0;
            if (known != index_of.end()) {
                other = known->second;
            } else {
                if (static_cast<int>(graph.nodes.size()) >= kLineageMaxNodes) {
                    graph.truncated = true;
                    continue;
                }
                StoredNode neighbour{n.id, {}, 0};
                SLUICE_ASSIGN_OR_RETURN(auto loaded, load_node(*db_, n.id, &neighbour.owner_id));
                if (!loaded) {
                    continue;
                }
                neighbour.node = loaded->second;
                SLUICE_ASSIGN_OR_RETURN(bool shown, visible(context, admin, neighbour));
                other = static_cast<int>(graph.nodes.size());
                LineageGraphNode entry{other, !shown, shown ? neighbour.node : LineageNode{},
                                       distance + 1};
                if (!shown) {
                    entry.node.type = LineageNodeType::kSource;
                    ++graph.hidden;
                }
                graph.nodes.push_back(std::move(entry));
                index_of[n.id] = other;
                queue.push_back(n.id);
            }
            n.edge.source = up ? other : at_index;
            n.edge.target = up ? at_index : other;
            if (graph.nodes[static_cast<std::size_t>(other)].hidden ||
                graph.nodes[static_cast<std::size_t>(at_index)].hidden) {
                n.edge.last_request_id.clear();
            }
            graph.edges.push_back(std::move(n.edge));
        }
    }
    return graph;
}

}  // namespace sluice::governance
