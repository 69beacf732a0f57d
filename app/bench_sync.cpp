#include "app/bench_sync.h"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include "app/bench_report.h"
#include "app/index_deps.h"
#include "app/source_feed.h"
#include "connectors/sqlite_source.h"
#include "retrieval/index_manager.h"
#include "retrieval/sync.h"

namespace sluice::app {
namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

struct Options {
    bool json = false;
    int rows = 100000;
    int samples = 200;
    int batch = 500;
};

double percentile(std::vector<double> values, double p) {
    if (values.empty()) {
        return 0;
    }
    std::sort(values.begin(), values.end());
    const auto index = static_cast<std::size_t>(p * static_cast<double>(values.size() - 1) + 0.5);
    return values[std::min(index, values.size() - 1)];
}

using Db = std::unique_ptr<sqlite3, decltype(&sqlite3_close)>;

Result<Db> create_table(const std::string& path, int rows) {
    sqlite3* raw = nullptr;
    sqlite3_open(path.c_str(), &raw);
    Db db(raw, &sqlite3_close);
    // The source's acknowledgements write to the same file: wait for them, do not fail.
    sqlite3_busy_timeout(db.get(), 5000);
    // Bodies vary per row (a few words drawn from the row number) so that the embedder and the
    // lexical index see distinct texts, about 200 bytes each.
    const std::string create =
        "PRAGMA journal_mode=WAL; CREATE TABLE docs(id INTEGER PRIMARY KEY, title TEXT, body "
        "TEXT, readers TEXT); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
        "WHERE i < " + std::to_string(rows) +
        ") INSERT INTO docs SELECT i, 'ticket ' || i, 'customer ' || (i % 997) || ' reports "
        "that the ' || (i % 89) || ' widget fails after upgrade ' || (i % 13) || '; steps: open "
        "the panel, press start, wait ' || (i % 61) || ' seconds; expected a report, got error "
        "code E' || (i % 4999) || '.', 'staff' FROM n";
    if (sqlite3_exec(db.get(), create.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
        return io_error(std::string("creating the sqlite table: ") + sqlite3_errmsg(db.get()));
    }
    return db;
}

struct Initial {
    double seconds = 0;
    double rows_s = 0;
    retrieval::SyncStatus status;
};

struct Freshness {
    std::vector<double> lags_ms;
};

Result<Freshness> measure_freshness(sqlite3* db, retrieval::Index& index, int samples) {
    const retrieval::Reader reader{"bench", {"staff"}};
    std::mt19937 random(11);
    Freshness out;
    for (int i = 0; i < samples; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5 + random() % 20));
        const std::string word = "freshword" + std::to_string(i);
        const std::string sql = "INSERT INTO docs VALUES (" + std::to_string(10000000 + i) +
                                ", 'new', 'a change carrying " + word + "', 'staff')";
        const auto start = Clock::now();
        if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
            return io_error(std::string("insert failed: ") + sqlite3_errmsg(db));
        }
        retrieval::Query query;
        query.text = word;
        query.mode = retrieval::QueryMode::kLexical;
        query.k = 1;
        const auto deadline = start + std::chrono::seconds(30);
        while (true) {
            SLUICE_ASSIGN_OR_RETURN(auto hits, index.query(query, reader));
            if (!hits.empty()) {
                break;
            }
            if (Clock::now() > deadline) {
                return internal_error("row " + std::to_string(i) +
                                      " was not searchable after 30 s");
            }
            std::this_thread::sleep_for(std::chrono::microseconds(500));
        }
        out.lags_ms.push_back(
            std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    }
    return out;
}

std::string share(double part, double whole) {
    return format_fixed(whole > 0 ? 100.0 * part / whole : 0, 1) + "%";
}

int fail(const Status& status) {
    std::cerr << "sluice bench sync: " << status.to_string() << "\n";
    return 1;
}

int run_bench(const Options& options) {
    const fs::path dir = fs::temp_directory_path() /
                         ("sluice-bench-sync-" + std::to_string(std::random_device{}()));
    fs::create_directories(dir);
    struct Cleanup {
        fs::path dir;
        ~Cleanup() {
            std::error_code ec;
            fs::remove_all(dir, ec);
        }
    } cleanup{dir};

    auto db = create_table((dir / "bench.sqlite").string(), options.rows);
    if (!db.ok()) {
        return fail(db.status());
    }
    connectors::SqliteSourceConfig config;
    config.path = (dir / "bench.sqlite").string();
    config.tables = {{"docs", {}}};
    config.tables[0].mapping.text = {"title", "body"};
    config.tables[0].mapping.acl_groups = "readers";
    auto source = connectors::SqliteSource::open(config);
    if (!source.ok()) {
        return fail(source.status());
    }
    // What the server lends its indexes: chunks are measured in the model tokenizer's tokens.
    auto indexes = retrieval::IndexManager::open(dir / "indexes", server_index_deps());
    if (!indexes.ok()) {
        return fail(indexes.status());
    }
    retrieval::IndexSettings settings;
    settings.name = "bench";
    auto index = (*indexes)->create(settings);
    if (!index.ok()) {
        return fail(index.status());
    }
    retrieval::SyncOptions sync_options;
    sync_options.max_batch = static_cast<std::size_t>(options.batch);
    std::shared_ptr<connectors::Source> shared_source = std::move(source).value();
    auto sync = retrieval::SourceSync::open(
        "bench", *index, std::make_unique<SourceFeed>("bench", shared_source), sync_options);
    if (!sync.ok()) {
        return fail(sync.status());
    }

    Initial initial;
    const auto start = Clock::now();
    auto ran = (*sync)->run_to_caught_up();
    initial.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (!ran.ok()) {
        return fail(ran.status());
    }
    initial.status = (*sync)->status();
    if (initial.status.documents != static_cast<std::size_t>(options.rows)) {
        return fail(internal_error("initial sync indexed " +
                                   std::to_string(initial.status.documents) + " rows, expected " +
                                   std::to_string(options.rows)));
    }
    initial.rows_s = static_cast<double>(options.rows) / initial.seconds;

    (*sync)->start();
    auto fresh = measure_freshness(db->get(), **index, options.samples);
    (*sync)->stop();
    if (!fresh.ok()) {
        return fail(fresh.status());
    }

    const retrieval::SyncStatus& s = initial.status;
    const double accounted = s.poll_seconds + s.embed_seconds + s.index_seconds + s.ack_seconds;
    BenchReport report("sync");
    report.set_columns({"measure", "value"});
    report.add_row({"initial sync rows/s", format_fixed(initial.rows_s, 0)});
    report.add_row({"initial sync seconds", format_fixed(initial.seconds, 2)});
    report.add_row({"  reading the source", share(s.poll_seconds, initial.seconds)});
    report.add_row({"  embedding", share(s.embed_seconds, initial.seconds)});
    report.add_row({"  indexing (chunk, analyze, write, memory)",
                    share(s.index_seconds, initial.seconds)});
    report.add_row({"    chunking, analysis, lookups", share(s.prepare_seconds, initial.seconds)});
    report.add_row({"    synced write, memory update", share(s.commit_seconds, initial.seconds)});
    report.add_row({"  acknowledging", share(s.ack_seconds, initial.seconds)});
    report.add_row({"freshness p50 ms", format_fixed(percentile(fresh->lags_ms, 0.5), 1)});
    report.add_row({"freshness p99 ms", format_fixed(percentile(fresh->lags_ms, 0.99), 1)});
    report.add_row({"freshness max ms", format_fixed(percentile(fresh->lags_ms, 1.0), 1)});
    report.set_figure("rows", options.rows);
    report.set_figure("batch", options.batch);
    report.set_figure("initial.seconds", initial.seconds);
    report.set_figure("initial.rows_per_s", initial.rows_s);
    report.set_figure("initial.poll_s", s.poll_seconds);
    report.set_figure("initial.embed_s", s.embed_seconds);
    report.set_figure("initial.index_s", s.index_seconds);
    report.set_figure("initial.prepare_s", s.prepare_seconds);
    report.set_figure("initial.commit_s", s.commit_seconds);
    report.set_figure("initial.ack_s", s.ack_seconds);
    report.set_figure("initial.embed_share", initial.seconds > 0 ? s.embed_seconds / initial.seconds : 0);
    report.set_figure("freshness.samples", options.samples);
    report.set_figure("freshness.p50_ms", percentile(fresh->lags_ms, 0.5));
    report.set_figure("freshness.p99_ms", percentile(fresh->lags_ms, 0.99));
    report.set_figure("freshness.max_ms", percentile(fresh->lags_ms, 1.0));
    report.set_figure("machine", describe_machine());
    report.add_note("SQLite source (triggers), " + std::to_string(options.rows) +
                    " rows of ~200 bytes, batches of " + std::to_string(options.batch) +
                    ", index defaults (lexical-hash 256-d, Flat, BM25), synced RocksDB writes; " +
                    format_fixed(100.0 * accounted / initial.seconds, 1) +
                    "% of the initial sync accounted for above");
    report.add_note("freshness: commit start to a lexical query finding the row; " +
                    std::to_string(options.samples) +
                    " single-row commits 5-25 ms apart, continuous mode, the source's 50 ms "
                    "commit check");
    report.add_note("machine: " + describe_machine());
    report.print(options.json);
    return 0;
}

}  // namespace

void add_sync_bench(Cli& cli) {
    auto options = std::make_shared<Options>();
    auto* command = cli.bench().add_subcommand(
        "sync", "Initial sync rows/s and commit-to-searchable freshness of the sync engine");
    command->add_flag("--json", options->json, "Print the figures as one JSON object last");
    command->add_option("--rows", options->rows, "Rows in the table of the initial sync")
        ->check(CLI::Range(100, 10000000));
    command->add_option("--samples", options->samples, "Single-row commits timed for freshness")
        ->check(CLI::Range(10, 100000));
    command->add_option("--batch", options->batch, "Changes per write batch")
        ->check(CLI::Range(1, 100000));
    cli.on_run(command, [options] { return run_bench(*options); });
}

}  // namespace sluice::app
