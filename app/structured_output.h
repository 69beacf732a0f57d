#pragma once
// Structured output for the OpenAI routes: the grammar a chat request's output is held to
// (response_format json_object or json_schema, or its tools and tool_choice), compiled against
// the served model's vocabulary and cached.
//
// Compiling a schema walks the whole vocabulary per grammar position and can take up to about a
// second, so compiled grammars are kept in a small LRU keyed by (kind, text): repeated requests
// with the same schema or tool list (the common case for agents) compile once. Failed compiles
// are not cached. Compiled grammars are immutable and shared; each request builds its own
// GrammarMatcher from one.
//
// Errors: kInvalidArgument (a 400) naming an unsupported schema keyword and where it sits, a bad
// tool list or tool_choice (inference/json_schema_grammar.h).
//
// Thread safety: GrammarCache is thread-safe. Two threads missing on the same key may both
// compile it; the later insert wins, and both results are equal.

#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "app/openai_request.h"
#include "common/result.h"
#include "inference/grammar_matcher.h"
#include "inference/tokenizer.h"

namespace sluice::app {

class GrammarCache {
public:
    enum class Kind { kJsonObject, kJsonSchema, kToolCalls };

    // Builds the vocabulary trie of `tokenizer` (not retained). capacity >= 1.
    GrammarCache(const inference::Tokenizer& tokenizer, size_t capacity);

    // response_format {"type": "json_object"}.
    Result<std::shared_ptr<const inference::CompiledGrammar>> json_object();
    // A JSON schema as text; properties are generated in the order the text lists them.
    Result<std::shared_ptr<const inference::CompiledGrammar>> json_schema(std::string_view text);
    // OpenAI `tools` and `tool_choice` as the request gave them; `parallel` false (OpenAI's
    // `parallel_tool_calls`) admits at most one call.
    Result<std::shared_ptr<const inference::CompiledGrammar>> tool_calls(
        const nlohmann::json& tools, const nlohmann::json& tool_choice, bool parallel = true);

    size_t size() const;
    int64_t compiles() const;  // cache misses that compiled successfully

private:
    using Compiled = std::shared_ptr<const inference::CompiledGrammar>;
    std::optional<Compiled> find(const std::string& key);
    void insert(const std::string& key, Compiled compiled);
    int32_t twin_depth() const;

    inference::GrammarCompiler compiler_;
    const size_t capacity_;
    mutable std::mutex mutex_;
    // Most recently used first; the map points into the list.
    std::list<std::pair<std::string, Compiled>> entries_;  // guarded by mutex_
    std::unordered_map<std::string, std::list<std::pair<std::string, Compiled>>::iterator>
        index_;             // guarded by mutex_
    int64_t compiles_ = 0;  // guarded by mutex_
};

// The matcher a chat request's output is held to, or nullopt when it is free text: for
// response_format json_object / json_schema (`body_text` is the raw body, read again to keep the
// schema's property order), else for tools with any tool_choice. Errors as GrammarCache.
Result<std::optional<inference::GrammarMatcher>> chat_constraint(const ChatRequest& chat,
                                                                 std::string_view body_text,
                                                                 GrammarCache& cache);

// response_format.json_schema.schema of a request body, as compact JSON text in the order the
// client wrote it. kInvalidArgument when the body is not JSON or has no schema there.
Result<std::string> schema_text_in_order(std::string_view body_text);

}  // namespace sluice::app
