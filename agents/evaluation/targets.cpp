#include "agents/evaluation/targets.h"

#include "agents/index_access.h"
#include "common/log.h"

namespace sluice::agents::evaluation {

Target qa_target(governance::Authorizer& authorizer, const retrieval::IndexManager& indexes,
                 std::string index, retrieval::Reader reader, std::shared_ptr<ChatModel> model,
                 QaOptions options, TraceStore* traces, governance::RequestContext caller) {
    return [&authorizer, &indexes, index = std::move(index), reader = std::move(reader),
            model = std::move(model), options = std::move(options), traces,
            caller = std::move(caller)](const EvalRow& row) -> Result<TargetOutput> {
        // Per row, as the agent runtime checks EXECUTE per row: a revoke stops the run's next row.
        SLUICE_ASSIGN_OR_RETURN(IndexRef opened,
                                open_index(authorizer, caller, governance::Privilege::kSelect,
                                           indexes, index));
        Trace trace(caller.principal, caller.request_id);
        auto answer =
            answer_question(row.request, *opened.index, reader, *model, options, &trace, "", {});
        if (traces != nullptr) {
            if (Status saved = traces->save(trace.record()); !saved.ok()) {
                log::error("eval", "cannot store a trace",
                           {{"trace_id", trace.id()}, {"error", saved.message()}});
            }
        }
        if (!answer.ok()) {
            return answer.status();
        }
        TargetOutput out;
        out.response = answer->answer;
        out.has_context = true;
        for (const auto& citation : answer->citations) {
            out.retrieved_context.push_back({citation.uri, citation.text});
        }
        out.trace_id = trace.id();
        out.prompt_tokens = answer->prompt_tokens;
        out.completion_tokens = answer->completion_tokens;
        return out;
    };
}

std::optional<std::vector<ContextChunk>> searched_context(const TraceRecord& trace) {
    std::optional<std::vector<ContextChunk>> out;
    for (const Span& span : trace.spans) {
        if (span.kind != SpanKind::kTool || !span.error.empty()) {
            continue;
        }
        auto result = span.outputs.find("result");
        if (result == span.outputs.end() || !result->is_object()) {
            continue;
        }
        auto hits = result->find("hits");
        if (hits == result->end() || !hits->is_array()) {
            continue;
        }
        if (!out) {
            out.emplace();
        }
        for (const auto& hit : *hits) {
            if (hit.is_object() && hit.contains("uri") && hit["uri"].is_string() &&
                hit.contains("text") && hit["text"].is_string()) {
                out->push_back({hit["uri"].get<std::string>(), hit["text"].get<std::string>()});
            }
        }
    }
    return out;
}

Target agent_target(AgentRuntime& runtime, TraceStore& traces, std::string agent,
                    governance::RequestContext caller) {
    return [&runtime, &traces, agent = std::move(agent),
            caller = std::move(caller)](const EvalRow& row) -> Result<TargetOutput> {
        SLUICE_ASSIGN_OR_RETURN(InvokeResult result,
                                runtime.invoke(caller, agent, {{"user", row.request, {}, {}}}, {}));
        TargetOutput out;
        out.response = result.run.answer;
        out.trace_id = result.trace_id;
        out.prompt_tokens = result.run.prompt_tokens;
        out.completion_tokens = result.run.completion_tokens;
        if (result.run.tool_calls > 0) {
            auto trace = traces.get(result.trace_id);
            if (!trace.ok()) {
                // The answer stands; only the context-based judges lose their input.
                log::error("eval", "cannot read an agent run's trace",
                           {{"trace_id", result.trace_id}, {"error", trace.status().message()}});
            } else if (auto context = searched_context(*trace)) {
                out.has_context = true;
                out.retrieved_context = std::move(*context);
            }
        }
        return out;
    };
}

}  // namespace sluice::agents::evaluation
