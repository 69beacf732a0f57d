#include "app/bench_serve.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "app/bench_report.h"
#include "app/build_info.h"
#include "app/http_server.h"
#include "app/metrics.h"
#include "app/model_host.h"
#include "app/openai_routes.h"
#include "app/serve_bench_options.h"
#include "app/tokenize_command.h"
#include "inference/devices.h"
#include "inference/engine.h"
#include "inference/hf_tokenizer.h"
#include "inference/tiny_model.h"

namespace sluice::app {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

double percentile(std::vector<double> values, double p) {
    if (values.empty()) {
        return 0;
    }
    std::sort(values.begin(), values.end());
    const auto index = static_cast<size_t>(p * static_cast<double>(values.size() - 1) + 0.5);
    return values[std::min(index, values.size() - 1)];
}

// Words for prompts: ordinary English, so that token counts look like real text.
std::string words(std::mt19937& rng, int n) {
    static const char* kWords[] = {"refund", "policy", "customer", "order", "shipping", "the",
                                   "within", "days", "of", "invoice", "account", "request",
                                   "support", "product", "warranty", "and", "for", "a"};
    std::string text;
    for (int i = 0; i < n; ++i) {
        text += kWords[rng() % std::size(kWords)];
        text += ' ';
    }
    return text;
}

struct Sample {
    int status = 0;
    double ttft = 0;                // seconds to the first content
    std::vector<double> gaps;       // seconds between content chunks
    int64_t output_tokens = 0;
    double total = 0;
};

// One streaming chat request; times the chunks as they arrive.
Sample stream_chat(int port, const std::string& system, const std::string& user, int max_tokens) {
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(600, 0);
    json body = {{"messages", json::array({{{"role", "system"}, {"content", system}},
                                           {{"role", "user"}, {"content", user}}})},
                 {"max_tokens", max_tokens},
                 {"temperature", 0.7},
                 {"stream", true},
                 {"stream_options", {{"include_usage", true}}}};
    Sample sample;
    std::string pending;
    const auto start = Clock::now();
    auto last = start;
    bool first = true;
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/chat/completions";
    req.body = body.dump();
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
        pending.append(data, n);
        size_t end;
        while ((end = pending.find("\n\n")) != std::string::npos) {
            std::string event = pending.substr(0, end);
            pending.erase(0, end + 2);
            if (event.rfind("data: {", 0) != 0) {
                continue;
            }
            auto chunk = json::parse(event.substr(6), nullptr, false);
            if (chunk.is_discarded()) {
                continue;
            }
            if (chunk.contains("usage") && chunk["usage"].is_object()) {
                sample.output_tokens = chunk["usage"]["completion_tokens"].get<int64_t>();
            }
            bool content = false;
            for (const auto& choice : chunk.value("choices", json::array())) {
                content = content || !choice["delta"].value("content", "").empty();
            }
            if (!content) {
                continue;
            }
            const auto now = Clock::now();
            if (first) {
                sample.ttft = seconds(now - start);
                first = false;
            } else {
                sample.gaps.push_back(seconds(now - last));
            }
            last = now;
        }
        return true;
    };
    httplib::Response res;
    httplib::Error error = httplib::Error::Success;
    client.send(req, res, error);
    sample.status = res.status;
    sample.total = seconds(Clock::now() - start);
    return sample;
}

struct Phase {
    std::vector<Sample> samples;
    double wall = 0;
    inference::SchedulerStats before;  // the engine's counters around the phase
    inference::SchedulerStats after;
    double output_tps() const {
        int64_t tokens = 0;
        for (const auto& s : samples) {
            tokens += s.output_tokens;
        }
        return wall > 0 ? static_cast<double>(tokens) / wall : 0;
    }
};

// `clients` threads, each running `per_client` requests from `make` one after another; the
// requests are numbered from `first_index`.
Phase run_clients(int port, int clients, int per_client, int first_index,
                  const std::function<std::tuple<std::string, std::string, int>(int)>& make) {
    Phase phase;
    std::mutex mutex;
    const auto start = Clock::now();
    std::vector<std::jthread> threads;
    for (int c = 0; c < clients; ++c) {
        threads.emplace_back([&, c] {
            for (int r = 0; r < per_client; ++r) {
                auto [system, user, max_tokens] = make(first_index + c * per_client + r);
                Sample sample = stream_chat(port, system, user, max_tokens);
                std::lock_guard lock(mutex);
                phase.samples.push_back(std::move(sample));
            }
        });
    }
    threads.clear();
    phase.wall = seconds(Clock::now() - start);
    return phase;
}

// Where a phase's engine time went: prompt tokens computed, and the forward steps that only
// decoded versus those that also computed prompt chunks (which make every decode in them wait).
void describe_steps(BenchReport& report, const std::string& name, const Phase& phase) {
    const inference::SchedulerStats& a = phase.after;
    const inference::SchedulerStats& b = phase.before;
    const int64_t decode_steps = a.decode_only_steps - b.decode_only_steps;
    const int64_t mixed_steps = a.mixed_steps - b.mixed_steps;
    const double decode_s = a.decode_only_seconds - b.decode_only_seconds;
    const double mixed_s = a.mixed_seconds - b.mixed_seconds;
    const int64_t steps = decode_steps + mixed_steps;
    const int64_t rows = a.decode_rows - b.decode_rows;
    const int64_t prompt = a.prompt_tokens - b.prompt_tokens;
    const int64_t cached = a.cached_prompt_tokens - b.cached_prompt_tokens;
    const double host_s = a.host_seconds - b.host_seconds;
    const int64_t overlapped = a.overlapped_outputs - b.overlapped_outputs;
    auto per = [](double x, int64_t n) { return n > 0 ? x / static_cast<double>(n) : 0.0; };
    report.add_note(
        name + " engine: " + std::to_string(prompt) + " prompt tokens computed (" +
        std::to_string(cached) + " from the prefix cache), " +
        std::to_string(a.generated_tokens - b.generated_tokens) + " generated; " +
        std::to_string(decode_steps) + " decode-only steps, " + format_fixed(decode_s, 2) +
        " s (mean batch " + format_fixed(per(static_cast<double>(rows), steps), 1) +
        " over all steps, " + format_fixed(per(decode_s * 1000, decode_steps), 1) + " ms/step); " +
        std::to_string(mixed_steps) + " steps with prompt chunks, " + format_fixed(mixed_s, 2) +
        " s (" + format_fixed(per(mixed_s * 1000, mixed_steps), 1) + " ms/step); " +
        format_fixed(host_s, 3) + " s of steps outside the forward pass (" +
        format_fixed(per(host_s * 1000, steps), 3) + " ms/step), " + std::to_string(overlapped) +
        " tokens' text released during a pass; wall " + format_fixed(phase.wall, 2) + " s");
    report.set_figure(name + ".prompt_tokens_computed", prompt);
    report.set_figure(name + ".decode_only_steps", decode_steps);
    report.set_figure(name + ".decode_only_s", decode_s);
    report.set_figure(name + ".mixed_steps", mixed_steps);
    report.set_figure(name + ".mixed_s", mixed_s);
    report.set_figure(name + ".mean_decode_rows_per_step", per(static_cast<double>(rows), steps));
    report.set_figure(name + ".host_s", host_s);
    report.set_figure(name + ".host_ms_per_step", per(host_s * 1000, steps));
    report.set_figure(name + ".overlapped_outputs", overlapped);
}

// The preset's temporary folder (about 2 GB for `small`), removed on every way out of run(),
// a model that fails to load included.
struct TempFolder {
    std::filesystem::path path;
    TempFolder() = default;
    TempFolder(const TempFolder&) = delete;
    TempFolder& operator=(const TempFolder&) = delete;
    ~TempFolder() {
        if (!path.empty()) {
            std::error_code ec;
            std::filesystem::remove_all(path, ec);
        }
    }
};

int run(const ServeBenchOptions& options) {
    // Before anything is written or measured: a cuda run without a GPU is refused here, where the
    // server itself would fall back to the CPU (serve_bench_options.h).
    Result<ServeBenchDevice> device = serve_bench_device(
        options.backend, inference::build_features(), inference::visible_gpus());
    if (!device.ok()) {
        std::cerr << "sluice bench serve: " << device.status().message() << "\n";
        return 2;
    }
    BenchReport report("serve");
    TempFolder temp;
    std::string model = options.model;
    if (model.empty()) {
        temp.path = std::filesystem::temp_directory_path() /
                    ("sluice-bench-serve-" + std::to_string(std::random_device{}()));
        auto tokenizer = open_cli_tokenizer({});
        if (!tokenizer.ok()) {
            std::cerr << "sluice bench serve: " << tokenizer.status().message() << "\n";
            return 1;
        }
        inference::TinyModelOptions tiny{.preset = inference::TinyPreset::kSmall};
        tiny.write_tokenizer = [&](const std::string& dir) {
            return inference::write_hf_tokenizer_files(**tokenizer, dir);
        };
        auto written = inference::write_tiny_model(temp.path.string(), tiny);
        if (!written.ok()) {
            std::cerr << "sluice bench serve: " << written.status().message() << "\n";
            return 1;
        }
        model = temp.path.string();
    }
    ModelHost host(serve_bench_settings(options, model), nullptr);
    if (Status loaded = host.load(); !loaded.ok()) {
        std::cerr << "sluice bench serve: " << loaded.message() << "\n";
        return 1;
    }
    Metrics metrics(build_info());
    // Enough connection threads kept for every client and the whole overload burst: a thread
    // started for a connection waits for its first time slice behind the engine's threads on a
    // busy machine, where a waiting one is woken at once (docs/benchmarks.md, Serving).
    HttpServer server({.host = "127.0.0.1", .port = 0, .threads = options.clients * 5 + 4,
                       .access_log = false},
                      metrics);
    add_openai_routes(server, host);
    if (Status bound = server.bind(); !bound.ok()) {
        std::cerr << "sluice bench serve: " << bound.message() << "\n";
        return 1;
    }
    std::jthread serving([&] { (void)server.serve(); });
    const int port = server.port();
    std::mt19937 rng(1);

    // 1 and 2: the same mix, one client then N.
    const int prompt_words[] = {20, 80, 300};
    const int output_tokens[] = {16, 48, 96};
    auto mix = [&](int i) {
        std::mt19937 local(static_cast<uint32_t>(i));
        return std::tuple<std::string, std::string, int>(
            "You answer questions about orders. " + std::to_string(i), words(local, prompt_words[i % 3]),
            output_tokens[(i / 3) % 3]);
    };
    auto engine_stats = [&] { return host.engine()->stats().scheduler; };
    auto measured = [&](int clients, int per_client, int first_index) {
        const inference::SchedulerStats before = engine_stats();
        Phase phase = run_clients(port, clients, per_client, first_index, mix);
        phase.before = before;
        // The engine publishes its counters after the step that finished the last request,
        // which may be just after that request's client saw its end.
        for (int i = 0; i < 100 && engine_stats().running > 0; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        phase.after = engine_stats();
        return phase;
    };
    const ServeBenchBatch1 batch1 = serve_bench_batch1(options.backend);
    // Untimed, and before the first phase's counters are read.
    for (int i = 0; i < batch1.warm_up_requests; ++i) {
        auto [system, user, ignored] = mix(batch1.warm_up_first_index + i);
        (void)stream_chat(port, system, user, 4);
    }
    Phase single = measured(1, batch1.requests, batch1.first_index);
    Phase many = measured(options.clients, options.requests, 0);
    auto row = [&](const std::string& name, const Phase& phase, int clients) {
        std::vector<double> ttft;
        std::vector<double> gaps;
        int ok = 0;
        for (const auto& s : phase.samples) {
            ok += s.status == 200 ? 1 : 0;
            ttft.push_back(s.ttft);
            gaps.insert(gaps.end(), s.gaps.begin(), s.gaps.end());
        }
        report.add_row({name, device->backend, std::to_string(clients), std::to_string(ok),
                        format_fixed(static_cast<double>(ok) / phase.wall, 2),
                        format_fixed(phase.output_tps(), 1),
                        format_fixed(percentile(ttft, 0.5) * 1000, 0),
                        format_fixed(percentile(ttft, 0.99) * 1000, 0),
                        format_fixed(percentile(gaps, 0.5) * 1000, 0),
                        format_fixed(percentile(gaps, 0.99) * 1000, 0)});
        report.set_figure(name + ".output_tok_s", phase.output_tps());
        report.set_figure(name + ".requests_s", static_cast<double>(ok) / phase.wall);
        report.set_figure(name + ".ttft_p50_ms", percentile(ttft, 0.5) * 1000);
        report.set_figure(name + ".ttft_p99_ms", percentile(ttft, 0.99) * 1000);
        report.set_figure(name + ".itl_p50_ms", percentile(gaps, 0.5) * 1000);
        report.set_figure(name + ".itl_p99_ms", percentile(gaps, 0.99) * 1000);
    };
    report.set_columns({"phase", "backend", "clients", "requests", "req/s", "output tok/s",
                        "TTFT p50 ms", "TTFT p99 ms", "ITL p50 ms", "ITL p99 ms"});
    row("batch1", single, 1);
    row("concurrent", many, options.clients);
    describe_steps(report, "batch1", single);
    describe_steps(report, "concurrent", many);
    report.set_figure("concurrent_over_batch1", many.output_tps() / single.output_tps());

    // 3: a shared document, cold then warm.
    std::mt19937 doc_rng(7);
    const std::string document =
        "Answer from this document only.\n" + words(doc_rng, options.prefix_tokens);
    Sample cold = stream_chat(port, document, "What is the refund window?", 4);
    Sample warm = stream_chat(port, document, "Who pays for shipping?", 4);
    report.add_note("shared prefix of ~" + std::to_string(options.prefix_tokens) +
                    " tokens: TTFT cold " + format_fixed(cold.ttft * 1000, 0) + " ms, warm " +
                    format_fixed(warm.ttft * 1000, 0) + " ms (" +
                    format_fixed(cold.ttft / std::max(warm.ttft, 1e-9), 1) + "x)");
    report.set_figure("prefix.cold_ttft_ms", cold.ttft * 1000);
    report.set_figure("prefix.warm_ttft_ms", warm.ttft * 1000);
    report.set_figure("prefix.speedup", cold.ttft / std::max(warm.ttft, 1e-9));

    // 4: a burst of 4N non-streaming requests against a queue of N.
    std::atomic<int> accepted_ok{0};
    std::atomic<int> accepted_failed{0};
    std::vector<double> refusal_ms;
    std::map<std::string, int> failures;  // what the failed ones got, by kind
    std::mutex mutex;
    {
        std::vector<std::jthread> burst;
        for (int i = 0; i < options.clients * 4; ++i) {
            burst.emplace_back([&, i] {
                httplib::Client client("127.0.0.1", port);
                client.set_read_timeout(600, 0);
                json body = {{"messages", json::array({{{"role", "user"},
                                                        {"content", "burst " + std::to_string(i)}}})},
                             {"max_tokens", 8}};
                const auto start = Clock::now();
                auto res = client.Post("/v1/chat/completions", body.dump(), "application/json");
                const double ms = seconds(Clock::now() - start) * 1000;
                if (res && res->status == 429) {
                    std::lock_guard lock(mutex);
                    refusal_ms.push_back(ms);
                } else if (res && res->status == 200) {
                    ++accepted_ok;
                } else {
                    ++accepted_failed;
                    std::lock_guard lock(mutex);
                    ++failures[res ? "HTTP " + std::to_string(res->status)
                                   : httplib::to_string(res.error())];
                }
            });
        }
    }
    report.add_note("overload burst of " + std::to_string(options.clients * 4) + " (queue " +
                    std::to_string(options.clients) + "): " + std::to_string(refusal_ms.size()) +
                    " answered 429 (p50 " + format_fixed(percentile(refusal_ms, 0.5), 1) +
                    " ms, max " + format_fixed(percentile(refusal_ms, 1.0), 1) + " ms), " +
                    std::to_string(accepted_ok.load()) + " accepted and finished, " +
                    std::to_string(accepted_failed.load()) + " failed");
    for (const auto& [what, count] : failures) {
        report.add_note("  failed with " + what + ": " + std::to_string(count));
    }
    report.set_figure("overload.refused", refusal_ms.size());
    report.set_figure("overload.refusal_p50_ms", percentile(refusal_ms, 0.5));
    report.set_figure("overload.refusal_max_ms", percentile(refusal_ms, 1.0));
    report.set_figure("overload.accepted_finished", accepted_ok.load());
    report.set_figure("overload.accepted_failed", accepted_failed.load());
    report.set_figure("http_threads_peak", server.thread_stats().peak);
    report.add_note("model " + host.model_id() + ", weights " + options.weights +
                    ", max_batch_tokens " + std::to_string(options.max_batch_tokens) +
                    ", overlap_output " + (options.overlap_output ? "true" : "false") +
                    ", backend " + device->backend + " on " + device->device);
    report.set_figure("max_batch_tokens", options.max_batch_tokens);
    report.set_figure("overlap_output", options.overlap_output);
    report.set_figure("backend", device->backend);
    report.set_figure("device", device->device);
    report.set_figure("weights", options.weights);

    server.stop();
    serving.join();
    report.print(options.json);
    return 0;
}

}  // namespace

void add_serve_bench(Cli& cli) {
    auto* command = cli.bench().add_subcommand(
        "serve", "Serving over HTTP: throughput, TTFT, inter-token latency, prefix cache, 429s");
    auto options = std::make_shared<ServeBenchOptions>();
    add_serve_bench_options(*command, *options);
    cli.on_run(command, [options] { return run(*options); });
}

}  // namespace sluice::app
