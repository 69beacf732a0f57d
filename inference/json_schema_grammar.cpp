#include "inference/json_schema_grammar.h"

#include "inference/detail/json_grammar_parts.h"
#include "inference/detail/json_schema_compiler.h"

namespace sluice::inference {


namespace {

Result<Grammar> to_grammar(const nlohmann::ordered_json& schema, const JsonGrammarOptions& options) {
    Grammar grammar;
    grammar.set_twin_depth(options.twin_depth);
    detail::JsonParts parts(grammar);
    detail::SchemaCompiler compiler(parts, schema);
    SLUICE_ASSIGN_OR_RETURN(int32_t root, compiler.compile(schema, ""));
    grammar.set_root(grammar.rule_of("root", {{Grammar::ref(root)}}));
    SLUICE_RETURN_IF_ERROR(grammar.validate());
    return grammar;
}

}  // namespace

Result<Grammar> json_schema_to_grammar(const nlohmann::json& schema,
                                       const JsonGrammarOptions& options) {
    return to_grammar(nlohmann::ordered_json::parse(schema.dump()), options);
}

Result<Grammar> json_schema_text_to_grammar(std::string_view schema_text,
                                            const JsonGrammarOptions& options) {
    nlohmann::ordered_json schema = nlohmann::ordered_json::parse(schema_text, nullptr, false);
    if (schema.is_discarded()) {
        return invalid_argument("json schema is not valid JSON");
    }
    return to_grammar(schema, options);
}

Grammar json_object_grammar(const JsonGrammarOptions& options) {
    Grammar grammar;
    grammar.set_twin_depth(options.twin_depth);
    detail::JsonParts parts(grammar);
    grammar.set_root(grammar.rule_of("root", {{Grammar::ref(parts.any_object())}}));
    return grammar;
}

}  // namespace sluice::inference
