#include "app/cli.h"

#include <iostream>

#include "app/ask_command.h"
#include "app/bench_ann.h"
#include "app/bench_authz.h"
#include "app/bench_decode.h"
#include "app/bench_eval.h"
#include "app/bench_grammar.h"
#include "app/bench_limits.h"
#include "app/bench_memory.h"
#include "app/bench_qa.h"
#include "app/bench_serve.h"
#include "app/bench_sources.h"
#include "app/bench_sync.h"
#include "app/bench_tokenizer.h"
#include "app/config_commands.h"
#include "app/connection_commands.h"
#include "app/eval_commands.h"
#include "app/generate_command.h"
#include "app/governance_commands.h"
#include "app/model_commands.h"
#include "app/retrieval_bench.h"
#include "app/search_command.h"
#include "app/serve_command.h"
#include "app/source_commands.h"
#include "app/tokenize_command.h"
#include "app/version_command.h"

namespace sluice::app {

Cli::Cli() : root_(std::make_unique<CLI::App>(
                 "Sluice: document Q&A, agents, evaluation and audit with DBRX in-process",
                 "sluice")) {
    root_->require_subcommand(1);
    root_->set_help_all_flag("--help-all", "Show help for every command");

    bench_ = root_->add_subcommand(
        "bench", "Run a benchmark: prints a table, and with --json one JSON object last");
    bench_->require_subcommand(1);

    add_serve_command(*this);
    add_version_command(*this);
    add_config_commands(*this);
    add_memory_bench(*this);
    add_tokenize_commands(*this);
    add_tokenizer_bench(*this);
    add_model_commands(*this);
    add_generate_command(*this);
    add_decode_bench(*this);
    add_serve_bench(*this);
    add_qa_bench(*this);
    add_grammar_bench(*this);
    add_governance_commands(*this);
    add_authz_bench(*this);
    add_limits_bench(*this);
    add_retrieval_bench(*this);
    add_search_command(*this);
    add_ask_command(*this);
    add_eval_commands(*this);
    add_eval_bench(*this);
    add_source_commands(*this);
    add_connection_commands(*this);
    add_sources_bench(*this);
    add_sync_bench(*this);
    add_ann_bench(*this);
}

void Cli::on_run(CLI::App* command, std::function<int()> action) {
    actions_.emplace_back(command, std::move(action));
}

int Cli::run(int argc, const char* const* argv) {
    try {
        root_->parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // CLI11 reports --help and usage errors by exception; this is its documented protocol.
        return root_->exit(e);
    }
    // The deepest chosen command wins: `bench tokenizer` runs the tokenizer benchmark.
    for (auto it = actions_.rbegin(); it != actions_.rend(); ++it) {
        if (it->first->parsed()) {
            return it->second();
        }
    }
    std::cerr << root_->help();
    return 2;
}

}  // namespace sluice::app
