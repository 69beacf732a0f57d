#include "agents/trace.h"

#include "agents_fixture.h"
#include "doctest/doctest.h"

namespace sluice::agents {

using nlohmann::json;

TEST_CASE("traces keep their spans in catalog.db and export as OTLP/JSON") {
    testing::TempDir dir("trace");
    auto store = TraceStore::open(dir.path / "catalog.db");
    REQUIRE(store.ok());
    Trace trace("alice", "req_1");
    CHECK(trace.id().size() == 32);
    std::string root;
    {
        SpanScope agent(&trace, SpanKind::kAgent, "agent", "", {{"question", "q"}});
        root = agent.id();
        SpanScope llm(&trace, SpanKind::kLlm, "model", agent.id(), {});
        llm.add_tokens(12, 3);
        llm.set_outputs({{"text", "hi"}});
        SpanScope tool(&trace, SpanKind::kTool, "sql_query", agent.id(), {});
        tool.fail("permission denied");
    }
    REQUIRE((*store)->save(trace.record()).ok());
    auto back = (*store)->get(trace.id());
    REQUIRE(back.ok());
    REQUIRE(back->spans.size() == 3);
    CHECK(back->principal == "alice");
    CHECK(back->spans[0].kind == SpanKind::kAgent);
    CHECK(back->spans[1].parent_id == root);
    CHECK(back->spans[1].prompt_tokens == 12);
    CHECK(back->spans[1].outputs["text"] == "hi");
    CHECK(back->spans[2].error == "permission denied");
    CHECK(back->spans[2].end_us >= back->spans[2].start_us);

    json otlp = trace_to_otlp(*back);
    const json& spans = otlp["resourceSpans"][0]["scopeSpans"][0]["spans"];
    REQUIRE(spans.size() == 3);
    CHECK(spans[0]["traceId"] == trace.id());
    CHECK_FALSE(spans[0].contains("parentSpanId"));
    CHECK(spans[1]["parentSpanId"] == root);
    CHECK(spans[2]["status"]["code"] == 2);
    CHECK(spans[1]["startTimeUnixNano"].is_string());

    CHECK((*store)->get("0123").status().code() == StatusCode::kInvalidArgument);
    CHECK((*store)->get(std::string(32, 'a')).status().code() == StatusCode::kNotFound);
    // Saving again replaces, never duplicates.
    REQUIRE((*store)->save(trace.record()).ok());
    CHECK((*store)->get(trace.id())->spans.size() == 3);
}

}  // namespace sluice::agents
