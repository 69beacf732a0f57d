#pragma once
// vector_search: hybrid retrieval over one index, run as the caller. Every call requires SELECT
// on the index's catalog securable for ToolContext::request (audited, allow and deny;
// agents/index_access.h), on top of EXECUTE on the tool's function that the Toolbox checks; the
// chunks returned are those the caller's access lists admit (ToolContext::reader), never the
// agent owner's. The index is looked up by name at each call, so a dropped index, or a grant
// revoked between two calls, is seen by the next call.
//
// Thread safety: thread-safe (IndexManager, Index and Authorizer are).

#include <memory>
#include <string>

#include "agents/tool.h"
#include "governance/authorizer.h"
#include "retrieval/index_manager.h"

namespace sluice::agents {

class VectorSearchTool final : public Tool {
public:
    // `indexes` and `authorizer` must outlive the tool; `index` is a stored or catalog name.
    VectorSearchTool(std::string function_name, std::string description,
                     const retrieval::IndexManager& indexes, std::string index,
                     governance::Authorizer& authorizer, int max_k = 20);
    // {"hits": [{"uri", "title", "text", "score", "char_begin", "char_end"}]}.
    // kPermissionDenied without SELECT on the index; kNotFound when it does not exist.
    Result<nlohmann::json> invoke(const ToolContext& context,
                                  const nlohmann::json& arguments) override;

private:
    const retrieval::IndexManager& indexes_;
    std::string index_name_;
    governance::Authorizer& authorizer_;
};

}  // namespace sluice::agents
