#pragma once
// Evaluation sets: rows of what was asked and what a good answer looks like, as JSON lines.
//
//   {"request": "How many holiday days?",              required, non-empty
//    "expected_response": "Twenty five.",              optional
//    "accepted_responses": ["25", "twenty-five"],      optional, more gold answers (SQuAD keeps
//                                                      several per question); metrics take the best
//    "expected_facts": ["25 days"],                    optional
//    "expected_retrieved_context": [{"doc_uri": "...", "content": "..."}],   optional
//    "guidelines": ["Answer in one sentence."] or "...",                    optional
//    "response": "...",                                optional: an answer produced elsewhere
//    "retrieved_context": [{"doc_uri": "...", "content": "..."}],           optional, with it
//    "source_trace_id": "..."}                         optional: the trace a correction came from
//
// Unknown fields are refused, so that a typo ("expected_reponse") is not silently ignored.
// Errors name the line (1-based) and the field: `line 3: expected_facts[1]: expected a string`.
//
// Thread safety: value types and pure functions.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace sluice::agents::evaluation {

struct ContextChunk {
    std::string doc_uri;
    std::string content;
};

struct EvalRow {
    std::string request;
    std::optional<std::string> expected_response;
    std::vector<std::string> accepted_responses;
    std::vector<std::string> expected_facts;
    std::vector<ContextChunk> expected_retrieved_context;
    std::vector<std::string> guidelines;
    std::optional<std::string> response;
    std::optional<std::vector<ContextChunk>> retrieved_context;
    std::string source_trace_id;

    // Every gold answer: expected_response first, then accepted_responses.
    std::vector<std::string> gold_answers() const;
};

// `where` prefixes errors ("line 3", "rows[2]").
Result<EvalRow> eval_row_from_json(const nlohmann::json& value, const std::string& where);
// Only the fields that are set.
nlohmann::json eval_row_to_json(const EvalRow& row);

// One row per non-blank line. kInvalidArgument naming the line (and field) of the first error;
// an empty set is an error too.
Result<std::vector<EvalRow>> parse_eval_jsonl(std::string_view text);
// kInvalidArgument naming rows[i] and the field; an empty array is an error.
Result<std::vector<EvalRow>> eval_rows_from_json(const nlohmann::json& rows);
std::string eval_rows_to_jsonl(const std::vector<EvalRow>& rows);

nlohmann::json context_to_json(const std::vector<ContextChunk>& chunks);

}  // namespace sluice::agents::evaluation
