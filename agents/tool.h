#pragma once
// Tools an agent may call. Each tool is a catalog function (`catalog.schema.name`, securable type
// function) with a JSON Schema for its arguments; calling it needs EXECUTE on that function,
// checked and audited by governance for the identity the call runs as.
//
// Identity: a tool runs as ToolContext::request and ToolContext::reader — the caller of the
// agent, never the agent's owner. Only an agent configured to run as a service principal puts
// that principal there, and the switch is audited (agents/agent.h).
//
// Toolbox::call() is the one way in: it finds the tool by the name the model used, requires
// EXECUTE, checks the arguments against the schema, runs the tool under a "tool" span, and
// returns the result or an error the planner can show the model.
//
// Thread safety: Tool implementations are thread-safe (parallel calls share them); a Toolbox is
// immutable after construction and may be called from several threads at once.

#include <chrono>
#include <memory>
#include <stop_token>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "agents/trace.h"
#include "common/result.h"
#include "governance/authorizer.h"
#include "governance/request_context.h"
#include "inference/chat_template.h"
#include "retrieval/types.h"

namespace sluice::agents {

struct ToolContext {
    governance::RequestContext request;  // who the call runs as
    retrieval::Reader reader;            // the same identity, for document access lists
    std::vector<std::string> groups;     // every group of that identity (policies, readers)
    Trace* trace = nullptr;              // may be null
    std::string parent_span;
    // No tool may run past this; each clamps its own timeout to it.
    std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
    // Requested when whoever asked has gone (the client hung up): planners stop before their
    // next model turn or tool call and cut the model turn in flight short. A tool already
    // running finishes (its deadline bounds it).
    std::stop_token stop;
};

// A tool is what it declares to the model (name, description, argument schema), fixed at
// construction, and what it does when called (invoke), which each kind of tool defines.
class Tool {
public:
    Tool(std::string function_name, std::string description, nlohmann::json parameters)
        : function_name_(std::move(function_name)),
          description_(std::move(description)),
          parameters_(std::move(parameters)) {}
    virtual ~Tool() = default;
    // The catalog function this tool is: "main.tools.sql_query".
    const std::string& function_name() const { return function_name_; }
    const std::string& description() const { return description_; }
    // JSON Schema of the arguments (an object schema).
    const nlohmann::json& parameters() const { return parameters_; }
    // Runs with validated arguments. Errors are shown to the model as the call's result.
    virtual Result<nlohmann::json> invoke(const ToolContext& context,
                                          const nlohmann::json& arguments) = 0;

private:
    std::string function_name_;
    std::string description_;
    nlohmann::json parameters_;
};

// The name a model calls a tool by: the last part of its function name.
std::string tool_call_name(const Tool& tool);

class Toolbox {
public:
    // `authorizer` must outlive the toolbox. kInvalidArgument when two tools share a call name.
    static Result<Toolbox> make(std::vector<std::shared_ptr<Tool>> tools,
                                governance::Authorizer* authorizer);
    Toolbox() = default;

    // As the chat template presents them to the model.
    std::vector<inference::ToolDefinition> definitions() const;
    bool empty() const { return tools_.empty(); }
    const Tool* find(const std::string& call_name) const;

    // kNotFound for a name no tool has; kPermissionDenied (audited) without EXECUTE;
    // kInvalidArgument naming the bad argument; the tool's own errors otherwise.
    Result<nlohmann::json> call(const ToolContext& context, const std::string& call_name,
                                const nlohmann::json& arguments) const;

private:
    std::vector<std::shared_ptr<Tool>> tools_;
    governance::Authorizer* authorizer_ = nullptr;
};

}  // namespace sluice::agents
