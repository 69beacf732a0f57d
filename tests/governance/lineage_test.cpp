#include "governance/lineage.h"

#include <doctest/doctest.h>

#include "governance/governance.h"
#include "test_dir.h"

using namespace sluice::governance;
using sluice::StatusCode;
using sluice::testing::TempDir;

namespace {

LineageNode node(const std::string& label) {
    auto parsed = parse_lineage_node(label);
    REQUIRE_MESSAGE(parsed.ok(), label);
    return *parsed;
}

// source → orders (table) → docs index → two chunks → answer; secret table → tool → answer.
struct Graph {
    TempDir dir{"lineage"};
    std::unique_ptr<Governance> gov;
    Principal admin, owner, alice, bob;

    Graph() {
        auto opened = Governance::open(dir.path);
        REQUIRE(opened.ok());
        gov = std::move(*opened);
        Store& s = gov->store();
        admin = *s.create_principal("root", PrincipalKind::kUser, true);
        owner = *s.create_principal("owner", PrincipalKind::kUser, false);
        alice = *s.create_principal("alice", PrincipalKind::kUser, false);
        bob = *s.create_principal("bob", PrincipalKind::kUser, false);
        REQUIRE(s.create_securable(SecurableType::kCatalog, "main", owner.id, "", {}).ok());
        REQUIRE(s.create_securable(SecurableType::kSchema, "main.sales", owner.id, "", {}).ok());
        for (const char* table : {"main.sales.orders", "main.sales.secret"}) {
            REQUIRE(s.create_securable(SecurableType::kTable, table, owner.id, "", {}).ok());
        }
        REQUIRE(s.create_securable(SecurableType::kVectorIndex, "main.sales.docs", owner.id, "",
                                   {})
                    .ok());
        REQUIRE(s.create_securable(SecurableType::kFunction, "main.sales.lookup", owner.id, "",
                                   {})
                    .ok());
        // alice may browse everything but the secret table.
        auto sales = s.securable(SecurableType::kSchema, "main.sales");
        for (const char* name : {"main.sales.orders", "main.sales.docs", "main.sales.lookup"}) {
            auto type = std::string(name) == "main.sales.orders" ? SecurableType::kTable
                        : std::string(name) == "main.sales.docs" ? SecurableType::kVectorIndex
                                                                 : SecurableType::kFunction;
            auto target = s.securable(type, name);
            REQUIRE(s.update_permissions(target->id, type, {{"alice", {Privilege::kBrowse}, {}}},
                                         owner.id)
                        .ok());
        }
        LineageNode source = node("source:postgres://crm/orders");
        source.governed_by.emplace(SecurableType::kTable, "main.sales.orders");
        RequestContext sync{owner.id, "owner", "req_sync", "", ""};
        REQUIRE(gov->lineage()
                    .record(sync, {{source, node("table:main.sales.orders")},
                                   {node("table:main.sales.orders"),
                                    node("vector_index:main.sales.docs")},
                                   {node("vector_index:main.sales.docs"),
                                    node("chunk:main.sales.docs/c1")},
                                   {node("vector_index:main.sales.docs"),
                                    node("chunk:main.sales.docs/c2")}})
                    .ok());
        RequestContext ask = as(alice, "req_answer");
        REQUIRE(gov->lineage()
                    .record(ask, {{node("chunk:main.sales.docs/c1"), node("answer:req_answer")},
                                  {node("chunk:main.sales.docs/c2"), node("answer:req_answer")},
                                  {node("table:main.sales.secret"),
                                   node("function:main.sales.lookup")},
                                  {node("function:main.sales.lookup"),
                                   node("answer:req_answer")}})
                    .ok());
    }

    RequestContext as(const Principal& p, std::string request = "req_read") {
        return RequestContext{p.id, p.name, std::move(request), "127.0.0.1", "tok"};
    }

    std::vector<std::string> labels(const LineageGraph& g) {
        std::vector<std::string> out;
        for (const auto& n : g.nodes) {
            out.push_back(n.hidden ? "hidden" : lineage_node_label(n.node));
        }
        std::sort(out.begin(), out.end());
        return out;
    }
};

}  // namespace

TEST_CASE("node labels parse and validate") {
    CHECK(node("table:main.sales.orders").type == LineageNodeType::kTable);
    CHECK(node("source:file:///srv/docs").name == "file:///srv/docs");
    CHECK(lineage_node_label(node("chunk:main.s.idx/abc")) == "chunk:main.s.idx/abc");
    CHECK_FALSE(parse_lineage_node("table:main.orders").ok());
    CHECK_FALSE(parse_lineage_node("chunk:main.s.idx").ok());
    CHECK_FALSE(parse_lineage_node("chunk:main.s/abc").ok());
    CHECK_FALSE(parse_lineage_node("answer:req 1").ok());
    CHECK_FALSE(parse_lineage_node("galaxy:x").ok());
    CHECK_FALSE(parse_lineage_node("no-type").ok());
}

TEST_CASE("an admin sees the whole upstream of an answer, to the depth asked") {
    Graph g;
    auto full = g.gov->lineage().traverse(g.as(g.admin), node("answer:req_answer"),
                                          LineageDirection::kUpstream, 10);
    REQUIRE(full.ok());
    CHECK(g.labels(*full) == std::vector<std::string>{
                                 "answer:req_answer", "chunk:main.sales.docs/c1",
                                 "chunk:main.sales.docs/c2", "function:main.sales.lookup",
                                 "source:postgres://crm/orders", "table:main.sales.orders",
                                 "table:main.sales.secret", "vector_index:main.sales.docs"});
    CHECK(full->edges.size() == 8);
    CHECK(full->hidden == 0);
    auto near = g.gov->lineage().traverse(g.as(g.admin), node("answer:req_answer"),
                                          LineageDirection::kUpstream, 1);
    REQUIRE(near.ok());
    CHECK(near->nodes.size() == 4);  // the answer, two chunks, the tool
    for (const auto& n : near->nodes) {
        CHECK(n.distance <= 1);
    }
    auto down = g.gov->lineage().traverse(g.as(g.admin), node("table:main.sales.orders"),
                                          LineageDirection::kDownstream, 5);
    REQUIRE(down.ok());
    CHECK(g.labels(*down) == std::vector<std::string>{
                                 "answer:req_answer", "chunk:main.sales.docs/c1",
                                 "chunk:main.sales.docs/c2", "table:main.sales.orders",
                                 "vector_index:main.sales.docs"});
    CHECK(g.gov->lineage()
              .traverse(g.as(g.admin), node("answer:req_answer"), LineageDirection::kUpstream, 0)
              .status()
              .code() == StatusCode::kInvalidArgument);
}

TEST_CASE("nodes the caller may not browse are elided, never named") {
    Graph g;
    auto seen = g.gov->lineage().traverse(g.as(g.alice), node("answer:req_answer"),
                                          LineageDirection::kUpstream, 10);
    REQUIRE(seen.ok());
    // The secret table is a placeholder; the governed source is visible through its table.
    CHECK(seen->hidden == 1);
    CHECK(g.labels(*seen) == std::vector<std::string>{
                                 "answer:req_answer", "chunk:main.sales.docs/c1",
                                 "chunk:main.sales.docs/c2", "function:main.sales.lookup",
                                 "hidden", "source:postgres://crm/orders",
                                 "table:main.sales.orders", "vector_index:main.sales.docs"});
    for (const auto& n : seen->nodes) {
        if (n.hidden) {
            CHECK(n.node.name.empty());
        }
        CHECK(n.node.name.find("secret") == std::string::npos);
    }
    CHECK(seen->edges.size() == 8);  // the shape stays true

    // Another user's answer is not shown, nor is a table they may not browse.
    auto other = g.gov->lineage().traverse(g.as(g.bob), node("answer:req_answer"),
                                           LineageDirection::kUpstream, 3);
    CHECK(other.status().code() == StatusCode::kPermissionDenied);
    auto secret = g.gov->lineage().traverse(g.as(g.alice), node("table:main.sales.secret"),
                                            LineageDirection::kDownstream, 3);
    CHECK(secret.status().code() == StatusCode::kPermissionDenied);
    // Visible but never recorded.
    auto none = g.gov->lineage().traverse(g.as(g.admin), node("table:main.sales.nothing"),
                                          LineageDirection::kUpstream, 3);
    CHECK(none.status().code() == StatusCode::kNotFound);
}

TEST_CASE("recording an edge again counts it; bad edges are refused whole") {
    Graph g;
    RequestContext ctx = g.as(g.owner, "req_again");
    REQUIRE(g.gov->lineage()
                .record(ctx, {{node("table:main.sales.orders"), node("vector_index:main.sales.docs")}})
                .ok());
    auto down = g.gov->lineage().traverse(g.as(g.admin), node("table:main.sales.orders"),
                                          LineageDirection::kDownstream, 1);
    REQUIRE(down.ok());
    REQUIRE(down->edges.size() == 1);
    CHECK(down->edges[0].times == 2);
    CHECK(down->edges[0].last_request_id == "req_again");
    LineageNode self = node("table:main.sales.orders");
    CHECK(g.gov->lineage().record(ctx, {{self, self}}).code() == StatusCode::kInvalidArgument);
    LineageNode bad{LineageNodeType::kChunk, "no-index"};
    CHECK(g.gov->lineage().record(ctx, {{self, bad}}).code() == StatusCode::kInvalidArgument);
}
