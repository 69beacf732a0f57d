#include "agents/evaluation/best_of_n.h"

#include <algorithm>
#include <mutex>
#include <string_view>

#include "agents/evaluation/evaluator.h"

namespace sluice::agents::evaluation {
namespace {

constexpr std::string_view kNoJudgeApplies =
    "judges: none applies to an answer without reference or context (use relevance, safety, "
    "guideline-free custom judges)";

}  // namespace

Status check_best_of_n(const std::vector<inference::ChatMessage>& messages,
                       const BestOfNOptions& options) {
    if (options.n < 1 || options.n > 16) {
        return invalid_argument("n: expected 1 to 16, found " + std::to_string(options.n));
    }
    if (options.judges.empty()) {
        return invalid_argument("judges: best-of-N needs at least one judge to score with");
    }
    if (messages.empty() || messages.back().role != "user") {
        return invalid_argument("messages: the last message must be the user's");
    }
    // Whether a judge applies depends on the request (a reference, a context, guidelines),
    // never on the answer: found out before any candidate is sampled and charged.
    JudgeInput probe;
    probe.request = messages.back().content;
    if (std::none_of(options.judges.begin(), options.judges.end(),
                     [&](const JudgeSpec& judge) { return judge_applies(judge, probe); })) {
        return invalid_argument(std::string(kNoJudgeApplies));
    }
    return Status();
}

Result<BestOfN> best_of_n(ChatModel& generator, ChatModel& judge_model,
                          const std::vector<inference::ChatMessage>& messages,
                          const BestOfNOptions& options) {
    SLUICE_RETURN_IF_ERROR(check_best_of_n(messages, options));
    const auto n = static_cast<size_t>(options.n);
    std::vector<Result<ModelReply>> replies(n, Status(StatusCode::kInternal, "not run"));
    parallel_for(n, options.concurrency, [&](size_t i) {
        ModelRequest request;
        request.messages = messages;
        request.max_tokens = options.max_tokens;
        request.temperature = options.temperature;
        request.seed = options.seed + i;
        replies[i] = generator.complete(request);
    });
    BestOfN out;
    Status last_error;
    for (auto& reply : replies) {
        if (!reply.ok()) {
            last_error = reply.status();
            continue;
        }
        out.prompt_tokens += reply->prompt_tokens;
        out.completion_tokens += reply->completion_tokens;
        out.candidates.push_back({reply->text, 0, {}, {}});
    }
    if (out.candidates.empty()) {
        return last_error;
    }
    struct Call {
        size_t candidate;
        size_t judge;
        std::vector<inference::ChatMessage> prompt;
        Result<Verdict> verdict = Status(StatusCode::kInternal, "not run");
    };
    std::vector<Call> calls;
    for (size_t c = 0; c < out.candidates.size(); ++c) {
        JudgeInput input;
        input.request = messages.back().content;
        input.response = out.candidates[c].text;
        for (size_t j = 0; j < options.judges.size(); ++j) {
            if (!judge_applies(options.judges[j], input)) {
                continue;
            }
            for (auto& prompt : judge_prompts(options.judges[j], input)) {
                calls.push_back({c, j, std::move(prompt)});
            }
        }
    }
    if (calls.empty()) {
        return invalid_argument(std::string(kNoJudgeApplies));
    }
    parallel_for(calls.size(), options.concurrency, [&](size_t i) {
        JudgeOptions judge = options.judge;
        judge.seed += i;
        calls[i].verdict = ask_judge(judge_model, calls[i].prompt, judge);
    });
    for (const auto& call : calls) {
        Candidate& candidate = out.candidates[call.candidate];
        const std::string& name = options.judges[call.judge].name;
        if (!call.verdict.ok()) {
            candidate.judge_errors[name] = call.verdict.status().message();
            continue;
        }
        out.prompt_tokens += call.verdict->prompt_tokens;
        out.completion_tokens += call.verdict->completion_tokens;
        candidate.verdicts[name] = *call.verdict;
        candidate.score += call.verdict->yes ? 1 : 0;
    }
    for (size_t c = 1; c < out.candidates.size(); ++c) {
        if (out.candidates[c].score > out.candidates[out.best].score) {
            out.best = c;
        }
    }
    return out;
}

}  // namespace sluice::agents::evaluation
