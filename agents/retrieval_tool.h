#pragma once
// vector_search: hybrid retrieval over one index, run as the caller (ToolContext::reader), so
// the chunks returned are those the caller's access lists admit, never the agent owner's.
//
// Thread safety: thread-safe (retrieval::Index is).

#include <memory>
#include <string>

#include "agents/tool.h"
#include "retrieval/index.h"

namespace sluice::agents {

class VectorSearchTool final : public Tool {
public:
    VectorSearchTool(std::string function_name, std::string description,
                     std::shared_ptr<retrieval::Index> index, int max_k = 20);
    // {"hits": [{"uri", "title", "text", "score", "char_begin", "char_end"}]}
    Result<nlohmann::json> invoke(const ToolContext& context,
                                  const nlohmann::json& arguments) override;

private:
    std::shared_ptr<retrieval::Index> index_;
};

}  // namespace sluice::agents
