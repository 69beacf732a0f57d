#include "agents/evaluation/targets.h"

#include "common/log.h"

namespace sluice::agents::evaluation {

Target qa_target(std::shared_ptr<const retrieval::Index> index, retrieval::Reader reader,
                 std::shared_ptr<ChatModel> model, QaOptions options, TraceStore* traces,
                 governance::RequestContext caller) {
    return [index = std::move(index), reader = std::move(reader), model = std::move(model),
            options = std::move(options), traces,
            caller = std::move(caller)](const EvalRow& row) -> Result<TargetOutput> {
        Trace trace(caller.principal, caller.request_id);
        auto answer = answer_question(row.request, *index, reader, *model, options, &trace, "", {});
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

Target agent_target(AgentRuntime& runtime, std::string agent, governance::RequestContext caller) {
    return [&runtime, agent = std::move(agent),
            caller = std::move(caller)](const EvalRow& row) -> Result<TargetOutput> {
        SLUICE_ASSIGN_OR_RETURN(InvokeResult result,
                                runtime.invoke(caller, agent, {{"user", row.request, {}, {}}}, {}));
        TargetOutput out;
        out.response = result.run.answer;
        out.trace_id = result.trace_id;
        out.prompt_tokens = result.run.prompt_tokens;
        out.completion_tokens = result.run.completion_tokens;
        return out;
    };
}

}  // namespace sluice::agents::evaluation
