#pragma once
// Shared by the grammar tests: one GrammarCompiler over the shipped tokenizer, and checks of
// strings against compiled grammars.

#include <memory>
#include <string>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "inference/grammar_matcher.h"
#include "inference/json_schema_grammar.h"
#include "tokenizer_fixture.h"

namespace sluice::inference::testing {

inline const GrammarCompiler& grammar_compiler() {
    static const GrammarCompiler compiler(dbrx_tokenizer());
    return compiler;
}

// Compiles a schema given as JSON text (property order kept); fails the test on error.
inline std::shared_ptr<const CompiledGrammar> compile_schema_text(const std::string& text) {
    auto grammar = json_schema_text_to_grammar(
        text, {.twin_depth = grammar_compiler().trie()->max_token_bytes() + 1});
    REQUIRE_MESSAGE(grammar.ok(), grammar.status().to_string());
    auto compiled = grammar_compiler().compile(std::move(*grammar));
    REQUIRE_MESSAGE(compiled.ok(), compiled.status().to_string());
    return *compiled;
}

inline std::shared_ptr<const CompiledGrammar> compile_text(const std::string& text) {
    auto compiled = grammar_compiler().compile_grammar_text(text);
    REQUIRE_MESSAGE(compiled.ok(), compiled.status().to_string());
    return *compiled;
}

// True when `text` is a complete sentence of the grammar.
inline bool accepts(const std::shared_ptr<const CompiledGrammar>& grammar, const std::string& text) {
    GrammarMatcher matcher(grammar);
    return matcher.accept_bytes(text).ok() && matcher.is_accepting();
}

// True when `text` can be continued into a sentence of the grammar.
inline bool accepts_prefix(const std::shared_ptr<const CompiledGrammar>& grammar,
                           const std::string& text) {
    GrammarMatcher matcher(grammar);
    return matcher.accept_bytes(text).ok();
}

}  // namespace sluice::inference::testing
