#include "app/bench_tokenizer.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <thread>

#include <nlohmann/json.hpp>

#include "app/bench_report.h"
#include "app/tokenize_command.h"

namespace sluice::app {

namespace {

using nlohmann::json;

struct Corpus {
    std::vector<std::string> texts;
    std::size_t bytes = 0;
};

Result<Corpus> read_corpus(const std::filesystem::path& path) {
    std::ifstream in(path);
    if (!in) {
        return not_found("corpus '" + path.string() +
                         "' cannot be read; generate it with `node tools/tiktoken/make_cases.mjs "
                         "--out-dir build/tokenizer` or pass --corpus FILE");
    }
    Corpus corpus;
    std::string line;
    std::size_t number = 0;
    while (std::getline(in, line)) {
        ++number;
        if (line.empty()) {
            continue;
        }
        try {
            corpus.texts.push_back(json::parse(line).at("text").get<std::string>());
        } catch (const json::exception& e) {
            return invalid_argument("corpus '" + path.string() + "' line " +
                                    std::to_string(number) + ": " + e.what());
        }
        corpus.bytes += corpus.texts.back().size();
    }
    if (corpus.texts.empty()) {
        return invalid_argument("corpus '" + path.string() + "' holds no texts");
    }
    return corpus;
}

struct Run {
    double seconds = 0;
    std::size_t tokens = 0;
};

// Best of `repeats` timed passes (after one untimed warm-up pass).
Result<Run> time_encoding(const inference::Tokenizer& tokenizer, const Corpus& corpus, int threads,
                          int repeats) {
    std::vector<std::string_view> views(corpus.texts.begin(), corpus.texts.end());
    Run best{1e30, 0};
    for (int pass = 0; pass <= repeats; ++pass) {
        auto start = std::chrono::steady_clock::now();
        auto ids = tokenizer.encode_batch(views, inference::SpecialTokenMode::kOrdinary, threads);
        double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (!ids) {
            return ids.status();
        }
        std::size_t tokens = 0;
        for (const auto& one : *ids) {
            tokens += one.size();
        }
        if (pass > 0) {
            best.seconds = std::min(best.seconds, seconds);
        }
        best.tokens = tokens;
    }
    return best;
}

// Runs the reference benchmark; its JSON object, or why there is none.
Result<json> run_reference(const std::filesystem::path& corpus, int repeats) {
    std::error_code ec;
    std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    std::filesystem::path script =
        (exe.parent_path() / "../../tools/tiktoken/bench.mjs").lexically_normal();
    if (ec || !std::filesystem::exists(script)) {
        return not_found("reference not run: " + script.string() + " not found");
    }
    if (!std::filesystem::exists(script.parent_path() / "node_modules/tiktoken")) {
        return not_found("reference not run: npm package tiktoken not installed (cd " +
                         script.parent_path().string() + " && npm ci)");
    }
    std::string command = "node '" + script.string() + "' '" + corpus.string() + "' " +
                          std::to_string(repeats) + " 2>&1";
    std::FILE* pipe = popen(command.c_str(), "r");
    if (pipe == nullptr) {
        return unavailable("reference not run: cannot start node");
    }
    std::string output;
    char buffer[4096];
    while (std::size_t n = std::fread(buffer, 1, sizeof(buffer), pipe)) {
        output.append(buffer, n);
    }
    int rc = pclose(pipe);
    std::size_t last_line = output.find_last_of('\n', output.size() >= 2 ? output.size() - 2 : 0);
    std::string tail = output.substr(last_line == std::string::npos ? 0 : last_line + 1);
    if (rc != 0) {
        return unavailable("reference not run: node exited with status " + std::to_string(rc) +
                           ": " + tail.substr(0, 300));
    }
    try {
        return json::parse(tail);
    } catch (const json::exception&) {
        return unavailable("reference output is not JSON: " + tail.substr(0, 300));
    }
}

int run_bench(bool as_json, std::filesystem::path corpus_path, std::string tokenizer_path,
              int threads, int repeats, bool reference) {
    auto tokenizer = open_cli_tokenizer(tokenizer_path);
    if (!tokenizer) {
        std::cerr << tokenizer.status().to_string() << "\n";
        return 1;
    }
    if (corpus_path.empty()) {
        std::error_code ec;
        corpus_path = (std::filesystem::read_symlink("/proc/self/exe", ec).parent_path() /
                       "../tokenizer/bench_corpus.jsonl")
                          .lexically_normal();
    }
    auto corpus = read_corpus(corpus_path);
    if (!corpus) {
        std::cerr << corpus.status().to_string() << "\n";
        return 1;
    }
    if (threads <= 0) {
        threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    }
    double megabytes = static_cast<double>(corpus->bytes) / 1e6;

    BenchReport report("tokenizer");
    report.set_columns({"implementation", "threads", "MB/s", "tokens", "vs tiktoken"});
    report.set_figure("corpus.path", corpus_path.string());
    report.set_figure("corpus.bytes", corpus->bytes);
    report.set_figure("corpus.documents", corpus->texts.size());
    report.set_figure("repeats", repeats);

    auto single = time_encoding(**tokenizer, *corpus, 1, repeats);
    auto multi = time_encoding(**tokenizer, *corpus, threads, repeats);
    if (!single || !multi) {
        std::cerr << (single ? multi.status() : single.status()).to_string() << "\n";
        return 1;
    }
    double single_mb_s = megabytes / single->seconds;
    double multi_mb_s = megabytes / multi->seconds;
    report.set_figure("sluice.single_thread_mb_s", single_mb_s);
    report.set_figure("sluice.all_threads_mb_s", multi_mb_s);
    report.set_figure("sluice.threads", threads);
    report.set_figure("sluice.scaling", multi_mb_s / single_mb_s);
    report.set_figure("sluice.tokens", single->tokens);

    std::string versus_single = "-";
    std::string versus_multi = "-";
    if (reference) {
        auto ref = run_reference(corpus_path, repeats);
        if (ref && ref->contains("mb_per_s")) {
            double ref_mb_s = (*ref)["mb_per_s"].get<double>();
            auto ref_tokens = (*ref)["tokens"].get<std::size_t>();
            report.set_figure("tiktoken.single_thread_mb_s", ref_mb_s);
            report.set_figure("tiktoken.version", (*ref)["version"]);
            report.set_figure("tiktoken.tokens", ref_tokens);
            report.set_figure("speedup_single_thread", single_mb_s / ref_mb_s);
            report.set_figure("tokens_agree", ref_tokens == single->tokens);
            versus_single = format_fixed(single_mb_s / ref_mb_s, 2) + "x";
            versus_multi = format_fixed(multi_mb_s / ref_mb_s, 2) + "x";
            report.add_row({"tiktoken " + (*ref)["version"].get<std::string>() + " (npm, WASM)", "1",
                            format_fixed(ref_mb_s, 2), std::to_string(ref_tokens), "1.00x"});
            report.add_note(ref_tokens == single->tokens
                                ? "token totals agree with the reference"
                                : "TOKEN TOTALS DIFFER FROM THE REFERENCE");
        } else {
            std::string why = ref ? "reference output lacks mb_per_s" : ref.status().message();
            report.set_figure("tiktoken.missing", why);
            report.add_row({"tiktoken (npm, WASM)", "1", "n/a", "n/a", "n/a"});
            report.add_note(why);
        }
    } else {
        report.set_figure("tiktoken.missing", "not requested (--no-reference)");
    }
    report.add_row({"sluice", "1", format_fixed(single_mb_s, 2), std::to_string(single->tokens),
                    versus_single});
    report.add_row({"sluice", std::to_string(threads), format_fixed(multi_mb_s, 2),
                    std::to_string(multi->tokens), versus_multi});
    report.add_note("corpus " + corpus_path.string() + ": " + std::to_string(corpus->texts.size()) +
                    " documents, " + format_fixed(megabytes, 2) + " MB; best of " +
                    std::to_string(repeats) + " passes; scaling " +
                    format_fixed(multi_mb_s / single_mb_s, 2) + "x on " + std::to_string(threads) +
                    " threads");
    report.print(as_json);
    return 0;
}

}  // namespace

void add_tokenizer_bench(Cli& cli) {
    struct Flags {
        bool json = false;
        std::string corpus;
        std::string tokenizer;
        int threads = 0;
        int repeats = 3;
        bool no_reference = false;
    };
    auto flags = std::make_shared<Flags>();
    auto* command = cli.bench().add_subcommand(
        "tokenizer", "Tokenizer MB/s on one thread and all cores, beside npm tiktoken (WASM)");
    command->add_flag("--json", flags->json, "Print the figures as one JSON object last");
    command->add_option("--corpus", flags->corpus,
                        "JSON lines {\"text\": ...} (default: build/tokenizer/bench_corpus.jsonl)");
    command->add_option("--tokenizer", flags->tokenizer,
                        "A .tiktoken rank file or a checkpoint folder with tokenizer.json");
    command->add_option("--threads", flags->threads, "Threads for the batch run (default: all)")
        ->check(CLI::Range(0, 1024));
    command->add_option("--repeats", flags->repeats, "Timed passes; the best counts")
        ->check(CLI::Range(1, 100));
    command->add_flag("--no-reference", flags->no_reference, "Do not run npm tiktoken");
    cli.on_run(command, [flags] {
        return run_bench(flags->json, flags->corpus, flags->tokenizer, flags->threads,
                         flags->repeats, !flags->no_reference);
    });
}

}  // namespace sluice::app
