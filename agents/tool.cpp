#include "agents/tool.h"

#include <set>

#include "agents/argument_check.h"
#include "common/log.h"

namespace sluice::agents {

std::string tool_call_name(const Tool& tool) {
    const std::string& full = tool.function_name();
    size_t dot = full.rfind('.');
    return dot == std::string::npos ? full : full.substr(dot + 1);
}

Result<Toolbox> Toolbox::make(std::vector<std::shared_ptr<Tool>> tools,
                              governance::Authorizer* authorizer) {
    std::set<std::string> names;
    for (const auto& tool : tools) {
        if (!names.insert(tool_call_name(*tool)).second) {
            return invalid_argument("two tools are called '" + tool_call_name(*tool) +
                                    "'; tool names must differ in their last part");
        }
    }
    Toolbox box;
    box.tools_ = std::move(tools);
    box.authorizer_ = authorizer;
    return box;
}

std::vector<inference::ToolDefinition> Toolbox::definitions() const {
    std::vector<inference::ToolDefinition> out;
    for (const auto& tool : tools_) {
        out.push_back({tool_call_name(*tool), tool->description(), tool->parameters()});
    }
    return out;
}

const Tool* Toolbox::find(const std::string& call_name) const {
    for (const auto& tool : tools_) {
        if (tool_call_name(*tool) == call_name) {
            return tool.get();
        }
    }
    return nullptr;
}

Result<nlohmann::json> Toolbox::call(const ToolContext& context, const std::string& call_name,
                                     const nlohmann::json& arguments) const {
    std::shared_ptr<Tool> tool;
    for (const auto& one : tools_) {
        if (tool_call_name(*one) == call_name) {
            tool = one;
        }
    }
    SpanScope span(context.trace, SpanKind::kTool, call_name, context.parent_span,
                   {{"arguments", arguments}, {"principal", context.request.principal}});
    if (!tool) {
        Status missing = not_found("no tool is called '" + call_name + "'");
        span.fail(missing.message());
        return missing;
    }
    if (authorizer_ != nullptr) {
        Status allowed = authorizer_->require(context.request, governance::Privilege::kExecute,
                                              governance::SecurableType::kFunction,
                                              tool->function_name());
        if (!allowed.ok()) {
            span.fail(allowed.message());
            return allowed;
        }
    }
    if (Status valid = check_arguments(tool->parameters(), arguments); !valid.ok()) {
        span.fail(valid.message());
        return valid;
    }
    ToolContext inner = context;
    inner.parent_span = span.id();
    auto result = tool->invoke(inner, arguments);
    if (!result.ok()) {
        log::warn("agents", "tool call failed",
                  {{"tool", tool->function_name()},
                   {"request_id", context.request.request_id},
                   {"error", result.status().message()}});
        span.fail(result.status().message());
        return result;
    }
    span.set_outputs({{"result", *result}});
    return result;
}

}  // namespace sluice::agents
