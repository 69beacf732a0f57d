#include "app/bench_limits.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <iostream>
#include <mutex>
#include <random>
#include <thread>

#include "app/bench_report.h"
#include "governance/governance.h"

namespace sluice::app {
namespace {

using governance::LimitKind;
using governance::LimitSpec;
using governance::RequestContext;
using Clock = std::chrono::steady_clock;

constexpr int kUsers = 200;
constexpr int kGroups = 10;
constexpr std::int64_t kHuge = 1'000'000'000'000;

struct Samples {
    std::mutex mutex;
    std::vector<double> reserve_us;
    std::vector<double> settle_us;
    void add(std::vector<double>& into, const std::vector<double>& from) {
        std::lock_guard lock(mutex);
        into.insert(into.end(), from.begin(), from.end());
    }
};

double percentile(std::vector<double> samples, double p) {
    if (samples.empty()) {
        return 0;
    }
    std::sort(samples.begin(), samples.end());
    return samples[static_cast<std::size_t>(p * static_cast<double>(samples.size() - 1))];
}

double micros_since(Clock::time_point start) {
    return std::chrono::duration<double, std::micro>(Clock::now() - start).count();
}

Result<std::vector<RequestContext>> build(governance::Governance& gov) {
    governance::Store& store = gov.store();
    governance::Usage& usage = gov.usage();
    for (int g = 0; g < kGroups; ++g) {
        std::string group = std::string("team").append(std::to_string(g));
        SLUICE_RETURN_IF_ERROR(
            store.create_principal(group, governance::PrincipalKind::kGroup, false).status());
        SLUICE_RETURN_IF_ERROR(
            usage.set_limit(LimitSpec{group, "dbrx", LimitKind::kTokensPerDay, kHuge}, "bench")
                .status());
    }
    std::vector<RequestContext> callers;
    for (int u = 0; u < kUsers; ++u) {
        std::string name = std::string("user").append(std::to_string(u));
        SLUICE_ASSIGN_OR_RETURN(auto p,
                                store.create_principal(name, governance::PrincipalKind::kUser, false));
        SLUICE_RETURN_IF_ERROR(
            store.add_member(std::string("team").append(std::to_string(u % kGroups)), name));
        SLUICE_RETURN_IF_ERROR(
            usage.set_limit(LimitSpec{name, "*", LimitKind::kTokensPerMinute, kHuge}, "bench")
                .status());
        callers.push_back(RequestContext{p.id, name, "req_bench", "127.0.0.1", "tok_bench"});
    }
    SLUICE_RETURN_IF_ERROR(
        usage.set_limit(LimitSpec{"", "dbrx", LimitKind::kRequestsPerMinute, kHuge}, "bench")
            .status());
    return callers;
}

// Each thread runs `calls` reserve + (settle or release); returns calls per second.
double run(governance::Governance& gov, const std::vector<RequestContext>& callers, int threads,
           int calls, bool settle, Samples& samples) {
    auto start = Clock::now();
    {
        std::vector<std::jthread> workers;
        for (int t = 0; t < threads; ++t) {
            workers.emplace_back([&, t] {
                std::mt19937 random(static_cast<unsigned>(t));
                std::vector<double> reserve_us;
                std::vector<double> settle_us;
                for (int i = 0; i < calls; ++i) {
                    const RequestContext& ctx = callers[random() % callers.size()];
                    auto begin = Clock::now();
                    auto reservation = gov.usage().reserve(ctx, "dbrx", 500);
                    reserve_us.push_back(micros_since(begin));
                    if (!reservation.ok()) {
                        continue;
                    }
                    begin = Clock::now();
                    if (settle) {
                        governance::UsageReport report;
                        report.tokens = {400, 120, 0};
                        (void)gov.usage().settle(std::move(*reservation), report);
                    } else {
                        auto released = std::move(*reservation);
                    }
                    settle_us.push_back(micros_since(begin));
                }
                samples.add(samples.reserve_us, reserve_us);
                samples.add(samples.settle_us, settle_us);
            });
        }
    }
    double seconds = micros_since(start) / 1e6;
    return static_cast<double>(threads) * calls / seconds;
}

// All threads race for one group budget with room for exactly `fits` calls; returns the tokens
// admitted beyond the budget (0 when the limit holds).
Result<std::int64_t> race(governance::Governance& gov, const std::vector<RequestContext>& callers,
                          int threads, std::int64_t* admitted_calls) {
    constexpr std::int64_t kPerCall = 300;
    constexpr std::int64_t kFits = 37;
    governance::Usage& usage = gov.usage();
    SLUICE_RETURN_IF_ERROR(
        usage.set_limit(LimitSpec{"team0", "race", LimitKind::kTokensPerDay, kFits * kPerCall},
                        "bench")
            .status());
    std::atomic<std::int64_t> admitted{0};
    {
        std::vector<std::jthread> workers;
        for (int t = 0; t < threads; ++t) {
            workers.emplace_back([&, t] {
                for (int i = 0; i < 50; ++i) {
                    // Members of team0: users 0, 10, 20, ...
                    const RequestContext& ctx =
                        callers[static_cast<std::size_t>((t * 50 + i) % (kUsers / kGroups) * kGroups)];
                    auto reservation = usage.reserve(ctx, "race", kPerCall);
                    if (reservation.ok()) {
                        governance::UsageReport report;
                        report.tokens = {kPerCall, 0, 0};
                        if (usage.settle(std::move(*reservation), report).ok()) {
                            admitted.fetch_add(kPerCall);
                        }
                    }
                }
            });
        }
    }
    *admitted_calls = admitted.load() / kPerCall;
    return std::max<std::int64_t>(0, admitted.load() - kFits * kPerCall);
}

int run_bench(bool json, int threads) {
    auto dir = std::filesystem::temp_directory_path() /
               std::string("sluice-bench-limits-").append(std::to_string(std::random_device{}()));
    std::filesystem::create_directories(dir);
    int exit_code = 0;
    {
        auto gov = governance::Governance::open(dir);
        auto callers = gov.ok() ? build(**gov) : Result<std::vector<RequestContext>>(gov.status());
        if (!callers.ok()) {
            std::cerr << "sluice bench limits: " << callers.status().message() << "\n";
            std::filesystem::remove_all(dir);
            return 1;
        }
        Samples memory;
        double memory_rate = run(**gov, *callers, threads, 20000, false, memory);
        Samples durable;
        double durable_rate = run(**gov, *callers, threads, 500, true, durable);
        std::int64_t admitted_calls = 0;
        auto overshoot = race(**gov, *callers, threads, &admitted_calls);
        if (!overshoot.ok()) {
            std::cerr << "sluice bench limits: " << overshoot.status().message() << "\n";
            exit_code = 1;
        }

        BenchReport report("limits");
        report.set_columns({"measure", "p50 µs", "p99 µs", "calls/s"});
        report.add_row({"reserve (in memory)", format_fixed(percentile(memory.reserve_us, 0.5), 2),
                        format_fixed(percentile(memory.reserve_us, 0.99), 2),
                        format_fixed(memory_rate, 0)});
        report.add_row({"release", format_fixed(percentile(memory.settle_us, 0.5), 2),
                        format_fixed(percentile(memory.settle_us, 0.99), 2), ""});
        report.add_row({"reserve, beside durable settles",
                        format_fixed(percentile(durable.reserve_us, 0.5), 2),
                        format_fixed(percentile(durable.reserve_us, 0.99), 2), ""});
        report.add_row({"settle (usage row + audit, durable)",
                        format_fixed(percentile(durable.settle_us, 0.5), 2),
                        format_fixed(percentile(durable.settle_us, 0.99), 2),
                        format_fixed(durable_rate, 0)});
        report.set_figure("threads", threads);
        report.set_figure("limits_per_call", 3);
        report.set_figure("reserve_p50_us", percentile(memory.reserve_us, 0.5));
        report.set_figure("reserve_p99_us", percentile(memory.reserve_us, 0.99));
        report.set_figure("reserve_release_per_s", memory_rate);
        report.set_figure("reserve_durable_p50_us", percentile(durable.reserve_us, 0.5));
        report.set_figure("reserve_durable_p99_us", percentile(durable.reserve_us, 0.99));
        report.set_figure("settle_p50_us", percentile(durable.settle_us, 0.5));
        report.set_figure("settle_p99_us", percentile(durable.settle_us, 0.99));
        report.set_figure("reserve_settle_per_s", durable_rate);
        report.set_figure("race_admitted_calls", admitted_calls);
        report.set_figure("race_overshoot_tokens", overshoot.value_or(-1));
        report.add_note("machine: " + describe_machine());
        report.add_note(std::to_string(threads) + " threads; " + std::to_string(kUsers) +
                        " users in " + std::to_string(kGroups) +
                        " groups; every call checks 3 limits (its user's tokens/min, its group's "
                        "tokens/day, the endpoint's requests/min)");
        report.add_note("race: " + std::to_string(threads) + " threads × 50 calls of 300 tokens "
                        "against a group budget with room for 37 calls: " +
                        std::to_string(admitted_calls) + " admitted, overshoot " +
                        std::to_string(overshoot.value_or(-1)) + " tokens");
        report.print(json);
    }
    std::filesystem::remove_all(dir);
    return exit_code;
}

}  // namespace

void add_limits_bench(Cli& cli) {
    auto* command = cli.bench().add_subcommand(
        "limits", "Rate-limit and token-budget reserve/settle latency under contention");
    auto json = std::make_shared<bool>(false);
    auto threads = std::make_shared<int>(8);
    command->add_flag("--json", *json, "Print the figures as one JSON object last");
    command->add_option("--threads", *threads, "Concurrent callers")->check(CLI::Range(1, 256));
    cli.on_run(command, [json, threads] { return run_bench(*json, *threads); });
}

}  // namespace sluice::app
