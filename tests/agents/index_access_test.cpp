// Vector indexes as catalog securables: names, and SELECT required (and audited) on every path of
// agents/ that reads an index — the vector_search tool and the evaluation QA target — with the
// very next call seeing a grant or a revoke.

#include <sstream>

#include "agents/evaluation/targets.h"
#include "agents/index_access.h"
#include "agents/retrieval_tool.h"
#include "agents/scripted_chat_model.h"
#include "agents_fixture.h"
#include "doctest/doctest.h"
#include "governance/audit_log.h"
#include "retrieval/index_manager.h"

namespace sluice::agents {
namespace {

using governance::Privilege;
using governance::SecurableType;
using nlohmann::json;
using testing::World;

// An index "main.tools.docs" (a catalog securable owned by the world's owner) holding one
// document that alice's and bob's access lists both admit, so that only SELECT tells them apart.
struct IndexWorld {
    World world;
    std::unique_ptr<retrieval::IndexManager> indexes;

    IndexWorld() {
        auto opened = retrieval::IndexManager::open(world.dir.path / "indexes", {});
        REQUIRE(opened.ok());
        indexes = std::move(*opened);
        retrieval::IndexSettings settings;
        settings.name = "main.tools.docs";
        settings.dimension = 256;
        settings.factory = "Flat";
        auto index = indexes->create(settings);
        REQUIRE(index.ok());
        retrieval::Document d;
        d.key = "holidays";
        d.uri = "file:///holidays.md";
        d.title = "Holidays";
        d.text = "Employees receive twenty five days of paid holiday.";
        d.acl.principals = {"alice", "bob"};
        REQUIRE((*index)->upsert({d}).ok());
        REQUIRE(world.gov->store()
                    .create_securable(SecurableType::kVectorIndex, "main.tools.docs",
                                      world.owner.id, "", {})
                    .ok());
    }

    void set_select(const std::string& who, bool granted) {
        auto securable = world.gov->store().securable(SecurableType::kVectorIndex, "main.tools.docs");
        REQUIRE(securable.ok());
        governance::PermissionChange change{who, {}, {}};
        (granted ? change.add : change.remove).push_back(Privilege::kSelect);
        REQUIRE(world.gov->store()
                    .update_permissions(securable->id, SecurableType::kVectorIndex, {change},
                                        world.owner.id)
                    .ok());
    }

    // The audit records of SELECT decisions on the index, as "principal:result".
    std::vector<std::string> select_decisions() {
        std::ostringstream out;
        REQUIRE(governance::export_audit_log(world.dir.path / "catalog.db", 0, 0, out).ok());
        std::vector<std::string> found;
        std::istringstream lines(out.str());
        for (std::string line; std::getline(lines, line);) {
            json record = json::parse(line);
            if (record["action"] == "authorize:SELECT" &&
                record["securable"] == "vector_index:main.tools.docs") {
                found.push_back(record["principal"].get<std::string>() + ":" +
                                record["result"].get<std::string>());
            }
        }
        return found;
    }

    ToolContext context_for(const governance::Principal& p) const {
        ToolContext context;
        context.request = world.as(p);
        context.reader = {p.name, {}};
        return context;
    }
};

}  // namespace

TEST_CASE("index names: three-level names are their own, plain names live in vector_search.default") {
    CHECK(*index_securable_name("main.kb.docs") == "main.kb.docs");
    CHECK(*index_securable_name("docs") == "vector_search.default.docs");
    CHECK(*index_securable_name("my_docs-2") == "vector_search.default.my_docs-2");
    CHECK(index_securable_name("a.b").status().code() == StatusCode::kInvalidArgument);
    CHECK(index_securable_name("a.b.c.d").status().code() == StatusCode::kInvalidArgument);
    CHECK(index_securable_name("-x").status().code() == StatusCode::kInvalidArgument);

    testing::TempDir dir("names");
    auto indexes = retrieval::IndexManager::open(dir.path / "indexes", {});
    REQUIRE(indexes.ok());
    retrieval::IndexSettings settings;
    settings.name = "docs";
    settings.dimension = 16;
    settings.factory = "Flat";
    REQUIRE((*indexes)->create(settings).ok());
    // A plain-named index answers to both of its names.
    auto by_stored = find_index(**indexes, "docs");
    auto by_catalog = find_index(**indexes, "vector_search.default.docs");
    REQUIRE(by_stored.ok());
    REQUIRE(by_catalog.ok());
    CHECK(by_stored->securable == "vector_search.default.docs");
    CHECK(by_catalog->index == by_stored->index);
    CHECK(find_index(**indexes, "other.default.docs").status().code() == StatusCode::kNotFound);
    CHECK(*securable_for(**indexes, "main.kb.none") == "main.kb.none");
}

TEST_CASE("open_index: SELECT decides, every decision is audited, a revoke holds at once") {
    IndexWorld w;
    auto& authorizer = w.world.gov->authorizer();
    auto denied = open_index(authorizer, w.world.as(w.world.bob), Privilege::kSelect, *w.indexes,
                             "main.tools.docs");
    CHECK(denied.status().code() == StatusCode::kPermissionDenied);
    CHECK(denied.status().message().find("SELECT") != std::string::npos);
    // A name the catalog does not know is a 404, audited as a deny too.
    auto unknown = open_index(authorizer, w.world.as(w.world.bob), Privilege::kSelect, *w.indexes,
                              "main.tools.nope");
    CHECK(unknown.status().code() == StatusCode::kNotFound);

    w.set_select("bob", true);
    auto allowed = open_index(authorizer, w.world.as(w.world.bob), Privilege::kSelect, *w.indexes,
                              "main.tools.docs");
    REQUIRE(allowed.ok());
    CHECK(allowed->securable == "main.tools.docs");
    // SELECT does not let bob write.
    CHECK(open_index(authorizer, w.world.as(w.world.bob), Privilege::kModify, *w.indexes,
                     "main.tools.docs")
              .status()
              .code() == StatusCode::kPermissionDenied);
    w.set_select("bob", false);
    CHECK(open_index(authorizer, w.world.as(w.world.bob), Privilege::kSelect, *w.indexes,
                     "main.tools.docs")
              .status()
              .code() == StatusCode::kPermissionDenied);
    CHECK(w.select_decisions() ==
          std::vector<std::string>{"bob:deny", "bob:allow", "bob:deny"});
}

TEST_CASE("vector_search refuses an index its caller cannot SELECT, whatever the access lists say") {
    IndexWorld w;
    VectorSearchTool tool("main.tools.search", "", *w.indexes, "main.tools.docs",
                          w.world.gov->authorizer());
    json arguments = {{"query", "holiday days"}};

    // bob's access list admits the document, but he lacks SELECT on the index.
    auto refused = tool.invoke(w.context_for(w.world.bob), arguments);
    CHECK(refused.status().code() == StatusCode::kPermissionDenied);

    w.set_select("alice", true);
    auto found = tool.invoke(w.context_for(w.world.alice), arguments);
    REQUIRE_MESSAGE(found.ok(), found.status().to_string());
    REQUIRE((*found)["hits"].size() == 1);
    CHECK((*found)["hits"][0]["uri"] == "file:///holidays.md");

    w.set_select("alice", false);
    CHECK(tool.invoke(w.context_for(w.world.alice), arguments).status().code() ==
          StatusCode::kPermissionDenied);
    CHECK(w.select_decisions() ==
          std::vector<std::string>{"bob:deny", "alice:allow", "alice:deny"});
}

TEST_CASE("the evaluation QA target needs SELECT on its index for every row") {
    IndexWorld w;
    auto model = ScriptedChatModel::make(json::array({{{"content", "Twenty five."}}}), true);
    REQUIRE(model.ok());
    std::shared_ptr<ChatModel> shared = std::move(*model);
    evaluation::EvalRow row;
    row.request = "How many holiday days?";
    auto target = [&](const governance::Principal& p) {
        return evaluation::qa_target(w.world.gov->authorizer(), *w.indexes, "main.tools.docs",
                                     {p.name, {}}, shared, QaOptions{}, nullptr, w.world.as(p));
    };
    CHECK(target(w.world.bob)(row).status().code() == StatusCode::kPermissionDenied);
    w.set_select("bob", true);
    auto answered = target(w.world.bob)(row);
    REQUIRE_MESSAGE(answered.ok(), answered.status().to_string());
    REQUIRE(answered->retrieved_context.size() == 1);
    CHECK(answered->retrieved_context[0].doc_uri == "file:///holidays.md");
    CHECK(w.select_decisions() == std::vector<std::string>{"bob:deny", "bob:allow"});
}

}  // namespace sluice::agents
