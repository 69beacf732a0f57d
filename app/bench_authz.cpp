#include "app/bench_authz.h"

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <iostream>
#include <map>
#include <random>
#include <thread>

#include "app/bench_report.h"
#include "app/build_info.h"
#include "app/http_errors.h"
#include "app/http_server.h"
#include "app/instruction_counter.h"
#include "governance/governance.h"

namespace sluice::app {
namespace {

using governance::Privilege;
using governance::SecurableType;
using Clock = std::chrono::steady_clock;

struct World {
    std::vector<std::int64_t> users;
    std::vector<std::string> tables;
    std::string token;  // for the HTTP part; a user with SELECT on catalog c0
    std::int64_t grants = 0;
    std::int64_t principals = 0;
};

std::string numbered(std::string prefix, std::size_t i) {
    return prefix.append(std::to_string(i));
}

Status build_world(governance::Governance& gov, World& world) {
    governance::Store& store = gov.store();
    std::mt19937_64 random(42);
    constexpr int kChains = 20;
    constexpr int kDepth = 5;
    constexpr int kUsers = 1000 - kChains * kDepth;
    std::vector<std::string> bottoms;
    std::vector<std::string> groups;
    for (int c = 0; c < kChains; ++c) {
        for (int d = 0; d < kDepth; ++d) {
            std::string name = numbered(numbered("g", static_cast<std::size_t>(c)) + "_", static_cast<std::size_t>(d));
            SLUICE_RETURN_IF_ERROR(store.create_principal(name, governance::PrincipalKind::kGroup, false).status());
            groups.push_back(name);
            if (d > 0) {
                // g_c_(d-1) is inside g_c_d: a user in the bottom group is 5 groups deep.
                SLUICE_RETURN_IF_ERROR(store.add_member(name, groups[groups.size() - 2]));
            }
        }
        bottoms.push_back(groups[groups.size() - kDepth]);
    }
    std::vector<std::string> user_names;
    for (int u = 0; u < kUsers; ++u) {
        std::string name = numbered("user", static_cast<std::size_t>(u));
        SLUICE_ASSIGN_OR_RETURN(auto p, store.create_principal(name, governance::PrincipalKind::kUser, false));
        world.users.push_back(p.id);
        user_names.push_back(name);
        for (int k = 0; k < 2; ++k) {
            SLUICE_RETURN_IF_ERROR(store.add_member(bottoms[random() % bottoms.size()], name));
        }
    }
    world.principals = kUsers + kChains * kDepth;
    SLUICE_ASSIGN_OR_RETURN(auto owner, store.create_principal("owner", governance::PrincipalKind::kUser, false));
    std::vector<std::pair<SecurableType, std::string>> securables;
    for (std::size_t c = 0; c < 10; ++c) {
        std::string catalog = numbered("c", c);
        SLUICE_RETURN_IF_ERROR(store.create_securable(SecurableType::kCatalog, catalog, owner.id, "", {}).status());
        securables.emplace_back(SecurableType::kCatalog, catalog);
        for (std::size_t s = 0; s < 10; ++s) {
            std::string schema = numbered(catalog + ".s", s);
            SLUICE_RETURN_IF_ERROR(store.create_securable(SecurableType::kSchema, schema, owner.id, "", {}).status());
            securables.emplace_back(SecurableType::kSchema, schema);
            for (std::size_t t = 0; t < 20; ++t) {
                std::string table = numbered(schema + ".t", t);
                SLUICE_RETURN_IF_ERROR(store.create_securable(SecurableType::kTable, table, owner.id, "", {}).status());
                securables.emplace_back(SecurableType::kTable, table);
                world.tables.push_back(table);
            }
        }
    }
    const std::vector<Privilege> privileges = {Privilege::kUseCatalog, Privilege::kUseSchema,
                                               Privilege::kSelect, Privilege::kModify,
                                               Privilege::kBrowse};
    while (world.grants < 10000) {
        const auto& [type, name] = securables[random() % securables.size()];
        Privilege privilege = privileges[random() % privileges.size()];
        if (!governance::privilege_grantable_on(privilege, type)) {
            continue;
        }
        // Mostly to groups, as deployments do; some to users directly.
        std::string grantee = random() % 4 == 0 ? user_names[random() % user_names.size()]
                                                : groups[random() % groups.size()];
        SLUICE_ASSIGN_OR_RETURN(auto securable, store.securable(type, name));
        SLUICE_RETURN_IF_ERROR(store.update_permissions(securable.id, type, {{grantee, {privilege}, {}}}, owner.id));
        ++world.grants;
    }
    SLUICE_ASSIGN_OR_RETURN(auto reader, store.create_principal("reader", governance::PrincipalKind::kUser, false));
    SLUICE_ASSIGN_OR_RETURN(auto c0, store.securable(SecurableType::kCatalog, "c0"));
    SLUICE_RETURN_IF_ERROR(store.update_permissions(
        c0.id, SecurableType::kCatalog,
        {{"reader", {Privilege::kUseCatalog, Privilege::kUseSchema, Privilege::kSelect}, {}}}, owner.id));
    SLUICE_ASSIGN_OR_RETURN(auto token, store.create_token(reader.id, "bench", std::nullopt));
    world.token = token.secret;
    return Status();
}

double percentile(std::vector<double>& samples, double p) {
    std::sort(samples.begin(), samples.end());
    return samples[static_cast<std::size_t>(p * static_cast<double>(samples.size() - 1))];
}

enum class AuditMode {
    kOff,      // a sink that drops records
    kDurable,  // the answer waits until the request's records are committed
    kQueued    // the answer goes once the request's records are queued for the writer
};

struct HttpRun {
    double rps = 0;
    // CPU time of the whole process (server, clients, audit writer) per answered request: less
    // sensitive than throughput to how much of the machine other work leaves to this process.
    double cpu_us_per_request = 0;
    // Instructions retired by the process per answered request, from opening the data directory
    // to closing it (so the audit writer's last batch and final checkpoint count); 0 when the
    // system offers no instruction counter.
    double instructions_per_request = 0;
};

double process_cpu_us() {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    auto us = [](const timeval& t) {
        return static_cast<double>(t.tv_sec) * 1e6 + static_cast<double>(t.tv_usec);
    };
    return us(usage.ru_utime) + us(usage.ru_stime);
}

// Requests per second against an in-process server whose one route authenticates, authorises
// and reads a table, auditing as `mode` says. Each run opens the data directory afresh, with
// the audit log acknowledging as the mode asks; the log's destructor writes what is queued.
HttpRun http_run(const std::filesystem::path& dir, const World& world, AuditMode mode,
                 double seconds, std::chrono::microseconds gather) {
    governance::GovernanceOptions options;
    options.audit.gather = gather;
    options.audit.acknowledge = mode == AuditMode::kQueued ? governance::AuditAcknowledge::kQueued
                                                           : governance::AuditAcknowledge::kDurable;
    auto opened = governance::Governance::open(dir, options);
    if (!opened.ok()) {
        std::cerr << "sluice bench authz: " << opened.status().message() << "\n";
        return {};
    }
    governance::Governance& gov = **opened;
    governance::DiscardingAuditSink discard;
    governance::Authorizer unaudited(gov.store(), discard);
    const bool audited = mode != AuditMode::kOff;
    governance::Authorizer& authorizer = audited ? gov.authorizer() : unaudited;
    Metrics metrics(build_info());
    HttpServer server(HttpServerOptions{.host = "127.0.0.1", .port = 0, .threads = 4, .access_log = false}, metrics);
    server.set_authenticator(
        [&gov, audited](const httplib::Request& req, const std::string& request_id,
                        const std::string& client) -> Result<Identity> {
            if (audited) {
                SLUICE_ASSIGN_OR_RETURN(
                    auto ctx, gov.authenticate(req.get_header_value("Authorization"), request_id,
                                               client, true));
                return Identity{ctx.principal_id, ctx.principal, ctx.token_id, ctx.audit_ticket};
            }
            SLUICE_ASSIGN_OR_RETURN(auto auth, gov.store().authenticate(req.get_header_value("Authorization").substr(7)));
            return Identity{auth.principal.id, auth.principal.name, auth.token_id};
        },
        {});
    server.set_request_finisher([&gov](const RequestInfo& info) {
        governance::RequestContext ctx;
        ctx.audit_ticket = info.identity->audit_ticket;
        return gov.finish_request(ctx);
    });
    server.route("GET", "/tables/([^/]+)",
                 [&](const RequestInfo& info, const httplib::Request& req, httplib::Response& res) {
                     governance::RequestContext ctx{info.identity->principal_id, info.identity->principal,
                                                    info.request_id, info.client_address, info.identity->token_id};
                     ctx.audit_ticket = info.identity->audit_ticket;
                     std::string name = req.matches[1].str();
                     Status allowed = authorizer.require(ctx, Privilege::kSelect, SecurableType::kTable, name);
                     if (!allowed.ok()) {
                         return send_status(res, allowed, info.request_id);
                     }
                     auto table = gov.store().securable(SecurableType::kTable, name);
                     res.set_content("{\"full_name\":\"" + table->full_name + "\"}", "application/json");
                 });
    if (!server.bind().ok()) {
        return {};
    }
    std::jthread serving([&server] { (void)server.serve(); });
    std::atomic<std::int64_t> done{0};
    const double cpu_start = process_cpu_us();
    auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    {
        std::vector<std::jthread> clients;
        for (int t = 0; t < 4; ++t) {
            clients.emplace_back([&, t] {
                httplib::Client client("127.0.0.1", server.port());
                client.set_keep_alive(true);
                client.set_tcp_nodelay(true);
                httplib::Headers headers = {{"Authorization", "Bearer " + world.token}};
                std::size_t i = static_cast<std::size_t>(t);
                while (Clock::now() < deadline) {
                    // Tables of c0 (the first 200): the reader may read them.
                    auto result = client.Get("/tables/" + world.tables[i++ % 200], headers);
                    if (result && result->status == 200) {
                        done.fetch_add(1);
                    }
                }
            });
        }
    }
    const double cpu_used = process_cpu_us() - cpu_start;
    server.stop();
    const auto answered = static_cast<double>(done.load());
    return HttpRun{answered / seconds, answered > 0 ? cpu_used / answered : 0};
}

// http_run(), with the instructions it took when `count`: counted from before the data directory
// opens (so that the audit writer's thread counts) until every thread of the run has ended.
// Counting makes every context switch dearer (in a virtual machine the counter's state is saved
// and restored through the hypervisor), so it is asked for apart from the CPU time figures.
HttpRun http_throughput(const std::filesystem::path& dir, const World& world, AuditMode mode,
                        double seconds, std::chrono::microseconds gather, bool count) {
    if (!count) {
        return http_run(dir, world, mode, seconds, gather);
    }
    InstructionCounter counter;
    HttpRun run = http_run(dir, world, mode, seconds, gather);
    const double answered = run.rps * seconds;
    if (auto instructions = counter.read(); instructions && answered > 0) {
        run.instructions_per_request = static_cast<double>(*instructions) / answered;
    }
    return run;
}

struct AuthzBenchOptions {
    bool json = false;
    double seconds = 3.0;
    int rounds = 5;
    bool durable = true;  // measure the `durable` acknowledgement
    bool queued = true;   // measure the `queued` acknowledgement
    // The audit writer's gathering interval (AuditLogOptions::gather), to measure its trade-off.
    std::int64_t gather_us = governance::AuditLogOptions{}.gather.count();
    // Count instructions per request instead of leaving the CPU time undisturbed.
    bool instructions = false;
};

// Names of one HTTP mode in the table and in the JSON (kept from earlier versions of the bench:
// `http_rps_audit_on` and `audit_throughput_cost` are the server's default, `queued`).
struct ModeFigures {
    const char* label;
    const char* rps_key;
    const char* cost_key;
};

const ModeFigures& mode_figures(AuditMode mode) {
    static const ModeFigures kOff{"HTTP, audit off", "http_rps_audit_off", ""};
    static const ModeFigures kDurable{"HTTP, audit on, answer after the commit",
                                      "http_rps_audit_durable", "audit_throughput_cost_durable"};
    static const ModeFigures kQueued{"HTTP, audit on, answer after queueing", "http_rps_audit_on",
                                     "audit_throughput_cost"};
    switch (mode) {
        case AuditMode::kOff: return kOff;
        case AuditMode::kDurable: return kDurable;
        case AuditMode::kQueued: return kQueued;
    }
    return kOff;
}

struct Spread {
    double median = 0;
    double min = 0;
    double max = 0;
};

Spread spread(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    const std::size_t n = values.size();
    // The median of an even count is the mean of the middle two.
    double median = n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
    return Spread{median, values.front(), values.back()};
}

int run_bench(const AuthzBenchOptions& options) {
    auto dir = std::filesystem::temp_directory_path() /
               numbered("sluice-bench-authz-", static_cast<std::size_t>(std::random_device{}()));
    std::filesystem::create_directories(dir);
    int exit_code = 0;
    {
        auto gov = governance::Governance::open(dir);
        World world;
        Status built = gov.ok() ? build_world(**gov, world) : gov.status();
        // The world is committed; the HTTP runs open the directory themselves.
        if (!built.ok()) {
            std::cerr << "sluice bench authz: " << built.message() << "\n";
            std::filesystem::remove_all(dir);
            return 1;
        }
        governance::Governance& g = **gov;
        std::mt19937_64 random(7);
        std::vector<double> check_us;
        std::int64_t allowed = 0;
        for (int i = 0; i < 200000; ++i) {
            std::int64_t user = world.users[random() % world.users.size()];
            const std::string& table = world.tables[random() % world.tables.size()];
            auto start = Clock::now();
            auto decision = g.authorizer().check(user, Privilege::kSelect, SecurableType::kTable, table);
            check_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
            allowed += decision.ok() && decision->allowed ? 1 : 0;
        }
        std::vector<double> require_us;
        for (int i = 0; i < 20000; ++i) {
            std::int64_t user = world.users[random() % world.users.size()];
            governance::RequestContext ctx{user, "bench", "req_bench", "127.0.0.1", "tok_bench"};
            auto start = Clock::now();
            (void)g.authorizer().require(ctx, Privilege::kSelect, SecurableType::kTable,
                                         world.tables[random() % world.tables.size()]);
            require_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
        }
        // Interleaved rounds, so that whatever else runs on the machine weighs on each mode
        // alike; the order rotates from round to round so that no mode always runs first (on a
        // fresh page cache) or last. The cost is taken within each round (audited against the
        // unaudited run beside it) and summarised by its median and its range: one round that
        // another build starves moves the range, not the median.
        std::vector<AuditMode> modes = {AuditMode::kOff};
        if (options.durable) {
            modes.push_back(AuditMode::kDurable);
        }
        if (options.queued) {
            modes.push_back(AuditMode::kQueued);
        }
        std::map<AuditMode, std::vector<double>> rps;
        std::map<AuditMode, std::vector<double>> cpu;
        std::map<AuditMode, std::vector<double>> instructions;
        for (int round = 0; round < options.rounds; ++round) {
            for (std::size_t m = 0; m < modes.size(); ++m) {
                AuditMode mode = modes[(m + static_cast<std::size_t>(round)) % modes.size()];
                HttpRun run = http_throughput(dir, world, mode, options.seconds,
                                              std::chrono::microseconds(options.gather_us),
                                              options.instructions);
                rps[mode].push_back(run.rps);
                cpu[mode].push_back(run.cpu_us_per_request);
                instructions[mode].push_back(run.instructions_per_request);
            }
        }

        BenchReport report("authz");
        // The last two columns only when instructions are counted.
        const std::size_t columns = options.instructions ? 11 : 9;
        auto add_row = [&report, columns](std::vector<std::string> row) {
            row.resize(columns);
            report.add_row(std::move(row));
        };
        std::vector<std::string> headings = {"measure", "p50 µs", "p99 µs", "per second", "range",
                                             "audit cost", "cost range", "CPU µs/request",
                                             "CPU cost", "instructions/request",
                                             "instruction cost"};
        headings.resize(columns);
        report.set_columns(std::move(headings));
        double check_p50 = percentile(check_us, 0.50);
        double check_p99 = percentile(check_us, 0.99);
        double require_p50 = percentile(require_us, 0.50);
        double require_p99 = percentile(require_us, 0.99);
        add_row({"check (in-process)", format_fixed(check_p50, 2), format_fixed(check_p99, 2)});
        add_row({"require + audit record", format_fixed(require_p50, 2),
                 format_fixed(require_p99, 2)});
        report.set_figure("principals", world.principals);
        report.set_figure("grants", world.grants);
        report.set_figure("group_depth", 5);
        report.set_figure("check_p50_us", check_p50);
        report.set_figure("check_p99_us", check_p99);
        report.set_figure("check_allowed_fraction", static_cast<double>(allowed) / 200000.0);
        report.set_figure("require_audited_p50_us", require_p50);
        report.set_figure("require_audited_p99_us", require_p99);
        report.set_figure("rounds", options.rounds);
        report.set_figure("audit_gather_us", static_cast<double>(options.gather_us));
        const std::vector<double>& off = rps[AuditMode::kOff];
        const std::vector<double>& off_cpu = cpu[AuditMode::kOff];
        const std::vector<double>& off_instructions = instructions[AuditMode::kOff];
        const bool counted =
            std::ranges::all_of(off_instructions, [](double n) { return n > 0; });
        for (AuditMode mode : {AuditMode::kOff, AuditMode::kDurable, AuditMode::kQueued}) {
            auto found = rps.find(mode);
            if (found == rps.end()) {
                continue;
            }
            const ModeFigures& names = mode_figures(mode);
            Spread throughput = spread(found->second);
            report.set_figure(names.rps_key, throughput.median);
            report.set_figure(std::string(names.rps_key) + "_rounds", found->second);
            const std::vector<double>& mode_cpu = cpu[mode];
            Spread cpu_us = spread(mode_cpu);
            report.set_figure(std::string(names.rps_key) + "_cpu_us_per_request", cpu_us.median);
            std::vector<std::string> row = {names.label, "", "", format_fixed(throughput.median, 0),
                                            format_fixed(throughput.min, 0) + "–" +
                                                format_fixed(throughput.max, 0),
                                            "", "", format_fixed(cpu_us.median, 1), "", "", ""};
            const std::vector<double>& mode_instructions = instructions[mode];
            if (counted) {
                Spread per_request = spread(mode_instructions);
                report.set_figure(std::string(names.rps_key) + "_instructions_per_request",
                                  per_request.median);
                row[9] = format_fixed(per_request.median, 0);
            }
            if (mode != AuditMode::kOff) {
                std::vector<double> costs;
                for (std::size_t round = 0; round < found->second.size(); ++round) {
                    costs.push_back(off[round] > 0 ? 1.0 - found->second[round] / off[round] : 0.0);
                }
                Spread cost = spread(costs);
                report.set_figure(names.cost_key, cost.median);
                report.set_figure(std::string(names.cost_key) + "_min", cost.min);
                report.set_figure(std::string(names.cost_key) + "_max", cost.max);
                row[5] = format_fixed(100 * cost.median, 1) + "%";
                row[6] = format_fixed(100 * cost.min, 1) + "% – " +
                         format_fixed(100 * cost.max, 1) + "%";
                // The CPU cost: extra CPU per request against the unaudited run of the round.
                std::vector<double> cpu_costs;
                for (std::size_t round = 0; round < mode_cpu.size(); ++round) {
                    cpu_costs.push_back(
                        off_cpu[round] > 0 ? mode_cpu[round] / off_cpu[round] - 1.0 : 0.0);
                }
                Spread cpu_cost = spread(cpu_costs);
                report.set_figure(std::string(names.cost_key) + "_cpu", cpu_cost.median);
                report.set_figure(std::string(names.cost_key) + "_cpu_min", cpu_cost.min);
                report.set_figure(std::string(names.cost_key) + "_cpu_max", cpu_cost.max);
                row[8] = format_fixed(100 * cpu_cost.median, 1) + "% (" +
                         format_fixed(100 * cpu_cost.min, 1) + "–" +
                         format_fixed(100 * cpu_cost.max, 1) + "%)";
                // The same against instructions, which other work on the machine moves least.
                const bool mode_counted = std::ranges::all_of(
                    mode_instructions, [](double n) { return n > 0; });
                if (counted && mode_counted) {
                    std::vector<double> extra;
                    for (std::size_t round = 0; round < mode_instructions.size(); ++round) {
                        extra.push_back(mode_instructions[round] / off_instructions[round] - 1.0);
                    }
                    Spread instruction_cost = spread(extra);
                    const std::string key = std::string(names.cost_key) + "_instructions";
                    report.set_figure(key, instruction_cost.median);
                    report.set_figure(key + "_min", instruction_cost.min);
                    report.set_figure(key + "_max", instruction_cost.max);
                    row[10] = format_fixed(100 * instruction_cost.median, 1) + "% (" +
                              format_fixed(100 * instruction_cost.min, 1) + "–" +
                              format_fixed(100 * instruction_cost.max, 1) + "%)";
                }
            }
            add_row(std::move(row));
        }
        report.add_note("machine: " + describe_machine());
        report.add_note("HTTP: 4 server threads, 4 keep-alive client threads in the same process, " +
                        std::to_string(options.rounds) + " interleaved rounds of " +
                        format_fixed(options.seconds, 1) +
                        " s per mode, the order rotating; medians and ranges over the rounds, the "
                        "audit cost taken within each round (throughput lost; CPU cost: extra "
                        "process CPU time per request; instruction cost: extra instructions per "
                        "request, from opening the data directory to closing it); each request "
                        "authenticates (token hash lookup), authorises SELECT on a table and "
                        "reads it; audited runs write 2 hash-chained records per request through "
                        "the audit log's group commit, the answer waiting for their commit "
                        "(committed by the waiting request itself when nobody else is "
                        "committing) or only for their place in the "
                        "queue (committed by the writer thread)");
        if (options.instructions && !counted) {
            report.add_note("instructions not counted: " +
                            InstructionCounter().why_unavailable());
        }
        report.print(options.json);
    }
    std::filesystem::remove_all(dir);
    return exit_code;
}

}  // namespace

void add_authz_bench(Cli& cli) {
    auto* command = cli.bench().add_subcommand(
        "authz", "Authorization check latency and audited HTTP throughput at catalog scale");
    auto options = std::make_shared<AuthzBenchOptions>();
    auto modes = std::make_shared<std::vector<std::string>>();
    command->add_flag("--json", options->json, "Print the figures as one JSON object last");
    command->add_flag("--instructions", options->instructions,
                      "Count instructions per request (steadier than CPU time on a shared "
                      "machine, but counting slows every context switch)");
    command->add_option("--seconds", options->seconds, "Seconds per HTTP run")
        ->check(CLI::Range(0.5, 60.0));
    command->add_option("--rounds", options->rounds, "Interleaved rounds of the HTTP modes")
        ->check(CLI::Range(1, 20));
    command
        ->add_option("--gather-us", options->gather_us,
                     "How long the audit writer gathers records before committing them (µs)")
        ->check(CLI::Range(0, 1000000));
    command
        ->add_option("--modes", *modes,
                     "Audited HTTP modes to measure beside audit off (default: both)")
        ->delimiter(',')
        ->check(CLI::IsMember({"durable", "queued"}));
    cli.on_run(command, [options, modes] {
        if (!modes->empty()) {
            options->durable = std::ranges::find(*modes, "durable") != modes->end();
            options->queued = std::ranges::find(*modes, "queued") != modes->end();
        }
        return run_bench(*options);
    });
}

}  // namespace sluice::app
