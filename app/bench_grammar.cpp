#include "app/bench_grammar.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

#include "app/bench_report.h"
#include "app/tokenize_command.h"
#include "inference/cpu_backend.h"
#include "inference/generator.h"
#include "inference/grammar_matcher.h"
#include "inference/json_schema_grammar.h"
#include "inference/tiny_model.h"

namespace sluice::app {

namespace {

using Clock = std::chrono::steady_clock;

struct GrammarBenchOptions {
    std::string schemas;
    int walks = 4;
    int tokens = 64;
    int e2e_tokens = 32;
    bool json = false;
};

struct Schema {
    std::string name;
    std::string text;
};

Result<std::vector<Schema>> load_schemas(const std::string& dir) {
    std::vector<Schema> out;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
        if (entry.path().extension() != ".json") {
            continue;
        }
        std::ifstream in(entry.path());
        std::stringstream text;
        text << in.rdbuf();
        out.push_back({entry.path().stem().string(), text.str()});
    }
    if (ec || out.empty()) {
        return not_found("no JSON schemas in '" + dir + "'");
    }
    std::sort(out.begin(), out.end(), [](const Schema& a, const Schema& b) { return a.name < b.name; });
    return out;
}

std::string default_schema_dir() {
    std::error_code ec;
    const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    return (exe.parent_path() / "../../tests/inference/data/schemas").lexically_normal().string();
}

double percentile(std::vector<double> values, double q) {
    if (values.empty()) {
        return 0;
    }
    std::sort(values.begin(), values.end());
    const auto index = static_cast<size_t>(q * static_cast<double>(values.size() - 1) + 0.5);
    return values[std::min(index, values.size() - 1)];
}

// Follows random allowed tokens, timing every mask. Microseconds per call.
void time_masks(const std::shared_ptr<const inference::CompiledGrammar>& grammar, int walks,
                int tokens, uint64_t seed, std::vector<double>& out) {
    std::mt19937_64 rng(seed);
    std::vector<uint64_t> bits(grammar->mask_words());
    std::vector<int32_t> allowed;
    for (int walk = 0; walk < walks; ++walk) {
        inference::GrammarMatcher matcher(grammar);
        for (int t = 0; t < tokens && !matcher.is_terminated(); ++t) {
            const auto start = Clock::now();
            matcher.fill_next_token_mask(bits);
            out.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
            allowed.clear();
            for (size_t w = 0; w < bits.size(); ++w) {
                for (uint64_t word = bits[w]; word != 0; word &= word - 1) {
                    allowed.push_back(static_cast<int32_t>(w * 64 + static_cast<size_t>(__builtin_ctzll(word))));
                }
            }
            if (allowed.empty()) {
                break;
            }
            (void)matcher.accept_token(allowed[rng() % allowed.size()]);
        }
    }
}

// Decode tokens/s of 8 sequences over the tiny model, with matchers for `grammar` or without.
Result<double> decode_rate(inference::Backend& backend, const std::vector<int32_t>& prompt,
                           const std::shared_ptr<const inference::CompiledGrammar>& grammar,
                           int32_t max_tokens) {
    constexpr int kBatch = 8;
    inference::KvBlockPool pool(backend.kv_cache_spec().n_blocks, backend.kv_cache_spec().block_size);
    std::vector<inference::GrammarMatcher> matchers;
    std::vector<inference::GenerationRequest> requests(kBatch);
    if (grammar) {
        matchers.assign(kBatch, inference::GrammarMatcher(grammar));
    }
    for (int i = 0; i < kBatch; ++i) {
        requests[static_cast<size_t>(i)].prompt = prompt;
        requests[static_cast<size_t>(i)].sampling = {.temperature = 1.0f, .seed = static_cast<uint64_t>(i)};
        requests[static_cast<size_t>(i)].max_tokens = max_tokens;
        if (grammar) {
            requests[static_cast<size_t>(i)].constraint = &matchers[static_cast<size_t>(i)];
        }
    }
    SLUICE_ASSIGN_OR_RETURN(auto result, inference::generate_batch(backend, pool, requests));
    return result.timings.decode_tokens_per_second();
}

int run_grammar_bench(const GrammarBenchOptions& options) {
    const std::string dir = options.schemas.empty() ? default_schema_dir() : options.schemas;
    auto schemas = load_schemas(dir);
    auto tokenizer = open_cli_tokenizer({});
    if (!schemas.ok() || !tokenizer.ok()) {
        std::cerr << "sluice bench grammar: "
                  << (schemas.ok() ? tokenizer.status() : schemas.status()).to_string() << "\n";
        return 1;
    }
    auto start = Clock::now();
    const inference::GrammarCompiler compiler(**tokenizer);
    const double trie_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();

    BenchReport report("grammar");
    report.set_columns({"schema", "compile ms", "positions", "cache MB", "mask median us",
                        "mask p99 us"});
    std::vector<double> all_masks;
    std::vector<double> compile_ms;
    std::vector<std::shared_ptr<const inference::CompiledGrammar>> grammars;
    uint64_t seed = 1;
    for (const Schema& schema : *schemas) {
        auto grammar = inference::json_schema_text_to_grammar(
            schema.text, {.twin_depth = compiler.trie()->max_token_bytes() + 1});
        auto compiled = grammar.ok() ? compiler.compile(std::move(*grammar))
                                     : Result<std::shared_ptr<const inference::CompiledGrammar>>(grammar.status());
        if (!compiled.ok()) {
            std::cerr << "sluice bench grammar: " << schema.name << ": "
                      << compiled.status().to_string() << "\n";
            return 1;
        }
        const auto& stats = (*compiled)->stats();
        std::vector<double> masks;
        time_masks(*compiled, options.walks, options.tokens, seed++, masks);
        all_masks.insert(all_masks.end(), masks.begin(), masks.end());
        compile_ms.push_back(stats.compile_seconds * 1e3);
        grammars.push_back(*compiled);
        report.add_row({schema.name, format_fixed(stats.compile_seconds * 1e3, 1),
                        std::to_string(stats.n_positions), format_fixed(static_cast<double>(stats.mask_bytes) / 1e6, 1),
                        format_fixed(percentile(masks, 0.5), 1), format_fixed(percentile(masks, 0.99), 1)});
    }
    const double median = percentile(all_masks, 0.5);
    const double p99 = percentile(all_masks, 0.99);
    double mean = 0;
    for (double v : all_masks) {
        mean += v / static_cast<double>(all_masks.size());
    }
    report.add_row({"ALL", format_fixed(percentile(compile_ms, 0.5), 1) + " (median)", "-", "-",
                    format_fixed(median, 1), format_fixed(p99, 1)});
    report.set_figure("schemas", schemas->size());
    report.set_figure("vocab_size", (*tokenizer)->vocab_size());
    report.set_figure("trie_build_ms", trie_ms);
    report.set_figure("mask_us.median", median);
    report.set_figure("mask_us.p99", p99);
    report.set_figure("mask_us.mean", mean);
    report.set_figure("mask_calls", all_masks.size());
    report.set_figure("compile_ms.median", percentile(compile_ms, 0.5));
    report.set_figure("compile_ms.max", percentile(compile_ms, 1.0));

    // End to end on the tiny model: unconstrained decode, then under each schema's grammar.
    const auto model_dir = std::filesystem::temp_directory_path() /
                           ("sluice-bench-grammar-" + std::to_string(std::random_device()()));
    auto written = inference::write_tiny_model(model_dir.string(), {.preset = inference::TinyPreset::kTiny, .seed = 3});
    auto backend = written.ok() ? inference::open_cpu_backend(model_dir.string(), {})
                                : Result<std::unique_ptr<inference::Backend>>(written.status());
    int status = 0;
    if (backend.ok() && (*backend)->configure_kv_cache({16, 8 * (options.e2e_tokens / 16 + 2)}).ok()) {
        auto prompt = (*tokenizer)->encode("Answer in JSON.");
        double free_rate = 0;
        double constrained_time = 0;
        double free_time = 0;
        int n = 0;
        for (const auto& grammar : grammars) {
            // Interleaved, so that load from other processes hits both alike.
            auto a = decode_rate(**backend, *prompt, nullptr, options.e2e_tokens);
            auto b = decode_rate(**backend, *prompt, grammar, options.e2e_tokens);
            if (!a.ok() || !b.ok()) {
                std::cerr << "sluice bench grammar: " << (a.ok() ? b.status() : a.status()).to_string() << "\n";
                status = 1;
                break;
            }
            free_time += 1.0 / *a;
            constrained_time += 1.0 / *b;
            free_rate += *a;
            ++n;
        }
        if (n > 0) {
            const double slowdown = constrained_time / free_time - 1.0;
            report.set_figure("e2e.unconstrained_tok_s", free_rate / n);
            report.set_figure("e2e.constrained_tok_s", static_cast<double>(n) / constrained_time);
            report.set_figure("e2e.slowdown", slowdown);
            report.add_note("tiny model, 8 sequences, temperature 1: decode slowdown under grammars " +
                            format_fixed(100.0 * slowdown, 1) + "% (per-token time, summed over schemas)");
        }
    } else {
        std::cerr << "sluice bench grammar: tiny model: "
                  << (backend.ok() ? "kv cache" : backend.status().to_string()) << "\n";
        status = 1;
    }
    std::error_code ec;
    std::filesystem::remove_all(model_dir, ec);
    report.add_note("mask time per token over " + std::to_string(all_masks.size()) +
                    " calls on a vocabulary of " + std::to_string((*tokenizer)->vocab_size()) +
                    " tokens; trie built in " + format_fixed(trie_ms, 1) + " ms; " + describe_machine());
    report.print(options.json);
    return status;
}

}  // namespace

void add_grammar_bench(Cli& cli) {
    auto* command = cli.bench().add_subcommand(
        "grammar", "Structured output: token mask time per token, grammar compile time, decode slowdown");
    auto options = std::make_shared<GrammarBenchOptions>();
    command->add_option("--schemas", options->schemas, "Folder of JSON schemas (default: the test schemas)");
    command->add_option("--walks", options->walks, "Random walks per schema")->check(CLI::Range(1, 100));
    command->add_option("--tokens", options->tokens, "Tokens per walk")->check(CLI::Range(1, 4096));
    command->add_option("--e2e-tokens", options->e2e_tokens, "Tokens per sequence in the decode comparison")
        ->check(CLI::Range(2, 512));
    command->add_flag("--json", options->json, "Print the figures as one JSON object last");
    cli.on_run(command, [options] { return run_grammar_bench(*options); });
}

}  // namespace sluice::app
