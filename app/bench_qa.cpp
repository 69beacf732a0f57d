#include "app/bench_qa.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <random>
#include <thread>

#include "agents/document_qa.h"
#include "agents/engine_chat_model.h"
#include "agents/planner.h"
#include "agents/retrieval_tool.h"
#include "agents/scripted_chat_model.h"
#include "app/bench_report.h"
#include "app/bench_model.h"
#include "governance/governance.h"
#include "retrieval/index.h"

namespace sluice::app {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Options {
    std::string model;
    int requests = 16;
    int max_tokens = 32;
    bool json = false;
};

double percentile(std::vector<double> values, double q) {
    if (values.empty()) {
        return 0;
    }
    std::sort(values.begin(), values.end());
    size_t at = static_cast<size_t>(q * static_cast<double>(values.size() - 1) + 0.5);
    return values[std::min(at, values.size() - 1)];
}

const char* const kWords[] = {"holiday", "salary",  "parking", "laptop",  "travel",  "expense",
                              "office",  "security", "badge",  "meeting", "contract", "invoice",
                              "vendor",  "policy",  "training", "leave",  "pension", "bonus",
                              "remote",  "printer", "network", "password", "backup", "audit"};

std::string sentence(std::mt19937& rng, int words) {
    std::string out;
    std::uniform_int_distribution<size_t> pick(0, std::size(kWords) - 1);
    for (int i = 0; i < words; ++i) {
        if (i > 0) {
            out.push_back(' ');
        }
        out.append(kWords[pick(rng)]);
    }
    return out + ".";
}

int fail(const std::string& message) {
    std::cerr << "sluice bench qa: " << message << "\n";
    return 1;
}

int run(const Options& options) {
    BenchReport report("qa");
    BenchScratch work("qa");
    auto opened = open_bench_model({.model_dir = options.model, .max_running = 16, .max_queued = 64},
                                   work.path());
    if (!opened.ok()) {
        return fail(opened.status().message());
    }
    const ModelHost& host = *opened->host;
    std::shared_ptr<agents::ChatModel> model = opened->chat;

    retrieval::IndexSettings index_settings;
    index_settings.name = "bench";
    index_settings.dimension = 256;
    index_settings.factory = "Flat";
    auto created = retrieval::Index::create(work.path() / "index", index_settings, {});
    if (!created.ok()) {
        return fail(created.status().message());
    }
    std::shared_ptr<retrieval::Index> index = std::move(*created);
    std::mt19937 rng(7);
    std::vector<retrieval::Document> documents;
    for (int i = 0; i < 400; ++i) {
        retrieval::Document d;
        d.key = "doc" + std::to_string(i);
        d.uri = "file:///corpus/" + d.key + ".md";
        d.title = "Document " + std::to_string(i);
        for (int s = 0; s < 6; ++s) {
            d.text += sentence(rng, 12) + " ";
        }
        d.acl.groups = {"staff"};
        documents.push_back(std::move(d));
    }
    if (auto upserted = index->upsert(documents); !upserted.ok()) {
        return fail(upserted.status().message());
    }
    const retrieval::Reader reader{"bench", {"staff"}};
    agents::QaOptions qa;
    qa.k = 5;
    qa.max_context_tokens = 400;
    qa.max_answer_tokens = options.max_tokens;

    // 1. Stages, one user.
    std::vector<double> retrieve, pack, prefill, decode, total;
    for (int i = 0; i < options.requests; ++i) {
        std::mt19937 local(static_cast<uint32_t>(i));
        Clock::time_point start = Clock::now();
        auto answer = agents::answer_question("what is the " + sentence(local, 3), *index, reader,
                                              *model, qa, nullptr, "", {});
        if (!answer.ok()) {
            return fail(answer.status().message());
        }
        total.push_back(std::chrono::duration<double>(Clock::now() - start).count() * 1000);
        retrieve.push_back(answer->times.retrieve_s * 1000);
        pack.push_back(answer->times.pack_s * 1000);
        prefill.push_back(answer->times.prefill_s * 1000);
        decode.push_back(answer->times.decode_s * 1000);
    }
    report.set_columns({"measure", "p50", "p99", "unit"});
    auto stage = [&](const std::string& name, const std::vector<double>& values) {
        report.add_row({"qa " + name, format_fixed(percentile(values, 0.5), 3),
                        format_fixed(percentile(values, 0.99), 3), "ms"});
        report.set_figure("stage." + name + "_p50_ms", percentile(values, 0.5));
        report.set_figure("stage." + name + "_p99_ms", percentile(values, 0.99));
    };
    stage("retrieve", retrieve);
    stage("pack", pack);
    stage("prefill", prefill);
    stage("decode", decode);
    stage("total", total);

    // 2. Answers per second with 1 and 16 users.
    for (int users : {1, 16}) {
        std::atomic<int> answered{0};
        std::atomic<int> failed{0};
        Clock::time_point start = Clock::now();
        {
            std::vector<std::jthread> threads;
            for (int u = 0; u < users; ++u) {
                threads.emplace_back([&, u] {
                    std::mt19937 local(static_cast<uint32_t>(100 + u));
                    for (int i = 0; i < options.requests; ++i) {
                        auto answer = agents::answer_question("what is the " + sentence(local, 3),
                                                              *index, reader, *model, qa, nullptr,
                                                              "", {});
                        (answer.ok() ? answered : failed).fetch_add(1);
                    }
                });
            }
        }
        double wall = std::chrono::duration<double>(Clock::now() - start).count();
        double rate = answered.load() / wall;
        report.add_row({"answers/s, " + std::to_string(users) + " user" + (users > 1 ? "s" : ""),
                        format_fixed(rate, 2), "", "answers/s"});
        report.set_figure("answers_per_s.users_" + std::to_string(users), rate);
        report.set_figure("failed.users_" + std::to_string(users), failed.load());
    }

    // 3. Orchestration overhead per planner step, the model scripted away.
    std::filesystem::create_directories(work.path() / "data");
    auto gov = governance::Governance::open(work.path() / "data");
    if (!gov.ok()) {
        return fail(gov.status().message());
    }
    auto& store = (*gov)->store();
    auto owner = store.create_principal("owner", governance::PrincipalKind::kUser, true);
    auto user = store.create_principal("bench", governance::PrincipalKind::kUser, false);
    if (!owner.ok() || !user.ok()) {
        return fail("cannot create the benchmark's principals");
    }
    for (auto [type, name] : {std::pair{governance::SecurableType::kCatalog, "main"},
                              std::pair{governance::SecurableType::kSchema, "main.tools"},
                              std::pair{governance::SecurableType::kFunction, "main.tools.search"}}) {
        if (!store.create_securable(type, name, owner->id, "", {}).ok()) {
            return fail(std::string("cannot create ") + name);
        }
    }
    auto function = store.securable(governance::SecurableType::kFunction, "main.tools.search");
    if (!function.ok() ||
        !store
             .update_permissions(function->id, governance::SecurableType::kFunction,
                                 {{"bench", {governance::Privilege::kAllPrivileges}, {}}},
                                 owner->id)
             .ok()) {
        return fail("cannot grant the tool");
    }
    for (auto [type, name] : {std::pair{governance::SecurableType::kCatalog, "main"},
                              std::pair{governance::SecurableType::kSchema, "main.tools"}}) {
        auto securable = store.securable(type, name);
        if (!securable.ok() ||
            !store.update_permissions(securable->id, type,
                                      {{"bench", {governance::Privilege::kAllPrivileges}, {}}},
                                      owner->id)
                 .ok()) {
            return fail(std::string("cannot grant ") + name);
        }
    }
    auto tool = std::make_shared<agents::VectorSearchTool>("main.tools.search", "search", index);
    auto box = agents::Toolbox::make({tool}, &(*gov)->authorizer());
    if (!box.ok()) {
        return fail(box.status().message());
    }
    json script = json::array();
    for (int i = 0; i < 3; ++i) {
        script.push_back({{"tool_calls",
                           json::array({{{"name", "search"},
                                         {"arguments", {{"query", std::string(kWords[i]) + " policy"},
                                                        {"k", 3}}}}})}});
    }
    script.push_back({{"content", "The answer is in the documents [1]."}});
    agents::FunctionCallingPlanner planner;
    std::vector<double> per_step;
    const int runs = std::max(50, options.requests * 4);
    for (int r = 0; r < runs; ++r) {
        auto scripted = agents::ScriptedChatModel::make(script);
        if (!scripted.ok()) {
            return fail(scripted.status().message());
        }
        agents::Trace trace("bench", "req_bench");
        agents::ToolContext context;
        context.request = {user->id, "bench", "req_bench", "127.0.0.1", ""};
        context.reader = reader;
        context.trace = &trace;
        agents::RunRequest request;
        request.instructions = "Answer from the documents.";
        request.messages.push_back({"user", "What is the holiday policy?", {}, {}});
        Clock::time_point start = Clock::now();
        auto result = planner.run(request, context, *box, **scripted, [](const agents::AgentEvent&) {});
        double ms = std::chrono::duration<double>(Clock::now() - start).count() * 1000;
        if (!result.ok() || result->stop != agents::StopReason::kAnswer) {
            return fail("the scripted agent did not answer");
        }
        per_step.push_back(ms / result->steps);
    }
    report.add_row({"orchestration per step", format_fixed(percentile(per_step, 0.5), 3),
                    format_fixed(percentile(per_step, 0.99), 3), "ms"});
    report.set_figure("orchestration.step_p50_ms", percentile(per_step, 0.5));
    report.set_figure("orchestration.step_p99_ms", percentile(per_step, 0.99));
    report.set_figure("requests", options.requests);
    report.add_note("model " + host.model_id() + " (" + (options.model.empty() ? "tiny preset" : options.model) +
                    "), " + std::to_string(options.max_tokens) + " answer tokens at most, k 5, " +
                    "context budget 400 tokens, 400 documents");
    report.add_note("orchestration: 4 scripted turns (3 governed vector_search calls, then the "
                    "answer), audit and traces on; " + std::to_string(runs) + " runs");
    report.add_note(describe_machine());
    report.print(options.json);
    return 0;
}

}  // namespace

void add_qa_bench(Cli& cli) {
    auto* command = cli.bench().add_subcommand(
        "qa", "Document QA stages, answers/s at 1 and 16 users, agent orchestration per step");
    auto options = std::make_shared<Options>();
    command->add_option("--model", options->model, "DBRX checkpoint folder (default: tiny preset)");
    command->add_option("--requests", options->requests, "Questions per user")
        ->check(CLI::Range(1, 10000));
    command->add_option("--max-tokens", options->max_tokens, "Answer tokens at most")
        ->check(CLI::Range(1, 4096));
    command->add_flag("--json", options->json, "Print the figures as one JSON object last");
    cli.on_run(command, [options] { return run(*options); });
}

}  // namespace sluice::app
