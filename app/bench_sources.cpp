#include "app/bench_sources.h"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <libpq-fe.h>

#include "app/bench_report.h"
#include "connectors/postgres_cluster.h"
#include "connectors/postgres_source.h"
#include "connectors/sqlite_source.h"

namespace sluice::app {
namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

struct Options {
    bool json = false;
    int rows = 100000;
    int samples = 200;
};

struct Figures {
    double snapshot_rows_s = 0;
    double p50_ms = 0;
    double p99_ms = 0;
};

double percentile(std::vector<double> values, double p) {
    if (values.empty()) {
        return 0;
    }
    std::sort(values.begin(), values.end());
    const auto index = static_cast<std::size_t>(p * static_cast<double>(values.size() - 1) + 0.5);
    return values[std::min(index, values.size() - 1)];
}

// Drains a snapshot; returns rows per second.
Result<double> time_snapshot(connectors::Source& source, int rows, std::string& checkpoint) {
    const auto start = Clock::now();
    std::size_t seen = 0;
    while (true) {
        SLUICE_ASSIGN_OR_RETURN(connectors::Batch batch,
                                source.poll(checkpoint, connectors::PollOptions{1000}));
        seen += batch.events.size();
        checkpoint = batch.checkpoint;
        SLUICE_RETURN_IF_ERROR(source.acknowledge(checkpoint));
        if (batch.caught_up && seen >= static_cast<std::size_t>(rows)) {
            break;
        }
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (seen != static_cast<std::size_t>(rows)) {
        return internal_error("snapshot delivered " + std::to_string(seen) + " rows, expected " +
                              std::to_string(rows));
    }
    return static_cast<double>(rows) / seconds;
}

// A producer commits one change at a time (`commit(i)`), a consumer waits on the source and
// polls; latency is from the start of the commit to the poll that returns the event.
Result<std::vector<double>> measure_latency(connectors::Source& source, std::string checkpoint,
                                            int samples,
                                            const std::function<Status(int)>& commit,
                                            const std::string& key_prefix) {
    std::mutex mutex;
    std::map<std::string, Clock::time_point> committed;
    std::vector<double> latencies;
    std::atomic<bool> producer_failed{false};
    std::jthread producer([&] {
        std::mt19937 random(7);
        for (int i = 0; i < samples; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5 + random() % 20));
            {
                // Recorded before the commit starts: the consumer may see the change before
                // commit() returns here.
                std::lock_guard lock(mutex);
                committed[key_prefix + std::to_string(1000000 + i)] = Clock::now();
            }
            if (!commit(i).ok()) {
                producer_failed = true;
                return;
            }
        }
    });
    const auto deadline = Clock::now() + std::chrono::seconds(120);
    while (static_cast<int>(latencies.size()) < samples && !producer_failed &&
           Clock::now() < deadline) {
        SLUICE_RETURN_IF_ERROR(source.wait(std::chrono::milliseconds(500)).status());
        SLUICE_ASSIGN_OR_RETURN(connectors::Batch batch, source.poll(checkpoint, {}));
        const auto now = Clock::now();
        for (const auto& event : batch.events) {
            std::lock_guard lock(mutex);
            auto it = committed.find(event.key);
            if (it != committed.end()) {
                latencies.push_back(std::chrono::duration<double, std::milli>(now - it->second)
                                        .count());
            }
        }
        checkpoint = batch.checkpoint;
        SLUICE_RETURN_IF_ERROR(source.acknowledge(checkpoint));
    }
    if (static_cast<int>(latencies.size()) < samples) {
        return internal_error("latency run saw " + std::to_string(latencies.size()) + " of " +
                              std::to_string(samples) + " changes");
    }
    return latencies;
}

Result<Figures> bench_sqlite(const fs::path& dir, const Options& options) {
    const std::string path = (dir / "bench.sqlite").string();
    sqlite3* raw = nullptr;
    sqlite3_open(path.c_str(), &raw);
    std::unique_ptr<sqlite3, decltype(&sqlite3_close)> db(raw, &sqlite3_close);
    // The source's acknowledgements write to the same file: wait for them, do not fail.
    sqlite3_busy_timeout(db.get(), 5000);
    const std::string create =
        "PRAGMA journal_mode=WAL; CREATE TABLE docs(id INTEGER PRIMARY KEY, title TEXT, body "
        "TEXT); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " +
        std::to_string(options.rows) +
        ") INSERT INTO docs SELECT i, 'title ' || i, printf('%.200c', 'x') || i FROM n";
    if (sqlite3_exec(db.get(), create.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
        return io_error(std::string("creating the sqlite table: ") + sqlite3_errmsg(db.get()));
    }
    connectors::SqliteSourceConfig config;
    config.path = path;
    config.tables = {{"docs", {}}};
    config.tables[0].mapping.text = {"title", "body"};
    config.wait_poll_interval = std::chrono::milliseconds(10);
    SLUICE_ASSIGN_OR_RETURN(auto source, connectors::SqliteSource::open(config));
    Figures figures;
    std::string checkpoint;
    SLUICE_ASSIGN_OR_RETURN(figures.snapshot_rows_s,
                            time_snapshot(*source, options.rows, checkpoint));
    auto commit = [&](int i) -> Status {
        const std::string sql = "INSERT INTO docs VALUES (" + std::to_string(1000000 + i) +
                                ", 'new', 'body')";
        return sqlite3_exec(db.get(), sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK
                   ? Status()
                   : io_error("insert failed");
    };
    SLUICE_ASSIGN_OR_RETURN(auto latencies, measure_latency(*source, checkpoint, options.samples,
                                                            commit, "docs/"));
    figures.p50_ms = percentile(latencies, 0.50);
    figures.p99_ms = percentile(latencies, 0.99);
    return figures;
}

Result<Figures> bench_postgres(const fs::path& dir, const Options& options) {
    SLUICE_ASSIGN_OR_RETURN(auto cluster, connectors::PostgresCluster::start(dir / "pg", true));
    std::unique_ptr<PGconn, decltype(&PQfinish)> conn(PQconnectdb(cluster->conninfo().c_str()),
                                                      &PQfinish);
    auto exec = [&](const std::string& sql) -> Status {
        std::unique_ptr<PGresult, decltype(&PQclear)> result(PQexec(conn.get(), sql.c_str()),
                                                             &PQclear);
        const auto status = PQresultStatus(result.get());
        if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
            return unavailable(std::string("postgresql: ") + PQerrorMessage(conn.get()));
        }
        return Status();
    };
    SLUICE_RETURN_IF_ERROR(exec("CREATE TABLE docs(id bigint PRIMARY KEY, title text, body text)"));
    SLUICE_RETURN_IF_ERROR(exec("INSERT INTO docs SELECT i, 'title ' || i, repeat('x', 200) || i "
                                "FROM generate_series(1, " + std::to_string(options.rows) + ") i"));
    connectors::PostgresSourceConfig config;
    config.conninfo = cluster->conninfo();
    config.slot = "bench";
    config.publication = "bench";
    config.tables = {{"docs", {}}};
    config.tables[0].mapping.text = {"title", "body"};
    SLUICE_ASSIGN_OR_RETURN(auto source, connectors::PostgresSource::open(config));
    Figures figures;
    std::string checkpoint;
    SLUICE_ASSIGN_OR_RETURN(figures.snapshot_rows_s,
                            time_snapshot(*source, options.rows, checkpoint));
    // A second connection: libpq connections are not shared between threads.
    std::unique_ptr<PGconn, decltype(&PQfinish)> producer(
        PQconnectdb(cluster->conninfo().c_str()), &PQfinish);
    auto commit = [&](int i) -> Status {
        const std::string sql = "INSERT INTO docs VALUES (" + std::to_string(1000000 + i) +
                                ", 'new', 'body')";
        std::unique_ptr<PGresult, decltype(&PQclear)> result(PQexec(producer.get(), sql.c_str()),
                                                             &PQclear);
        return PQresultStatus(result.get()) == PGRES_COMMAND_OK ? Status()
                                                                : unavailable("insert failed");
    };
    SLUICE_ASSIGN_OR_RETURN(auto latencies, measure_latency(*source, checkpoint, options.samples,
                                                            commit, "public.docs/"));
    figures.p50_ms = percentile(latencies, 0.50);
    figures.p99_ms = percentile(latencies, 0.99);
    SLUICE_RETURN_IF_ERROR(source->drop_slot());
    return figures;
}

int run_bench(const Options& options) {
    std::random_device random;
    const fs::path dir = fs::temp_directory_path() / ("sluice-bench-sources-" +
                                                      std::to_string(random()));
    fs::create_directories(dir);
    fs::permissions(dir, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
    BenchReport report("sources");
    report.set_columns({"source", "snapshot rows/s", "capture p50 ms", "capture p99 ms"});
    int exit_code = 0;
    auto add = [&](const std::string& name, const Result<Figures>& figures) {
        if (!figures.ok()) {
            report.add_note(name + ": " + figures.status().to_string());
            if (figures.status().code() != StatusCode::kNotSupported) {
                exit_code = 1;
            }
            return;
        }
        report.add_row({name, format_fixed(figures->snapshot_rows_s, 0),
                        format_fixed(figures->p50_ms, 1), format_fixed(figures->p99_ms, 1)});
        report.set_figure(name + ".snapshot_rows_s", figures->snapshot_rows_s);
        report.set_figure(name + ".capture_p50_ms", figures->p50_ms);
        report.set_figure(name + ".capture_p99_ms", figures->p99_ms);
    };
    add("sqlite", bench_sqlite(dir, options));
    add("postgres", bench_postgres(dir, options));
    report.set_figure("rows", options.rows);
    report.set_figure("samples", options.samples);
    report.set_figure("machine", describe_machine());
    report.add_note(std::to_string(options.rows) + "-row tables, pages of 1000; latency over " +
                    std::to_string(options.samples) + " single-row commits; " +
                    describe_machine());
    report.print(options.json);
    std::error_code ec;
    fs::remove_all(dir, ec);
    return exit_code;
}

}  // namespace

void add_sources_bench(Cli& cli) {
    auto options = std::make_shared<Options>();
    auto* command = cli.bench().add_subcommand(
        "sources", "Snapshot rows/s and change-capture latency of the SQLite and PostgreSQL sources");
    command->add_flag("--json", options->json, "Print the figures as one JSON object last");
    command->add_option("--rows", options->rows, "Rows in the snapshot table")
        ->check(CLI::Range(1000, 10000000));
    command->add_option("--samples", options->samples, "Commits timed for latency")
        ->check(CLI::Range(10, 100000));
    cli.on_run(command, [options] { return run_bench(*options); });
}

}  // namespace sluice::app
