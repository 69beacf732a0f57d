#include "app/bench_sync.h"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include "app/bench_model.h"
#include "app/bench_report.h"
#include "app/engine_embedder.h"
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
    int pipeline_depth = 2;
    std::string embedder = "lexical";  // lexical | model | http
    std::string model;                 // model: a checkpoint folder; empty: the tiny preset
    std::string endpoint;              // http: base URL of an OpenAI-compatible server
    std::string endpoint_model;        // http: the "model" field
    int dimension = 0;                 // http: the server's vector size; lexical: 256 if 0
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

// The index's embedder as the options name it, and the dependencies that provide it. `model`
// is loaded here (the tiny preset unless --model names a checkpoint) and kept alive by `held`.
struct EmbedderChoice {
    retrieval::IndexDeps deps;
    retrieval::IndexSettings settings;
    std::string description;
    std::unique_ptr<ModelHost> held;
};

Result<EmbedderChoice> choose_embedder(const Options& options, const fs::path& scratch) {
    EmbedderChoice out;
    out.deps = server_index_deps();
    out.settings.name = "bench";
    if (options.embedder == "lexical" || options.embedder == "lexical-hash") {
        out.settings.embedder = "lexical-hash";
        out.settings.dimension = options.dimension > 0 ? options.dimension : 256;
        out.description = "lexical-hash " + std::to_string(out.settings.dimension) + "-d";
        return out;
    }
    if (options.embedder == "http") {
        if (options.endpoint.empty() || options.dimension <= 0) {
            return invalid_argument("--embedder http needs --endpoint and --dimension");
        }
        out.settings.embedder = "http";
        out.settings.embedder_endpoint = options.endpoint;
        out.settings.embedder_model = options.endpoint_model;
        out.settings.dimension = options.dimension;
        out.description = "http " + options.endpoint + " " + std::to_string(options.dimension) +
                          "-d";
        return out;
    }
    if (options.embedder == "model") {
        // Engine::embed submits one request per text and the engine refuses past max_queued
        // (its count of queued requests lags the submissions a little): room for four calls.
        constexpr int kEmbedBatch = 64;
        SLUICE_ASSIGN_OR_RETURN(
            BenchModel model,
            open_bench_model(
                {.model_dir = options.model, .max_running = 16, .max_queued = 4 * kEmbedBatch},
                scratch));
        out.held = std::move(model.host);
        auto engine = out.held->engine();
        out.settings.embedder = "model";
        out.settings.dimension = static_cast<std::size_t>(engine->model_config().d_model);
        out.deps.embedders = embedder_factory_with_model(engine, out.held->model_id(), kEmbedBatch);
        out.description = "model " + out.held->model_id() + " (" +
                          (options.model.empty() ? "tiny preset" : options.model) + ") " +
                          std::to_string(out.settings.dimension) + "-d through the engine";
        return out;
    }
    return invalid_argument("--embedder '" + options.embedder +
                            "', expected lexical, model or http");
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
    auto embedder = choose_embedder(options, dir);
    if (!embedder.ok()) {
        return fail(embedder.status());
    }
    auto indexes = retrieval::IndexManager::open(dir / "indexes", embedder->deps);
    if (!indexes.ok()) {
        return fail(indexes.status());
    }
    auto index = (*indexes)->create(embedder->settings);
    if (!index.ok()) {
        return fail(index.status());
    }
    retrieval::SyncOptions sync_options;
    sync_options.max_batch = static_cast<std::size_t>(options.batch);
    sync_options.pipeline_depth = static_cast<std::size_t>(options.pipeline_depth);
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
    const double wall = initial.seconds;
    const double accounted = s.poll_seconds + s.embed_seconds + s.index_seconds + s.ack_seconds;
    const double p50 = percentile(fresh->lags_ms, 0.5);
    const double p99 = percentile(fresh->lags_ms, 0.99);
    const double max = percentile(fresh->lags_ms, 1.0);
    // Stages overlap when pipelined: each is its busy time as a share of the wall time, so the
    // shares may add up to more than 100%.
    auto stage = [&](const std::string& name, double seconds) {
        return std::vector<std::string>{name,
                                        format_fixed(seconds, 2) + " s, " + share(seconds, wall)};
    };
    BenchReport report("sync");
    report.set_columns({"measure", "value"});
    report.add_row({"initial sync rows/s", format_fixed(initial.rows_s, 0)});
    report.add_row({"initial sync seconds (wall)", format_fixed(wall, 2)});
    report.add_row(stage("  poll and parse (source)", s.poll_seconds));
    report.add_row(stage("  chunk, tokenise, analyse, lookups", s.prepare_seconds));
    report.add_row(stage("  embed", s.embed_seconds));
    report.add_row(stage("  index write and commit (synced)", s.commit_seconds));
    report.add_row(stage("  acknowledge", s.ack_seconds));
    report.add_row(stage("  commit thread waiting for the next batch", s.prepare_wait_seconds));
    report.add_row({"embedder busy (share of wall time)", share(s.embed_seconds, wall)});
    report.add_row({"freshness p50 ms", format_fixed(p50, 1)});
    report.add_row({"freshness p99 ms", format_fixed(p99, 1)});
    report.add_row({"freshness max ms", format_fixed(max, 1)});
    report.set_figure("rows", options.rows);
    report.set_figure("batch", options.batch);
    report.set_figure("pipeline_depth", options.pipeline_depth);
    report.set_figure("embedder", embedder->description);
    report.set_figure("initial.seconds", wall);
    report.set_figure("initial.rows_per_s", initial.rows_s);
    report.set_figure("initial.poll_s", s.poll_seconds);
    report.set_figure("initial.embed_s", s.embed_seconds);
    report.set_figure("initial.index_s", s.index_seconds);
    report.set_figure("initial.prepare_s", s.prepare_seconds);
    report.set_figure("initial.commit_s", s.commit_seconds);
    report.set_figure("initial.ack_s", s.ack_seconds);
    report.set_figure("initial.prepare_wait_s", s.prepare_wait_seconds);
    report.set_figure("initial.embed_share", wall > 0 ? s.embed_seconds / wall : 0);
    report.set_figure("freshness.samples", options.samples);
    report.set_figure("freshness.p50_ms", p50);
    report.set_figure("freshness.p99_ms", p99);
    report.set_figure("freshness.max_ms", max);
    report.set_figure("machine", describe_machine());
    report.add_note("SQLite source (triggers), " + std::to_string(options.rows) +
                    " rows of ~200 bytes, batches of " + std::to_string(options.batch) +
                    ", pipeline depth " + std::to_string(options.pipeline_depth) +
                    (options.pipeline_depth == 0 ? " (serial)" : "") + ", embedder " +
                    embedder->description + ", Flat, BM25, synced RocksDB writes");
    report.add_note("stage times are busy times summed over batches, as shares of the wall time "
                    "(they overlap when pipelined); together " +
                    format_fixed(100.0 * accounted / wall, 1) + "% of the wall time");
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
    command->add_option("--pipeline-depth", options->pipeline_depth,
                        "Batches prepared ahead of the one committing (0: serial)")
        ->check(CLI::Range(0, 64));
    command->add_option("--embedder", options->embedder,
                        "lexical (lexical-hash), model (the in-process model through the "
                        "engine) or http (an OpenAI-compatible embeddings server)");
    command->add_option("--model", options->model,
                        "--embedder model: DBRX checkpoint folder (default: tiny preset)");
    command->add_option("--endpoint", options->endpoint, "--embedder http: base URL");
    command->add_option("--endpoint-model", options->endpoint_model,
                        "--embedder http: the model name sent");
    command->add_option("--dimension", options->dimension,
                        "Vector size (http: required; lexical: default 256)")
        ->check(CLI::Range(0, 65536));
    cli.on_run(command, [options] { return run_bench(*options); });
}

}  // namespace sluice::app
