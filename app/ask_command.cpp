#include "app/ask_command.h"

#include <iostream>

#include <nlohmann/json.hpp>

#include "agents/document_qa.h"
#include "agents/engine_chat_model.h"
#include "app/local_index.h"
#include "app/model_host.h"
#include "governance/governance.h"

namespace sluice::app {
namespace {

struct AskOptions {
    ConfigOptions config;
    std::string index;
    std::string question;
    std::string principal;
    std::vector<std::string> groups;
    bool rewrite = false;
    size_t k = 8;
    int max_tokens = 256;
    bool json = false;
};

int fail(const std::string& message) {
    std::cerr << "sluice ask: " << message << "\n";
    return 1;
}

int run_ask(const AskOptions& options) {
    auto local = open_local_index(options.config, options.index, options.principal,
                                  options.groups);
    if (!local.ok()) {
        return fail(local.status().message());
    }
    auto traces = agents::TraceStore::open(local->data_dir->path() / governance::kCatalogFile);
    if (!traces.ok()) {
        return fail(traces.status().message());
    }
    // The model the index embeds queries with, when its embedder is "model": loaded once.
    auto host = local->model->host();
    if (!host.ok()) {
        return fail(host.status().message());
    }
    auto model = agents::EngineChatModel::make((*host)->engine(), (*host)->chat_template(),
                                               (*host)->model_id());
    if (!model.ok()) {
        return fail(model.status().message());
    }
    agents::QaOptions qa;
    qa.k = options.k;
    qa.rewrite = options.rewrite;
    qa.max_answer_tokens = options.max_tokens;
    agents::Trace trace(local->caller.principal, "cli");
    auto result = agents::answer_question(
        options.question, *local->index, local->reader, **model, qa,
        &trace, "", [&](std::string_view text) {
            if (!options.json) {
                std::cout << text << std::flush;
            }
        });
    if (Status saved = (*traces)->save(trace.record()); !saved.ok()) {
        std::cerr << "sluice ask: the trace was not stored: " << saved.message() << "\n";
    }
    if (!result.ok()) {
        return fail(result.status().message());
    }
    if (options.json) {
        nlohmann::json citations = nlohmann::json::array();
        for (const auto& citation : result->citations) {
            citations.push_back(agents::citation_to_json(citation));
        }
        std::cout << agents::dump_safe({{"answer", result->answer},
                                        {"citations", citations},
                                        {"refused", result->refused},
                                        {"trace_id", trace.id()}})
                  << "\n";
        return 0;
    }
    std::cout << "\n\n";
    for (const auto& citation : result->citations) {
        std::cout << "[" << citation.number << "] " << citation.title << " — " << citation.uri
                  << " (characters " << citation.char_begin << "-" << citation.char_end << ")\n";
    }
    std::cout << "trace " << trace.id() << "\n";
    return 0;
}

}  // namespace

void add_ask_command(Cli& cli) {
    auto options = std::make_shared<AskOptions>();
    auto* command =
        cli.root().add_subcommand("ask", "Answer a question from an index's documents, with sources");
    add_config_options(*command, options->config);
    command->add_option("question", options->question, "The question")->required();
    command->add_option("--index", options->index, "Index name")->required();
    command->add_option("--principal", options->principal,
                        "Read as this catalog principal (needs SELECT on the index; default admin)");
    command->add_option("--group", options->groups, "Read also as a member of this group");
    command->add_flag("--rewrite", options->rewrite, "Let the model rewrite the query first");
    command->add_option("--k", options->k, "Sources to retrieve")->check(CLI::Range(1, 50));
    command->add_option("--max-tokens", options->max_tokens, "Answer tokens at most")
        ->check(CLI::Range(1, 32768));
    command->add_flag("--json", options->json, "Print the answer and citations as JSON");
    cli.on_run(command, [options] { return run_ask(*options); });
}

}  // namespace sluice::app
