#pragma once
// Best-of-N: N candidate answers sampled from the model (each with its own seed, so that they
// differ), each scored by judges — built-ins such as relevance and safety, or a reward prompt
// written as a custom judge — and the one with the most "yes" verdicts returned (the earliest on
// a tie). Candidates and their judge calls are issued concurrently, so the engine batches them.
//
// Thread safety: reentrant; the models must be thread-safe.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "agents/chat_model.h"
#include "agents/evaluation/judges.h"
#include "common/result.h"

namespace sluice::agents::evaluation {

struct BestOfNOptions {
    int n = 4;
    double temperature = 0.8;
    int max_tokens = 256;
    std::uint64_t seed = 1;
    std::vector<JudgeSpec> judges;
    JudgeOptions judge;
    size_t concurrency = 16;
};

struct Candidate {
    std::string text;
    int score = 0;  // yes verdicts
    std::map<std::string, Verdict> verdicts;
    std::map<std::string, std::string> judge_errors;
};

struct BestOfN {
    std::vector<Candidate> candidates;
    size_t best = 0;
    std::int64_t prompt_tokens = 0;  // generation and judging together
    std::int64_t completion_tokens = 0;
};

// kInvalidArgument for n outside 1..16, no judge, no judge that can score an answer to this
// conversation (correctness without a reference, for one), or a conversation that does not end
// with the user. What best_of_n() checks before it samples anything; callers that charge for the
// model's use check it before opening that.
Status check_best_of_n(const std::vector<inference::ChatMessage>& messages,
                       const BestOfNOptions& options);

// check_best_of_n()'s errors; the generator's errors when no candidate could be produced.
Result<BestOfN> best_of_n(ChatModel& generator, ChatModel& judge_model,
                          const std::vector<inference::ChatMessage>& messages,
                          const BestOfNOptions& options);

}  // namespace sluice::agents::evaluation
