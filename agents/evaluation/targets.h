#pragma once
// What an evaluation run asks: the answerers a Target (evaluator.h) wraps.
//
//   qa_target      document QA over one index, retrieving as the caller: every row requires
//                  SELECT on the index (agents/index_access.h; audited, allow and deny) and
//                  reads only the chunks the reader's access lists admit; the retrieved
//                  context is the sources the model was shown (doc_uri = the source's URI)
//   agent_target   a catalog agent invoked as the caller (EXECUTE checked and audited by the
//                  runtime for every row); the retrieved context is every passage its search
//                  tools returned, read from the run's trace (the tool spans keep the results
//                  whole, where the transcript the model saw may cut them)
//
// Each answer writes its trace (stored in the TraceStore), whose id the row links to.
//
// Thread safety: the targets are thread-safe when what they borrow is; all must outlive them.

#include <memory>
#include <optional>
#include <vector>

#include "agents/agent_runtime.h"
#include "agents/document_qa.h"
#include "agents/evaluation/evaluator.h"
#include "agents/trace.h"
#include "governance/authorizer.h"
#include "governance/request_context.h"
#include "retrieval/index_manager.h"

namespace sluice::agents::evaluation {

// `index` is a stored or catalog name; `authorizer` and `indexes` must outlive the target.
Target qa_target(governance::Authorizer& authorizer, const retrieval::IndexManager& indexes,
                 std::string index, retrieval::Reader reader, std::shared_ptr<ChatModel> model,
                 QaOptions options, TraceStore* traces, governance::RequestContext caller);

Target agent_target(AgentRuntime& runtime, TraceStore& traces, std::string agent,
                    governance::RequestContext caller);

// The passages the search tools of a trace returned ({"hits": [{"uri", "text"}, ...]} results
// of its tool spans), in call order; nullopt when no search tool ran (nothing was retrieved, as
// opposed to a search that found nothing).
std::optional<std::vector<ContextChunk>> searched_context(const TraceRecord& trace);

}  // namespace sluice::agents::evaluation
