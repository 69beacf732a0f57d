#pragma once
// AI judges: a model asked one yes/no question about an answer, whose reply is held by the
// engine's structured output to the verdict schema
//
//   {"rationale": "<printable ASCII, at most N characters>", "verdict": "yes" | "no"}
//
// so the verdict is never fished out of free text. The rationale comes first (the schema lists
// it first, and the grammar follows that order), so the model reasons before it decides. The
// rationale's bound keeps the whole reply within max_tokens = N + 48 even when every byte is a
// token: a verdict always closes.
//
// Built-in judges: correctness (against expected_response / expected_facts), relevance (to the
// request), groundedness (in the retrieved context), safety, chunk_relevance (each retrieved
// chunk to the request; the row passes when at least half are relevant), context_sufficiency
// (the context holds what the expected answer needs) and guideline_adherence. A custom judge is
// a prompt with {request}, {response}, {expected_response}, {expected_facts}, {context} and
// {guidelines} placeholders plus a rubric saying what "yes" means.
//
// Thread safety: pure functions; run_judge is reentrant (the model is thread-safe).

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agents/chat_model.h"
#include "agents/evaluation/eval_set.h"
#include "common/result.h"

namespace sluice::agents::evaluation {

struct JudgeSpec {
    std::string name;
    std::string prompt;  // custom judges: the template; built-ins: their question
    std::string rubric;
    bool custom = false;
};

// The built-in judges in root-cause order (see evaluator.h).
const std::vector<std::string>& builtin_judge_names();
// kInvalidArgument naming the unknown judge and the known ones.
Result<JudgeSpec> builtin_judge(const std::string& name);
// {"name", "prompt", "rubric"}; kInvalidArgument naming the field. `where` prefixes errors.
Result<JudgeSpec> custom_judge_from_json(const nlohmann::json& value, const std::string& where);
nlohmann::json judge_to_json(const JudgeSpec& spec);

// What a judge sees of one answer.
struct JudgeInput {
    std::string request;
    std::string response;
    std::vector<std::string> expected;  // gold answers
    std::vector<std::string> expected_facts;
    std::vector<ContextChunk> context;  // what the answer was given
    bool has_context = false;
    std::vector<std::string> guidelines;
};

// Whether the judge has what it needs (correctness needs a gold answer or facts, groundedness
// and chunk_relevance a retrieved context, guideline_adherence guidelines).
bool judge_applies(const JudgeSpec& spec, const JudgeInput& input);

struct Verdict {
    bool yes = false;
    std::string rationale;
    std::int64_t prompt_tokens = 0;
    std::int64_t completion_tokens = 0;
};

struct JudgeOptions {
    int rationale_max_chars = 400;
    double temperature = 0;
    std::uint64_t seed = 0;  // with temperature > 0; the evaluator adds each call's number
};

// The schema a verdict is generated under.
nlohmann::json verdict_schema(int rationale_max_chars);
// Checks a reply against the schema: kInternal naming what is wrong (a constrained model never
// produces one; a scripted or misconfigured one may).
Result<Verdict> parse_verdict(const std::string& text, int rationale_max_chars);
nlohmann::json verdict_to_json(const Verdict& verdict);

// The messages one judge call sends: one per chunk for chunk_relevance, one otherwise.
std::vector<std::vector<inference::ChatMessage>> judge_prompts(const JudgeSpec& spec,
                                                               const JudgeInput& input);

// Asks the model once under the verdict schema. The model's errors, or parse_verdict's.
Result<Verdict> ask_judge(ChatModel& model, std::vector<inference::ChatMessage> messages,
                          const JudgeOptions& options);

}  // namespace sluice::agents::evaluation
