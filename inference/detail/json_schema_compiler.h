#pragma once
// The walk over one JSON schema document that json_schema_grammar.h and the tool-call grammar
// share: each subschema becomes a rule of one Grammar; `$ref`s become rules made before their
// bodies, so recursive schemas compile to recursive rules.
//
// Thread safety: owned by one compilation.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "inference/detail/json_grammar_parts.h"

namespace sluice::inference::detail {

// Repetition counts (maxLength, maxItems) above this are refused rather than compiled: each
// count is a rule, and a mask cache level beyond the twin depth.
inline constexpr int64_t kMaxRepetition = 10000;

class SchemaCompiler {
public:
    // `root` is the document `$ref`s resolve against; it must outlive the compiler.
    SchemaCompiler(JsonParts& parts, const nlohmann::ordered_json& root);

    // The rule for `schema`, found at JSON pointer `path` (for messages).
    Result<int32_t> compile(const nlohmann::ordered_json& schema, const std::string& path);

private:
    Result<int32_t> compile_inner(const nlohmann::ordered_json& schema, const std::string& path);
    Result<int32_t> resolve_ref(const std::string& ref, const std::string& path);
    Result<int32_t> object_rule(const nlohmann::ordered_json& schema, const std::string& path);
    Result<int32_t> array_rule(const nlohmann::ordered_json& schema, const std::string& path);
    Result<int32_t> string_rule(const nlohmann::ordered_json& schema, const std::string& path);
    Result<int32_t> number_rule(const nlohmann::ordered_json& schema, const std::string& path,
                                bool integer);
    Status error(const std::string& what, const std::string& path) const;
    // `parts` concatenated, with one optional space between neighbours, as alternatives.
    GrammarAlternatives spaced_parts(const std::vector<GrammarSequence>& parts);
    // A non-negative integer keyword (minItems, maxLength, ...).
    Result<int64_t> count(const nlohmann::ordered_json& schema, const char* keyword,
                          const std::string& path) const;

    JsonParts& parts_;
    const nlohmann::ordered_json& root_;
    std::map<std::string, int32_t> refs_;
    int depth_ = 0;
};

}  // namespace sluice::inference::detail
