#include "app/search_command.h"

#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "app/local_index.h"
#include "app/vector_search_json.h"

namespace sluice::app {
namespace {

struct SearchOptions {
    ConfigOptions config;
    std::string index;
    std::string query;
    std::size_t k = 10;
    std::string mode;  // empty: hybrid, or lexical on an index without an embedder
    std::string filter;
    std::string principal;
    std::vector<std::string> groups;
    std::vector<std::string> columns;  // --json only; empty: kSearchColumns
    std::string fusion;                // empty: the index's own
    std::optional<double> vector_weight;
    bool json = false;
};

// What `--json` prints without --columns: where each hit is, and its text.
const std::vector<std::string> kSearchColumns = {"id",           "chunk_id",   "title",    "uri",
                                                 "section_path", "char_begin", "char_end", "text"};

int fail(const std::string& message) {
    std::cerr << "sluice search: " << message << "\n";
    return 1;
}

int run_search(const SearchOptions& options) {
    auto local = open_local_index(options.config, options.index, options.principal,
                                  options.groups);
    if (!local.ok()) {
        return fail(local.status().message());
    }
    // This command sends text only: on an index whose vectors come with each row (embedder
    // none) there is no query vector to make, and a hybrid query would be refused.
    std::string mode = options.mode;
    if (mode.empty()) {
        mode = local->index->settings().embedder == "none" ? "lexical" : "hybrid";
    }
    nlohmann::json request = {
        {"query_text", options.query}, {"num_results", options.k}, {"query_type", mode}};
    if (!options.filter.empty()) {
        request["filters_json"] = options.filter;
    }
    if (!options.fusion.empty()) {
        request["fusion"] = options.fusion;
    }
    if (options.vector_weight) {
        request["vector_weight"] = *options.vector_weight;
    }
    auto query = query_from_json(request);
    if (!query.ok()) {
        return fail(query.status().message());
    }
    auto hits = local->index->query(*query, local->reader);
    if (!hits.ok()) {
        return fail(hits.status().message());
    }
    if (options.json) {
        std::cout << results_to_json(*hits,
                                     options.columns.empty() ? kSearchColumns : options.columns)
                         .dump()
                  << "\n";
        return 0;
    }
    std::size_t rank = 0;
    for (const auto& hit : *hits) {
        std::string preview = hit.chunk.text.substr(0, 160);
        for (char& c : preview) {
            c = c == '\n' ? ' ' : c;
        }
        std::cout << ++rank << ". " << hit.chunk.doc_key << "  score " << hit.score << "  "
                  << hit.chunk.title << "\n   " << preview << "\n";
    }
    if (hits->empty()) {
        std::cout << "no results readable by this identity\n";
    }
    return 0;
}

}  // namespace

void add_search_command(Cli& cli) {
    auto options = std::make_shared<SearchOptions>();
    auto* command = cli.root().add_subcommand("search", "Query an index of the data directory");
    add_config_options(*command, options->config);
    command->add_option("--index", options->index, "Index name")->required();
    command->add_option("--query,-q", options->query, "Query text")->required();
    command->add_option("--k", options->k, "Number of results");
    command
        ->add_option("--mode", options->mode,
                     "hybrid, ann or lexical (default: hybrid; lexical on an index whose "
                     "vectors come with its rows)")
        ->check(CLI::IsMember({"hybrid", "ann", "lexical"}));
    command->add_option("--filter", options->filter, "Filter as JSON (see docs/retrieval.md)");
    command->add_option("--principal", options->principal,
                        "Read as this catalog principal (needs SELECT on the index; default admin)");
    command->add_option("--group", options->groups, "Read also as a member of this group");
    command
        ->add_option("--fusion", options->fusion,
                     "Hybrid: rrf or weighted (default: the index's own, see describe)")
        ->check(CLI::IsMember({"rrf", "weighted"}));
    command
        ->add_option("--vector-weight", options->vector_weight,
                     "Hybrid: the vector side's weight in weighted fusion, 0 to 1 (alone, it "
                     "asks for weighted fusion)")
        ->check(CLI::Range(0.0, 1.0));
    command->add_flag("--json", options->json, "Print results as JSON");
    command
        ->add_option("--columns", options->columns,
                     "With --json: the columns to print, separated by commas (id, chunk_id, "
                     "title, uri, section_path, char_begin, char_end, text, score or any "
                     "metadata field)")
        ->delimiter(',');
    cli.on_run(command, [options] { return run_search(*options); });
}

}  // namespace sluice::app
