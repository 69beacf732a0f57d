#include "app/bench_eval.h"

#include <filesystem>
#include <iostream>
#include <random>

#include "agents/engine_chat_model.h"
#include "agents/evaluation/evaluator.h"
#include "app/bench_report.h"
#include "app/bench_model.h"

namespace sluice::app {
namespace {

namespace eval = agents::evaluation;

struct Options {
    std::string model;
    int calls = 64;
    int rationale_max_chars = 24;
    bool json = false;
};

int fail(const std::string& message) {
    std::cerr << "sluice bench eval: " << message << "\n";
    return 1;
}

const char* const kTopics[] = {"holiday", "salary", "parking", "laptop", "travel", "expense",
                               "badge",   "pension", "printer", "backup", "audit",  "invoice"};

std::vector<eval::EvalRow> rows(int n) {
    std::mt19937 rng(11);
    std::uniform_int_distribution<size_t> pick(0, std::size(kTopics) - 1);
    std::vector<eval::EvalRow> out;
    for (int i = 0; i < n; ++i) {
        eval::EvalRow row;
        std::string topic = kTopics[pick(rng)];
        row.request = "What is the " + topic + " policy?";
        row.response = "The " + std::string(kTopics[pick(rng)]) + " policy is set by the team.";
        out.push_back(std::move(row));
    }
    return out;
}

int run(const Options& options) {
    BenchReport report("eval");
    BenchScratch scratch("eval");
    auto model = open_bench_model({.model_dir = options.model, .max_running = 16, .max_queued = 256},
                                  scratch.path());
    if (!model.ok()) {
        return fail(model.status().message());
    }
    std::vector<eval::EvalRow> set = rows(options.calls);
    report.set_columns({"measure", "value", "unit"});
    int total_calls = 0;
    int valid = 0;
    for (size_t concurrency : {size_t{1}, size_t{16}}) {
        eval::EvalOptions eval_options;
        eval_options.judges = {*eval::builtin_judge("relevance")};
        eval_options.concurrency = concurrency;
        eval_options.judge.rationale_max_chars = options.rationale_max_chars;
        eval_options.judge.temperature = 1.0;
        eval_options.judge.seed = 1000 * concurrency;
        auto result = eval::evaluate(set, {}, *model->chat, eval_options);
        if (!result.ok()) {
            return fail(result.status().message());
        }
        const eval::JudgeAggregate& a = result->aggregates.at("relevance");
        double rate = a.calls / result->wall_s;
        std::string suffix = std::string("c").append(std::to_string(concurrency));
        report.add_row({std::string("judge calls/s, ").append(std::to_string(concurrency)).append(" in flight"),
                        format_fixed(rate, 2), "calls/s"});
        report.set_figure("judge_calls_per_s." + suffix, rate);
        report.set_figure("completion_tokens_per_call." + suffix,
                          static_cast<double>(a.completion_tokens) / std::max(1, a.calls));
        report.set_figure("prompt_tokens_per_call." + suffix,
                          static_cast<double>(a.prompt_tokens) / std::max(1, a.calls));
        total_calls += a.calls;
        valid += a.n;
    }
    double valid_share = 100.0 * valid / std::max(1, total_calls);
    report.add_row({"valid verdicts", format_fixed(valid_share, 1) + " (" +
                                          std::to_string(valid) + "/" +
                                          std::to_string(total_calls) + ")",
                    "%"});
    report.set_figure("valid_verdict_pct", valid_share);
    report.set_figure("judge_calls", total_calls);
    report.set_figure("rationale_max_chars", options.rationale_max_chars);
    report.add_note("model: " + model->host->model_id() + "; " + describe_machine());
    report.print(options.json);
    return valid == total_calls ? 0 : 1;
}

}  // namespace

void add_eval_bench(Cli& cli) {
    auto* command = cli.bench().add_subcommand(
        "eval", "AI judge calls/s at 1 and 16 in flight, and the share of valid verdicts");
    auto options = std::make_shared<Options>();
    command->add_option("--model", options->model, "DBRX checkpoint folder (default: tiny preset)");
    command->add_option("--calls", options->calls, "Judge calls per concurrency level")
        ->check(CLI::Range(1, 100000));
    command->add_option("--rationale-chars", options->rationale_max_chars,
                        "Longest rationale (max_tokens is this + 48)")
        ->check(CLI::Range(8, 2000));
    command->add_flag("--json", options->json, "Print the figures as one JSON object last");
    cli.on_run(command, [options] { return run(*options); });
}

}  // namespace sluice::app
