#include "app/eval_commands.h"

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "agents/agent_runtime.h"
#include "agents/engine_chat_model.h"
#include "agents/evaluation/comparison.h"
#include "agents/evaluation/report.h"
#include "agents/evaluation/runs.h"
#include "agents/evaluation/targets.h"
#include "agents/index_access.h"
#include "app/atomic_file.h"
#include "app/config_commands.h"
#include "app/data_dir.h"
#include "app/eval_access.h"
#include "app/index_catalog.h"
#include "app/local_index.h"
#include "app/model_host.h"
#include "app/offline_model.h"
#include "app/source_catalog.h"
#include "governance/governance.h"

namespace sluice::app {
namespace {

using nlohmann::json;
namespace eval = agents::evaluation;

struct EvalCliOptions {
    ConfigOptions config;
    std::string set;
    int version = 0;
    std::string file;
    std::string agent;
    std::string qa_index;
    std::vector<std::string> judges;
    std::string principal;
    std::vector<std::string> groups;
    int concurrency = 16;
    int rationale_max_chars = 400;
    std::string run_a;
    std::string run_b;
    std::string out;
    bool json = false;
};

int fail(const std::string& what, const std::string& message) {
    std::cerr << "sluice eval " << what << ": " << message << "\n";
    return 1;
}

struct LocalEval {
    Config config;
    std::unique_ptr<DataDir> data_dir;
    std::unique_ptr<governance::Governance> gov;
    std::unique_ptr<eval::EvalStore> store;
};

// `eval import` may start a data directory with its first set; the other commands read runs
// and sets that must already be there.
Result<LocalEval> open_local_eval(const ConfigOptions& options, DataDirMode mode) {
    LocalEval out;
    SLUICE_ASSIGN_OR_RETURN(out.config, effective_config(options));
    SLUICE_ASSIGN_OR_RETURN(out.data_dir, DataDir::open(out.config.storage.data_dir, mode));
    // Governance first: it creates and migrates catalog.db, which the evaluation tables join.
    governance::GovernanceOptions governance_options;
    governance_options.secret_key_file = out.config.governance.secret_key_file;
    SLUICE_ASSIGN_OR_RETURN(out.gov,
                            governance::Governance::open(out.data_dir->path(), governance_options));
    SLUICE_ASSIGN_OR_RETURN(out.store,
                            eval::EvalStore::open(out.data_dir->path() / governance::kCatalogFile));
    return out;
}

int import_set(const EvalCliOptions& options) {
    auto local = open_local_eval(options.config, DataDirMode::kCreate);
    if (!local.ok()) {
        return fail("import", local.status().message());
    }
    if (Status valid = check_eval_set_name(options.set); !valid.ok()) {
        return fail("import", valid.message());
    }
    std::ifstream in(options.file);
    if (!in) {
        return fail("import", "cannot read " + options.file);
    }
    std::stringstream text;
    text << in.rdbuf();
    auto rows = eval::parse_eval_jsonl(text.str());
    if (!rows.ok()) {
        return fail("import", options.file + ": " + rows.status().message());
    }
    auto version = local->store->add_version(options.set, *rows, "cli");
    if (!version.ok()) {
        return fail("import", version.status().message());
    }
    // The set's table, owned by an admin, so that only its grants open it over REST: left
    // without one, whoever first made a table of that name would own its rows. Before the first
    // admin exists, an admin's first POST /api/eval/sets to the name makes it.
    if (auto admin = acting_admin(local->gov->store(), ""); admin.ok()) {
        Status registered = register_imported_eval_set(*local->gov, admin->id, options.set);
        if (registered.code() == StatusCode::kNotFound) {
            std::cerr << "note: " << registered.message() << "; the set has no catalog table "
                      << "until an admin adds a version with POST /api/eval/sets\n";
        } else if (!registered.ok()) {
            return fail("import", registered.message());
        }
    }
    std::cout << options.set << " version " << version->version << ": " << version->n_rows
              << " rows\n";
    return 0;
}

int list_sets(const EvalCliOptions& options) {
    auto local = open_local_eval(options.config, DataDirMode::kMustExist);
    if (!local.ok()) {
        return fail("sets", local.status().message());
    }
    auto sets = local->store->list_sets();
    if (!sets.ok()) {
        return fail("sets", sets.status().message());
    }
    json out = json::array();
    for (const auto& set : *sets) {
        out.push_back({{"name", set.name}, {"latest_version", set.version}, {"n_rows", set.n_rows},
                       {"created_at", set.created_at_ms}});
        if (!options.json) {
            std::cout << set.name << "  version " << set.version << "  " << set.n_rows
                      << " rows\n";
        }
    }
    if (options.json) {
        std::cout << json{{"sets", out}}.dump() << "\n";
    }
    return 0;
}

void print_run(const json& run) {
    std::cout << "run " << run["id"].get<std::string>() << "  " << run["agent"].get<std::string>()
              << " on " << run["set"].get<std::string>() << " v" << run["set_version"] << "  "
              << run["status"].get<std::string>() << "\n";
    for (const auto& [name, a] : run["aggregates"].items()) {
        std::printf("  %-22s pass %5.1f%%  95%% CI [%5.1f%%, %5.1f%%]  n=%d\n", name.c_str(),
                    a["pass_rate"].get<double>() * 100, a["ci_low"].get<double>() * 100,
                    a["ci_high"].get<double>() * 100, a["n"].get<int>());
    }
    for (const auto& [name, value] : run["metrics"].items()) {
        std::printf("  %-22s %.4f\n", name.c_str(), value.get<double>());
    }
    std::cout << "  judge calls " << run["judge_usage"]["calls"] << ", judge tokens "
              << run["judge_usage"]["total_tokens"] << "\n";
}

int run_eval(const EvalCliOptions& options) {
    if (!options.agent.empty() && !options.qa_index.empty()) {
        return fail("run", "give --agent or --qa-index, not both");
    }
    auto local = open_local_eval(options.config, DataDirMode::kMustExist);
    if (!local.ok()) {
        return fail("run", local.status().message());
    }
    const std::filesystem::path catalog = local->data_dir->path() / governance::kCatalogFile;
    auto agent_store = agents::AgentStore::open(catalog, local->gov->secrets());
    auto traces = agents::TraceStore::open(catalog);
    // One load of the model serves the judges, the agent and the "model" indexes alike.
    auto offline_model = std::make_shared<OfflineModel>(local->config.model);
    auto indexes = retrieval::IndexManager::open(local->data_dir->path() / "indexes",
                                                 offline_index_deps(offline_model));
    for (Status opened : {agent_store.status(), traces.status(), indexes.status()}) {
        if (!opened.ok()) {
            return fail("run", opened.message());
        }
    }
    json judges = json::array();
    for (const auto& judge : options.judges) {
        judges.push_back(judge);
    }
    eval::EvalOptions eval_options;
    auto specs = eval::judges_from_json(options.judges.empty() ? json(nullptr) : judges, nullptr);
    if (!specs.ok()) {
        return fail("run", specs.status().message());
    }
    eval_options.judges = std::move(*specs);
    eval_options.concurrency = static_cast<size_t>(options.concurrency);
    eval_options.judge.rationale_max_chars = options.rationale_max_chars;
    auto host = offline_model->host();
    if (!host.ok()) {
        return fail("run", host.status().message());
    }
    auto made = agents::EngineChatModel::make((*host)->engine(), (*host)->chat_template(),
                                              (*host)->model_id());
    if (!made.ok()) {
        return fail("run", made.status().message());
    }
    std::shared_ptr<agents::ChatModel> model = std::move(*made);
    agents::AgentRuntime runtime(*local->gov, **agent_store, **traces, indexes->get(),
                                 [&model](const std::string&) -> Result<std::shared_ptr<agents::ChatModel>> {
                                     return model;
                                 });
    // The run acts as a catalog principal (local_index.h): EXECUTE on an agent, SELECT on an
    // index, checked and audited as for a request of that principal.
    // Judging the rows' own responses reads nothing governed: the name only labels the run.
    Result<governance::RequestContext> caller = governance::RequestContext{
        0, options.principal.empty() ? "cli" : options.principal, "cli", "", ""};
    if (!options.agent.empty() || !options.qa_index.empty()) {
        caller = cli_caller(*local->gov, options.principal);
    }
    if (!caller.ok()) {
        return fail("run", caller.status().message());
    }
    eval::Target target;
    std::string label;
    if (!options.agent.empty()) {
        target = eval::agent_target(runtime, **traces, options.agent, *caller);
        label = options.agent;
    } else if (!options.qa_index.empty()) {
        if (Status registered = register_stored_indexes(*local->gov, **indexes); !registered.ok()) {
            return fail("run", registered.message());
        }
        auto index = agents::open_index(local->gov->authorizer(), *caller,
                                        governance::Privilege::kSelect, **indexes,
                                        options.qa_index);
        auto groups = local->gov->authorizer().groups_of(caller->principal_id);
        if (!index.ok() || !groups.ok()) {
            return fail("run", (index.ok() ? groups.status() : index.status()).message());
        }
        groups->insert(groups->end(), options.groups.begin(), options.groups.end());
        agents::QaOptions qa;
        target = eval::qa_target(local->gov->authorizer(), **indexes, options.qa_index,
                                 retrieval::Reader{caller->principal, std::move(*groups)}, model,
                                 qa, traces->get(), *caller);
        label = "qa:" + options.qa_index;
    }
    auto run = eval::run_and_store(*local->store,
                                   {label, options.set, options.version, caller->principal},
                                   target, *model, eval_options);
    if (!run.ok()) {
        return fail("run", run.status().message());
    }
    if (options.json) {
        std::cout << agents::dump_safe(*run) << "\n";
    } else {
        print_run(*run);
    }
    return 0;
}

int compare(const EvalCliOptions& options) {
    auto local = open_local_eval(options.config, DataDirMode::kMustExist);
    if (!local.ok()) {
        return fail("compare", local.status().message());
    }
    auto a = local->store->run(options.run_a);
    auto b = local->store->run(options.run_b);
    if (!a.ok() || !b.ok()) {
        return fail("compare", a.ok() ? b.status().message() : a.status().message());
    }
    auto compared = eval::compare_runs(*a, *b);
    if (!compared.ok()) {
        return fail("compare", compared.status().message());
    }
    if (options.json) {
        std::cout << agents::dump_safe(*compared) << "\n";
        return 0;
    }
    for (const auto& [name, j] : (*compared)["judges"].items()) {
        std::printf("%-22s A %5.1f%%  B %5.1f%%  B wins %d, A wins %d  p=%.4g  %s\n",
                    name.c_str(), j["a_pass_rate"].get<double>() * 100,
                    j["b_pass_rate"].get<double>() * 100, j["b_wins"].get<int>(),
                    j["a_wins"].get<int>(), j["p_value"].get<double>(),
                    j["significant"].get<bool>() ? "significant" : "not significant");
    }
    return 0;
}

int report(const EvalCliOptions& options) {
    auto local = open_local_eval(options.config, DataDirMode::kMustExist);
    if (!local.ok()) {
        return fail("report", local.status().message());
    }
    auto run = local->store->run(options.run_a);
    if (!run.ok()) {
        return fail("report", run.status().message());
    }
    if (options.json) {
        std::cout << agents::dump_safe(*run) << "\n";
        return 0;
    }
    std::string html = eval::html_report(*run);
    if (options.out.empty()) {
        std::cout << html;
        return 0;
    }
    if (Status written = write_file_atomically(options.out, html); !written.ok()) {
        return fail("report", written.message());
    }
    std::cout << "wrote " << options.out << "\n";
    return 0;
}

}  // namespace

void add_eval_commands(Cli& cli) {
    auto options = std::make_shared<EvalCliOptions>();
    auto* eval_command = cli.root().add_subcommand(
        "eval", "Evaluation sets, runs with AI judges, comparisons and reports");
    eval_command->require_subcommand(1);

    auto* import = eval_command->add_subcommand("import", "Import JSON lines as a new version");
    add_config_options(*import, options->config);
    import->add_option("--set", options->set, "Set name (catalog.schema.name)")->required();
    import->add_option("file", options->file, "JSON lines file")->required();
    cli.on_run(import, [options] { return import_set(*options); });

    auto* sets = eval_command->add_subcommand("sets", "List evaluation sets");
    add_config_options(*sets, options->config);
    sets->add_flag("--json", options->json, "Print JSON");
    cli.on_run(sets, [options] { return list_sets(*options); });

    auto* run = eval_command->add_subcommand("run", "Run an agent or document QA over a set");
    add_config_options(*run, options->config);
    run->add_option("--set", options->set, "Set name")->required();
    run->add_option("--version", options->version, "Set version (latest when absent)")
        ->check(CLI::Range(1, 100000000));
    run->add_option("--agent", options->agent, "Agent to evaluate (catalog.schema.name)");
    run->add_option("--qa-index", options->qa_index, "Evaluate document QA over this index");
    run->add_option("--judges", options->judges, "Judges (all built-ins when absent)")
        ->delimiter(',');
    run->add_option("--principal", options->principal, "Run as this principal");
    run->add_option("--group", options->groups, "QA reads as a member of this group");
    run->add_option("--concurrency", options->concurrency, "Answers and judge calls at once")
        ->check(CLI::Range(1, 64));
    run->add_option("--rationale-chars", options->rationale_max_chars,
                    "Longest judge rationale")
        ->check(CLI::Range(8, 2000));
    run->add_flag("--json", options->json, "Print the run object");
    cli.on_run(run, [options] { return run_eval(*options); });

    auto* compare_command = eval_command->add_subcommand("compare", "Compare two runs");
    add_config_options(*compare_command, options->config);
    compare_command->add_option("a", options->run_a, "Run A")->required();
    compare_command->add_option("b", options->run_b, "Run B")->required();
    compare_command->add_flag("--json", options->json, "Print JSON");
    cli.on_run(compare_command, [options] { return compare(*options); });

    auto* report_command = eval_command->add_subcommand("report", "A run's HTML report");
    add_config_options(*report_command, options->config);
    report_command->add_option("run", options->run_a, "Run id")->required();
    report_command->add_option("--out", options->out, "Write the HTML here (stdout otherwise)");
    report_command->add_flag("--json", options->json, "Print the run object instead");
    cli.on_run(report_command, [options] { return report(*options); });
}

}  // namespace sluice::app
