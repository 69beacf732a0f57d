#include "app/structured_output.h"

#include "inference/json_schema_grammar.h"

namespace sluice::app {

GrammarCache::GrammarCache(const inference::Tokenizer& tokenizer, size_t capacity)
    : compiler_(tokenizer), capacity_(capacity < 1 ? 1 : capacity) {}

int32_t GrammarCache::twin_depth() const {
    // Repetition levels deeper than the longest token share masks (inference/grammar.h).
    return compiler_.trie()->max_token_bytes() + 1;
}

std::optional<GrammarCache::Compiled> GrammarCache::find(const std::string& key) {
    std::lock_guard lock(mutex_);
    auto it = index_.find(key);
    if (it == index_.end()) {
        return std::nullopt;
    }
    entries_.splice(entries_.begin(), entries_, it->second);
    return it->second->second;
}

void GrammarCache::insert(const std::string& key, Compiled compiled) {
    std::lock_guard lock(mutex_);
    ++compiles_;
    if (auto it = index_.find(key); it != index_.end()) {
        it->second->second = std::move(compiled);
        entries_.splice(entries_.begin(), entries_, it->second);
        return;
    }
    entries_.emplace_front(key, std::move(compiled));
    index_[key] = entries_.begin();
    while (entries_.size() > capacity_) {
        index_.erase(entries_.back().first);
        entries_.pop_back();
    }
}

size_t GrammarCache::size() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
}

int64_t GrammarCache::compiles() const {
    std::lock_guard lock(mutex_);
    return compiles_;
}

Result<GrammarCache::Compiled> GrammarCache::json_object() {
    const std::string key = "json_object";
    if (auto hit = find(key)) {
        return *hit;
    }
    SLUICE_ASSIGN_OR_RETURN(
        Compiled compiled,
        compiler_.compile(inference::json_object_grammar({.twin_depth = twin_depth()})));
    insert(key, compiled);
    return compiled;
}

Result<GrammarCache::Compiled> GrammarCache::json_schema(std::string_view text) {
    // The kind prefix keeps keys of different kinds apart; none of them contains a newline.
    const std::string key = "json_schema\n" + std::string(text);
    if (auto hit = find(key)) {
        return *hit;
    }
    SLUICE_ASSIGN_OR_RETURN(
        inference::Grammar grammar,
        inference::json_schema_text_to_grammar(text, {.twin_depth = twin_depth()}));
    SLUICE_ASSIGN_OR_RETURN(Compiled compiled, compiler_.compile(std::move(grammar)));
    insert(key, compiled);
    return compiled;
}

Result<GrammarCache::Compiled> GrammarCache::tool_calls(const nlohmann::json& tools,
                                                        const nlohmann::json& tool_choice,
                                                        bool parallel) {
    const std::string key = std::string(parallel ? "tool_calls\n" : "tool_call\n") + tools.dump() +
                            "\n" + tool_choice.dump();
    if (auto hit = find(key)) {
        return *hit;
    }
    SLUICE_ASSIGN_OR_RETURN(std::vector<inference::ToolSpec> specs,
                            inference::parse_openai_tools(tools));
    SLUICE_ASSIGN_OR_RETURN(inference::ToolChoice choice,
                            inference::parse_openai_tool_choice(tool_choice));
    choice.parallel = parallel;
    SLUICE_ASSIGN_OR_RETURN(
        inference::Grammar grammar,
        inference::tool_call_grammar(specs, choice, {.twin_depth = twin_depth()}));
    SLUICE_ASSIGN_OR_RETURN(Compiled compiled, compiler_.compile(std::move(grammar)));
    insert(key, compiled);
    return compiled;
}

Result<std::string> schema_text_in_order(std::string_view body_text) {
    // nlohmann::ordered_json keeps the client's key order, which sets the order in which
    // properties are generated (a "reasoning" field placed before "answer" is written first).
    nlohmann::ordered_json body =
        nlohmann::ordered_json::parse(body_text, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded() || !body.is_object()) {
        return invalid_argument("the request body is not a JSON object");
    }
    auto format = body.find("response_format");
    if (format == body.end() || !format->is_object()) {
        return invalid_argument("the request has no 'response_format' object");
    }
    auto spec = format->find("json_schema");
    if (spec == format->end() || !spec->is_object() || !spec->contains("schema")) {
        return invalid_argument("the request has no 'response_format.json_schema.schema'");
    }
    return (*spec)["schema"].dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

Result<std::optional<inference::GrammarMatcher>> chat_constraint(const ChatRequest& chat,
                                                                 std::string_view body_text,
                                                                 GrammarCache& cache) {
    using Matcher = std::optional<inference::GrammarMatcher>;
    auto start = [](Result<std::shared_ptr<const inference::CompiledGrammar>> compiled,
                    std::string_view context) -> Result<Matcher> {
        if (!compiled.ok()) {
            return compiled.status().with_context(context);
        }
        return Matcher(inference::GrammarMatcher(*compiled));
    };
    switch (chat.response_format) {
        case ResponseFormat::kJsonObject: return start(cache.json_object(), "response_format");
        case ResponseFormat::kJsonSchema: {
            SLUICE_ASSIGN_OR_RETURN(std::string text, schema_text_in_order(body_text));
            return start(cache.json_schema(text), "response_format.json_schema.schema");
        }
        case ResponseFormat::kText: break;
    }
    if (chat.tools_json.is_null()) {
        return Matcher();
    }
    return start(cache.tool_calls(chat.tools_json, chat.tool_choice_json, chat.parallel_tool_calls),
                 "tools");
}

}  // namespace sluice::app
