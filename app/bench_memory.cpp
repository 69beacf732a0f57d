#include "app/bench_memory.h"

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "app/bench_report.h"

namespace sluice::app {

TriadResult measure_triad_bandwidth(int threads, std::size_t elements, int repeats) {
    std::vector<double> a(elements, 0.0);
    std::vector<double> b(elements, 1.0);
    std::vector<double> c(elements, 2.0);
    const double scalar = 3.0;
    double best_seconds = 1e30;
    for (int repeat = 0; repeat < repeats; ++repeat) {
        auto start = std::chrono::steady_clock::now();
        {
            std::vector<std::jthread> workers;
            std::size_t per_thread = (elements + threads - 1) / threads;
            for (int t = 0; t < threads; ++t) {
                std::size_t begin = std::min(elements, per_thread * t);
                std::size_t end = std::min(elements, begin + per_thread);
                workers.emplace_back([&, begin, end] {
                    for (std::size_t i = begin; i < end; ++i) {
                        a[i] = b[i] + scalar * c[i];
                    }
                });
            }
        }
        double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        best_seconds = std::min(best_seconds, seconds);
    }
    double bytes = 3.0 * sizeof(double) * static_cast<double>(elements);
    return TriadResult{.threads = threads, .best_gb_s = bytes / best_seconds / 1e9};
}

void add_memory_bench(Cli& cli) {
    auto* command = cli.bench().add_subcommand(
        "memory", "Memory bandwidth by a STREAM-style triad, one thread and all threads");
    auto json = std::make_shared<bool>(false);
    auto mib = std::make_shared<int>(256);
    command->add_flag("--json", *json, "Print the figures as one JSON object last");
    command->add_option("--array-mib", *mib, "Size of each of the three arrays in MiB")
        ->check(CLI::Range(8, 8192));
    cli.on_run(command, [json, mib] {
        std::size_t elements = static_cast<std::size_t>(*mib) * 1024 * 1024 / sizeof(double);
        int all = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
        BenchReport report("memory");
        report.set_columns({"threads", "triad GB/s"});
        for (int threads : {1, all}) {
            TriadResult result = measure_triad_bandwidth(threads, elements, 10);
            report.add_row({std::to_string(threads), format_fixed(result.best_gb_s, 2)});
            report.set_figure("triad_gb_s_" + std::string(threads == 1 ? "1thread" : "all"),
                              result.best_gb_s);
            if (all == 1) {
                break;
            }
        }
        report.set_figure("array_mib", *mib);
        report.print(*json);
        return 0;
    });
}

}  // namespace sluice::app
