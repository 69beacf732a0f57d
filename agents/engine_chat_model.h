#pragma once
// EngineChatModel: ChatModel over the in-process inference engine. The conversation is rendered
// by the chat template (tools included); with tools offered the reply is held to the tool-call
// grammar (free text, then calls whose arguments follow each tool's schema), with a response
// schema to that schema. Compiled grammars are cached per tool list or schema, since agents ask
// with the same tools on every step.
//
// Thread safety: thread-safe. The engine must outlive the model.

#include <map>
#include <memory>
#include <mutex>

#include "agents/chat_model.h"
#include "inference/chat_template.h"
#include "inference/engine.h"
#include "inference/grammar_matcher.h"

namespace sluice::agents {

class EngineChatModel final : public ChatModel {
public:
    // kFailedPrecondition when the engine has no tokenizer.
    static Result<std::unique_ptr<EngineChatModel>> make(std::shared_ptr<inference::Engine> engine,
                                                         inference::ChatTemplate chat_template,
                                                         std::string name,
                                                         double timeout_s = 0);
    EngineChatModel(std::shared_ptr<inference::Engine> engine, inference::ChatTemplate chat_template,
                    std::string name, double timeout_s);

    Result<ModelReply> complete(const ModelRequest& request) override;
    std::int64_t count_tokens(std::string_view text) const override;
    std::string name() const override { return name_; }

private:
    Result<std::shared_ptr<const inference::CompiledGrammar>> grammar_for(
        const ModelRequest& request);

    std::shared_ptr<inference::Engine> engine_;
    inference::ChatTemplate template_;
    std::string name_;
    double timeout_s_;
    std::mutex mutex_;
    std::unique_ptr<inference::GrammarCompiler> compiler_;  // guarded by mutex_; built lazily
    std::map<std::string, std::shared_ptr<const inference::CompiledGrammar>> grammars_;  // same
};

}  // namespace sluice::agents
