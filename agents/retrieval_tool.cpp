#include "agents/retrieval_tool.h"

#include "agents/index_access.h"

namespace sluice::agents {

using nlohmann::json;

VectorSearchTool::VectorSearchTool(std::string function_name, std::string description,
                                   const retrieval::IndexManager& indexes, std::string index,
                                   governance::Authorizer& authorizer, int max_k)
    : Tool(std::move(function_name), std::move(description),
           json({{"type", "object"},
                 {"properties",
                  {{"query", {{"type", "string"}, {"minLength", 1}}},
                   {"k", {{"type", "integer"}, {"minimum", 1}, {"maximum", max_k}}}}},
                 {"required", {"query"}},
                 {"additionalProperties", false}})),
      indexes_(indexes),
      index_name_(std::move(index)),
      authorizer_(authorizer) {}

Result<json> VectorSearchTool::invoke(const ToolContext& context, const json& arguments) {
    retrieval::Query query;
    query.text = arguments.at("query").get<std::string>();
    // Checked here, not in the schema (see http_tools.cpp on bounds in generation grammars).
    if (query.text.size() > 4096) {
        return invalid_argument("query: " + std::to_string(query.text.size()) +
                                " bytes, at most 4096");
    }
    query.k = static_cast<size_t>(arguments.value("k", 5));
    SpanScope span(context.trace, SpanKind::kRetriever, "vector_search", context.parent_span,
                   {{"query", query.text}, {"k", query.k}, {"index", index_name_}});
    auto opened = open_index(authorizer_, context.request, governance::Privilege::kSelect,
                             indexes_, index_name_);
    if (!opened.ok()) {
        span.fail(opened.status().message());
        return opened.status();
    }
    const retrieval::Index& index = *opened->index;
    // Hybrid needs vectors; an index without an embedder answers lexically.
    query.mode = index.settings().embedder == "none" ? retrieval::QueryMode::kLexical
                                                     : retrieval::QueryMode::kHybrid;
    auto hits = index.query(query, context.reader);
    if (!hits.ok()) {
        span.fail(hits.status().message());
        return hits.status();
    }
    json out = json::array();
    for (const retrieval::Hit& hit : *hits) {
        out.push_back({{"uri", hit.chunk.uri},
                       {"title", hit.chunk.title},
                       {"text", hit.chunk.text},
                       {"score", hit.score},
                       {"char_begin", hit.chunk.char_begin},
                       {"char_end", hit.chunk.char_end}});
    }
    span.set_outputs({{"hits", out.size()}});
    return json{{"hits", out}};
}

}  // namespace sluice::agents
