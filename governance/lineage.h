#pragma once
// Lineage: where data came from and where it went. Edges between typed nodes —
//   source → table / volume → vector index → chunk → answer
//   table → function (a tool that read it) → answer
// — recorded by the modules that move the data (sync, retrieval, tools, the planner) and read
// upstream or downstream, transitively, to a depth limit.
//
// Nodes and their names:
//   source        where a connector reads: a URI or path ("file:///docs", "postgres://db/t")
//   table, volume, vector_index, function, model, agent   a catalog full name "main.sales.orders"
//   chunk         "<vector index full name>/<chunk key>"  ("main.docs.idx/8c1f...")
//   answer        a request id ("req_...")
//
// Who sees a node (reading is authorised; hidden nodes are elided, never named):
//   catalog objects: BROWSE on the object;   chunk: BROWSE on its vector index;
//   source: BROWSE on the securable that governs it (its connection, or the table, volume or
//           index it feeds, given when recorded); a source with none: metastore admins only;
//   answer: the principal whose request it was, and metastore admins.
// The node a query starts from must be visible to the caller (kPermissionDenied otherwise;
// audited either way). Nodes reached through it that the caller may not see appear as
// placeholders without type or name, so that the shape of the graph stays true.
//
// Stored in catalog.db (lineage_nodes, lineage_edges); an edge recorded again updates its last
// time and request and counts how often it was seen.
//
// Thread safety: thread-safe.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "governance/audit_sink.h"
#include "governance/authorizer.h"
#include "governance/request_context.h"
#include "governance/types.h"

namespace sluice::governance {

namespace detail {
class Database;
}

enum class LineageNodeType : std::uint8_t {
    kSource,
    kTable,
    kVolume,
    kVectorIndex,
    kChunk,
    kFunction,
    kModel,
    kAgent,
    kAnswer,
};
// "source", "table", "volume", "vector_index", "chunk", "function", "model", "agent", "answer".
std::string_view lineage_node_type_name(LineageNodeType type);
Result<LineageNodeType> parse_lineage_node_type(std::string_view text);

struct LineageNode {
    LineageNodeType type = LineageNodeType::kTable;
    std::string name;
    // Sources only: the securable whose BROWSE shows this source.
    std::optional<std::pair<SecurableType, std::string>> governed_by{};
};

// "table:main.sales.orders" → {kTable, "main.sales.orders"}; the text before the first ':' is
// the type. kInvalidArgument for an unknown type or a bad name.
Result<LineageNode> parse_lineage_node(std::string_view text);
std::string lineage_node_label(const LineageNode& node);  // the inverse

struct LineageEdge {
    LineageNode source;
    LineageNode target;
};

enum class LineageDirection : std::uint8_t { kUpstream, kDownstream };

struct LineageGraphNode {
    int id = 0;  // index in LineageGraph::nodes
    bool hidden = false;
    LineageNode node;  // empty name and kSource type when hidden
    int distance = 0;  // edges from the root
};

struct LineageGraphEdge {
    int source = 0;  // node ids
    int target = 0;
    std::int64_t first_seen_ms = 0;
    std::int64_t last_seen_ms = 0;
    std::int64_t times = 0;
    std::string last_request_id;  // empty when either end is hidden
};

struct LineageGraph {
    int root = 0;
    std::vector<LineageGraphNode> nodes;
    std::vector<LineageGraphEdge> edges;
    bool truncated = false;  // the node limit was reached before the depth limit
    int hidden = 0;
};

inline constexpr int kLineageMaxDepth = 20;
inline constexpr int kLineageMaxNodes = 10'000;

class Lineage {
public:
    static Result<std::unique_ptr<Lineage>> open(const std::filesystem::path& db_path,
                                                 Authorizer& authorizer, AuditSink& audit);
    ~Lineage();

    // Records the edges in one transaction. Answer nodes are owned by the context's principal
    // (the first to record them). kInvalidArgument for a bad node name (a chunk without its
    // index, a catalog name of the wrong depth).
    Status record(const RequestContext& context, const std::vector<LineageEdge>& edges);

    // The graph reachable from `root` against (upstream) or along (downstream) the edges, at
    // most `depth` edges away (1..kLineageMaxDepth). kPermissionDenied when the caller may not
    // see the root; kNotFound when the root has no lineage; kInvalidArgument for a bad depth.
    Result<LineageGraph> traverse(const RequestContext& context, const LineageNode& root,
                                  LineageDirection direction, int depth);

    Lineage(std::unique_ptr<detail::Database> db, Authorizer& authorizer, AuditSink& audit);

private:
    struct StoredNode;
    Result<bool> visible(const RequestContext& context, bool admin, const StoredNode& node);
    Result<std::int64_t> node_id_locked(const RequestContext& context, const LineageNode& node);

    Authorizer& authorizer_;
    AuditSink& audit_;
    std::mutex mutex_;
    std::unique_ptr<detail::Database> db_;  // guarded by mutex_
};

}  // namespace sluice::governance
