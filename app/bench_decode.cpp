#include "app/bench_decode.h"

#include <filesystem>
#include <iostream>
#include <random>
#include <algorithm>
#include <charconv>
#include <sstream>
#include <thread>

#include "app/bench_decode_cuda.h"
#include "app/bench_memory.h"
#include "app/bench_report.h"
#include "inference/cpu_backend.h"
#include "inference/cpu_gemv_bench.h"
#include "inference/generator.h"
#include "inference/tiny_model.h"

namespace sluice::app {

namespace {

struct DecodeBenchOptions {
    std::string backend = "cpu";
    std::string model;
    int32_t prompt_tokens = 64;
    int32_t decode_tokens = 32;
    int threads = 0;  // in all; shared out among the ranks when parallel
    int tensor = 1;
    int expert = 1;
    std::vector<int> batches = {1, 8};
    std::vector<std::string> weights = {"bf16", "int8"};
    int gemv_repeats = 20;  // 0: no product timed alone
    int rounds = 3;         // measurements per batch size; the median is reported
    bool json = false;
};

// "1,8,16" as batch sizes in [1, 256].
Result<std::vector<int>> parse_batches(const std::string& text) {
    std::vector<int> batches;
    std::stringstream in(text);
    std::string item;
    while (std::getline(in, item, ',')) {
        int value = 0;
        const auto [end, error] = std::from_chars(item.data(), item.data() + item.size(), value);
        if (error != std::errc() || end != item.data() + item.size() || value < 1 ||
            value > 256) {
            return invalid_argument("--batches: '" + item +
                                    "' is not a batch size in [1, 256]; expected e.g. 1,8,16");
        }
        batches.push_back(value);
    }
    if (batches.empty()) {
        return invalid_argument("--batches: no batch size given");
    }
    return batches;
}

// "bf16,int8": the CPU's weight formats.
Result<std::vector<std::string>> parse_cpu_weights(const std::string& text) {
    std::vector<std::string> formats;
    std::stringstream in(text);
    std::string item;
    while (std::getline(in, item, ',')) {
        if (item != "bf16" && item != "int8") {
            return invalid_argument("--weights: '" + item +
                                    "' is not a CPU weight format; expected bf16 or int8");
        }
        formats.push_back(item);
    }
    if (formats.empty()) {
        return invalid_argument("--weights: no weight format given");
    }
    return formats;
}

struct Measurement {
    double prefill_tok_s = 0;
    double decode_tok_s = 0;
};

// Greedy generation of `batch` random prompts in lock-step; no stop tokens, so every sequence
// runs the full length.
Result<Measurement> measure(inference::Backend& backend, int batch, int32_t prompt_tokens,
                            int32_t decode_tokens, uint64_t seed) {
    const int32_t block_size = 16;
    inference::KvBlockPool pool(backend.kv_cache_spec().n_blocks, block_size);
    std::mt19937_64 rng(seed);
    std::vector<inference::GenerationRequest> requests(static_cast<size_t>(batch));
    for (auto& request : requests) {
        for (int32_t i = 0; i < prompt_tokens; ++i) {
            request.prompt.push_back(static_cast<int32_t>(rng() % backend.config().n_vocab));
        }
        request.sampling.temperature = 0.0f;
        request.max_tokens = decode_tokens;
    }
    SLUICE_ASSIGN_OR_RETURN(auto result, inference::generate_batch(backend, pool, requests));
    return Measurement{result.timings.prefill_tokens_per_second(),
                       result.timings.decode_tokens_per_second()};
}

// The median of `values` (the upper one of an even count); values is not empty.
double median_of(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    return values[values.size() / 2];
}

struct RoundSummary {
    double prefill_tok_s = 0;  // medians over the rounds
    double decode_tok_s = 0;
    double decode_gb_s = 0;        // batch 1 only: active bytes per token x decode tokens/s
    double triad_gb_s = 0;         // batch 1 only: median of the triads paired with the rounds
    double fraction_of_triad = 0;  // median of each round's decode GB/s over its own triad
    double fraction_min = 0;
    double fraction_max = 0;
};

// `options.rounds` measurements of one batch size. At batch 1 each round first measures the
// triad, so that decode is read against the bandwidth the machine gave at that moment: on a
// shared machine the triad alone moves by a third between runs, and a ratio of two numbers
// taken minutes apart mostly measures the neighbours.
Result<RoundSummary> measure_rounds(inference::Backend& backend, int batch,
                                    const DecodeBenchOptions& options, double active_bytes,
                                    int threads) {
    std::vector<double> prefill, decode, gb_s, triads, fractions;
    for (int round = 0; round < options.rounds; ++round) {
        double triad_gb_s = 0;
        if (batch == 1) {
            triad_gb_s = measure_triad_bandwidth(threads, 32u << 20, 5).best_gb_s;
        }
        SLUICE_ASSIGN_OR_RETURN(
            auto m, measure(backend, batch, options.prompt_tokens, options.decode_tokens,
                            static_cast<uint64_t>(batch)));
        prefill.push_back(m.prefill_tok_s);
        decode.push_back(m.decode_tok_s);
        if (batch == 1) {
            // At batch 1 every token reads the active weights once; in a batch the dense
            // weights and the experts that tokens share are read once for all, so bandwidth
            // is only meaningful for batch 1.
            gb_s.push_back(m.decode_tok_s * active_bytes / 1e9);
            triads.push_back(triad_gb_s);
            fractions.push_back(gb_s.back() / triad_gb_s);
        }
    }
    RoundSummary summary;
    summary.prefill_tok_s = median_of(prefill);
    summary.decode_tok_s = median_of(decode);
    if (batch == 1) {
        summary.decode_gb_s = median_of(gb_s);
        summary.triad_gb_s = median_of(triads);
        summary.fraction_of_triad = median_of(fractions);
        summary.fraction_min = *std::min_element(fractions.begin(), fractions.end());
        summary.fraction_max = *std::max_element(fractions.begin(), fractions.end());
    }
    return summary;
}

// The batch-1 bf16 product alone, on the shape of the model's lm_head and the threads of one
// rank, in both weight layouts: its rate against the decode rows' tells the kernel from the
// rest of a step.
int add_gemv_rows(const std::string& model_dir, int threads, int repeats, const TriadResult& triad,
                  BenchReport& report) {
    auto config = inference::load_model_config(model_dir);
    if (!config.ok()) {
        std::cerr << "sluice bench decode: " << config.status().to_string() << "\n";
        return 1;
    }
    const int64_t rows = config->n_vocab;
    const int64_t cols = config->d_model;
    for (auto [name, layout] : {std::pair{"rows", inference::GemvLayout::kRows},
                                std::pair{"panels", inference::GemvLayout::kPanels}}) {
        auto timing = inference::time_cpu_decode_gemv(rows, cols, threads, layout, repeats);
        if (!timing.ok()) {
            std::cerr << "sluice bench decode: " << timing.status().to_string() << "\n";
            return 1;
        }
        const double gb_s =
            static_cast<double>(timing->weight_bytes) / timing->median_seconds / 1e9;
        report.add_row({std::string("bf16 gemv ") + name, "1", "-", "-",
                        format_fixed(static_cast<double>(timing->weight_bytes) / 1e6, 1),
                        format_fixed(gb_s, 2), format_fixed(100.0 * gb_s / triad.best_gb_s, 1)});
        const std::string key = std::string("gemv_") + name;
        report.set_figure(key + ".gb_s", gb_s);
        report.set_figure(key + ".fraction_of_triad", gb_s / triad.best_gb_s);
        report.set_figure(key + ".median_ms", timing->median_seconds * 1e3);
        report.set_figure(key + ".gb_per_cpu_s",
                          static_cast<double>(timing->weight_bytes) / timing->cpu_seconds / 1e9);
    }
    report.set_figure("gemv_shape", std::to_string(rows) + "x" + std::to_string(cols));
    report.add_note("bf16 gemv: one token times a [" + std::to_string(rows) + ", " +
                    std::to_string(cols) + "] matrix (the lm_head) alone, median of " +
                    std::to_string(repeats) +
                    "; MB column = bytes read per product; JSON gb_per_cpu_s = bytes per "
                    "second of the process's CPU time, which compares the layouts when other "
                    "work takes CPU time");
    return 0;
}

int run_decode_bench(const DecodeBenchOptions& options) {
    std::string model_dir = options.model;
    std::filesystem::path temp_dir;
    if (model_dir.empty()) {
        temp_dir = std::filesystem::temp_directory_path() /
                   ("sluice-bench-small-" + std::to_string(std::random_device()()));
        std::cerr << "writing the small preset to " << temp_dir.string() << "\n";
        auto written = inference::write_tiny_model(
            temp_dir.string(), {.preset = inference::TinyPreset::kSmall, .seed = 1});
        if (!written.ok()) {
            std::cerr << "sluice bench decode: " << written.status().to_string() << "\n";
            return 1;
        }
        model_dir = temp_dir.string();
    }
    const int all = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const int threads = options.threads > 0 ? options.threads : all;
    const TriadResult triad = measure_triad_bandwidth(threads, 32u << 20, 5);
    inference::ParallelConfig parallel;
    parallel.tensor = options.tensor;
    parallel.expert = options.expert;
    if (Status valid = inference::validate_parallel_config(parallel); !valid.ok()) {
        std::cerr << "sluice bench decode: " << valid.to_string() << "\n";
        return 1;
    }
    // The same threads in all, so that one rank and several compare at equal compute.
    const int ranks = parallel.n_ranks();
    const int threads_per_rank = std::max(1, threads / ranks);

    BenchReport report("decode");
    report.set_columns({"weights", "batch", "prefill tok/s", "decode tok/s", "active MB/token",
                        "GB/s", "% of triad"});
    int status = 0;
    for (auto [name, format] : {std::pair{"bf16", inference::WeightFormat::kBF16},
                                std::pair{"int8", inference::WeightFormat::kInt8}}) {
        if (std::find(options.weights.begin(), options.weights.end(), name) ==
            options.weights.end()) {
            continue;
        }
        const int max_batch = *std::max_element(options.batches.begin(), options.batches.end());
        auto backend =
            inference::open_cpu_backend(model_dir, {format, threads_per_rank, parallel});
        Status configured = backend.ok() ? (*backend)->configure_kv_cache(
                                               {16, max_batch * ((options.prompt_tokens +
                                                          options.decode_tokens) / 16 + 1)})
                                         : backend.status();
        if (!configured.ok()) {
            std::cerr << "sluice bench decode: " << configured.to_string() << "\n";
            status = 1;
            break;
        }
        // Touches every expert once, so mapped weights are resident before timing.
        (void)measure(**backend, 1, 64, 2, 99);
        const double active_bytes = static_cast<double>((*backend)->active_weight_bytes());
        for (int batch : options.batches) {
            auto rounds = measure_rounds(**backend, batch, options, active_bytes, threads);
            if (!rounds.ok()) {
                std::cerr << "sluice bench decode: " << rounds.status().to_string() << "\n";
                status = 1;
                continue;
            }
            const RoundSummary& m = *rounds;
            const std::string key = std::string(name) + ".batch" + std::to_string(batch);
            report.add_row({name, std::to_string(batch), format_fixed(m.prefill_tok_s, 1),
                            format_fixed(m.decode_tok_s, 2), format_fixed(active_bytes / 1e6, 1),
                            batch == 1 ? format_fixed(m.decode_gb_s, 2) : "-",
                            batch == 1 ? format_fixed(100.0 * m.fraction_of_triad, 1) : "-"});
            report.set_figure(key + ".prefill_tok_s", m.prefill_tok_s);
            report.set_figure(key + ".decode_tok_s", m.decode_tok_s);
            if (batch == 1) {
                report.set_figure(std::string(name) + ".active_bytes_per_token", active_bytes);
                report.set_figure(key + ".decode_gb_s", m.decode_gb_s);
                report.set_figure(key + ".fraction_of_triad", m.fraction_of_triad);
                report.set_figure(key + ".fraction_of_triad_min", m.fraction_min);
                report.set_figure(key + ".fraction_of_triad_max", m.fraction_max);
                report.set_figure(key + ".paired_triad_gb_s", m.triad_gb_s);
                report.add_note(std::string(name) + " batch 1: % of triad is the median over " +
                                std::to_string(options.rounds) +
                                (options.rounds == 1 ? " round" : " rounds") +
                                ", each against a triad measured just before it (range " +
                                format_fixed(100.0 * m.fraction_min, 1) + "-" +
                                format_fixed(100.0 * m.fraction_max, 1) + "%)");
            }
        }
    }
    if (status == 0 && options.gemv_repeats > 0) {
        status = add_gemv_rows(model_dir, threads_per_rank, options.gemv_repeats, triad, report);
    }
    report.set_figure("triad_gb_s", triad.best_gb_s);
    report.set_figure("threads", threads);
    report.set_figure("ranks", ranks);
    report.set_figure("tensor", parallel.tensor);
    report.set_figure("expert", parallel.expert);
    report.set_figure("plan", ranks > 1 ? inference::parallel_plan_name(parallel.plan()) : "none");
    report.set_figure("prompt_tokens", options.prompt_tokens);
    report.set_figure("decode_tokens", options.decode_tokens);
    report.set_figure("kernels", inference::cpu_kernel_variant());
    report.set_figure("model", options.model.empty() ? "small preset (generated)" : options.model);
    report.add_note("memory triad " + format_fixed(triad.best_gb_s, 2) + " GB/s with " +
                    std::to_string(threads) + " threads; kernels " +
                    inference::cpu_kernel_variant());
    if (ranks > 1) {
        report.add_note(std::string(inference::parallel_plan_name(parallel.plan())) +
                        " plan (tensor " + std::to_string(parallel.tensor) + " x expert " +
                        std::to_string(parallel.expert) + "), " + std::to_string(ranks) +
                        " ranks of " + std::to_string(threads_per_rank) +
                        " threads; active MB/token sums the ranks' reads");
    }
    report.print(options.json);
    if (!temp_dir.empty()) {
        std::error_code ec;
        std::filesystem::remove_all(temp_dir, ec);
    }
    return status;
}

}  // namespace

void add_decode_bench(Cli& cli) {
    auto* command = cli.bench().add_subcommand(
        "decode",
        "Prefill and decode tokens/s: the CPU at batch 1 and 8 (--batches), bf16 and int8 "
        "weights; with --backend cuda, DBRX's layer sizes on the GPU");
    auto options = std::make_shared<DecodeBenchOptions>();
    auto cuda = std::make_shared<CudaDecodeBenchOptions>();
    command->add_option("--backend", options->backend, "cpu (default) or cuda")
        ->check(CLI::IsMember({"cpu", "cuda"}));
    command->add_option("--layers", cuda->layers,
                        "cuda: layers of the DBRX-sized model (default 4; DBRX has 40)")
        ->check(CLI::Range(1, 40));
    command->add_option("--weights", cuda->weights,
                        "weight formats to measure, comma-separated (cpu: bf16, int8, default "
                        "both; cuda: bf16, fp8, int4, f32, default bf16,fp8)");
    command->add_option("--batches", cuda->batches,
                        "batch sizes, comma-separated (cpu default 1,8; cuda 1,8,32,128)");
    command->add_option("--warmup-tokens", cuda->warmup_tokens, "cuda: untimed decode steps")
        ->check(CLI::Range(0, 1000));
    command
        ->add_option("--graphs", cuda->graphs,
                     "cuda: decode steps with CUDA graphs: on, off, or both (default: batch "
                     "sizes that replay graphs are measured with and without)")
        ->check(CLI::IsMember({"on", "off", "both"}));
    command
        ->add_option("--split-k", cuda->split_k,
                     "cuda: attention as chosen by the step's shape (auto, default), always the "
                     "one-pass kernel (off), or both; split-K needs contexts over 512 positions")
        ->check(CLI::IsMember({"auto", "off", "both"}));
    command
        ->add_option("--int4-kernel", cuda->int4_kernel,
                     "cuda: int4 experts of decode steps on the CUDA-core kernels (cuda-cores, "
                     "default), on the tensor cores (mma), or both")
        ->check(CLI::IsMember({"cuda-cores", "mma", "both"}));
    command->add_option("--anchor", cuda->anchor,
                        "cuda: JSON output of tools/bench/hf_dbrx_eager.py on the same GPU");
    command->add_option("--peak-gb-s", cuda->peak_gb_s,
                        "cuda: the GPU's peak memory bandwidth (default: datasheet by name)");
    command->add_option("--model", options->model,
                        "Model folder (default: the small preset, generated)");
    command->add_option("--prompt-tokens", options->prompt_tokens, "Prompt length per sequence")
        ->check(CLI::Range(1, 4000));
    command->add_option("--decode-tokens", options->decode_tokens, "Tokens generated per sequence")
        ->check(CLI::Range(2, 4000));
    command->add_option("--threads", options->threads,
                        "Worker threads in all, shared out among the ranks (default: all)");
    command
        ->add_option("--tensor", options->tensor,
                     "Ranks of the tensor plan; with --expert, of each expert group of the "
                     "grid (docs/parallel.md)")
        ->check(CLI::Range(1, 64));
    command
        ->add_option("--expert", options->expert,
                     "Ranks of the expert plan; with --tensor, expert groups of the grid "
                     "(docs/parallel.md)")
        ->check(CLI::Range(1, 64));
    command
        ->add_option("--gemv-repeats", options->gemv_repeats,
                     "cpu: timed runs of the lm_head-shaped bf16 product alone, per weight "
                     "layout (default 20; 0 skips it)")
        ->check(CLI::Range(0, 1000));
    command
        ->add_option("--rounds", options->rounds,
                     "cpu: measurements per batch size, medians reported; at batch 1 each "
                     "round is read against a triad measured just before it (default 3)")
        ->check(CLI::Range(1, 100));
    command->add_flag("--json", options->json, "Print the figures as one JSON object last");
    cli.on_run(command, [options, cuda, command] {
        if (options->backend != "cuda") {
            if (command->count("--batches") > 0) {
                auto batches = parse_batches(cuda->batches);
                if (!batches.ok()) {
                    std::cerr << "sluice bench decode: " << batches.status().message() << "\n";
                    return 1;
                }
                options->batches = std::move(*batches);
            }
            if (command->count("--weights") > 0) {
                auto weights = parse_cpu_weights(cuda->weights);
                if (!weights.ok()) {
                    std::cerr << "sluice bench decode: " << weights.status().message() << "\n";
                    return 1;
                }
                options->weights = std::move(*weights);
            }
            return run_decode_bench(*options);
        }
        // The CPU's defaults suit a 1B-parameter model; DBRX-sized layers take shorter runs
        // unless asked otherwise.
        cuda->prompt_tokens = command->count("--prompt-tokens") > 0 ? options->prompt_tokens : 32;
        cuda->decode_tokens = command->count("--decode-tokens") > 0 ? options->decode_tokens : 16;
        cuda->json = options->json;
        return run_cuda_decode_bench(*cuda);
    });
}

}  // namespace sluice::app
