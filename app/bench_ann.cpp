#include "app/bench_ann.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <numeric>
#include <optional>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "app/ann_dataset.h"
#include "app/bench_report.h"
#include "retrieval/eval_metrics.h"
#include "retrieval/faiss_baseline.h"
#include "retrieval/filter.h"
#include "retrieval/filter_postings.h"
#include "retrieval/vector_index.h"

namespace sluice::app {
namespace {

using Clock = std::chrono::steady_clock;
using Allow = std::function<bool(std::uint64_t)>;

struct Options {
    bool json = false;
    std::size_t n = 1000000;
    std::size_t dim = 384;
    std::size_t queries = 1000;
    std::size_t truth = 200;
    std::size_t k = 10;
    int m = 32;
    int ef_construction = retrieval::VectorIndexOptions{}.hnsw_ef_construction;
    std::vector<int> ef_search = {32, 64, 128};
    std::uint64_t seed = 1;
    std::size_t batch = 10000;  // vectors per add_batch; 1: one add() per vector
    int add_threads = 0;        // 0: every core (nothing else runs during the build)
    std::string graph;          // saved graph: loaded when it matches, else built and saved
};

// What Index keeps per chunk for admission (Index::ChunkInfo): the metadata filters read (the
// document's own plus doc_key, uri and title) and the ACL.
struct ChunkInfo {
    retrieval::Metadata metadata;
    retrieval::Acl acl;
};
using ChunkTable = std::unordered_map<std::uint64_t, ChunkInfo>;

// One filter per query, so that queries spread over tenants and years.
struct FilterCase {
    std::string name;
    std::string key;  // in the JSON figures, whose dotted keys cannot hold "0.1%"
    double selectivity = 1;
    bool unfiltered = false;
    std::vector<retrieval::Filter> filters;  // [queries]
};

std::vector<FilterCase> make_cases(std::size_t queries) {
    using retrieval::Filter;
    std::vector<FilterCase> cases(6);
    cases[0] = {"none", "none", 1.0, true, {}};
    cases[1] = {"100%", "all", 1.0, false, {}};
    cases[2] = {"10%", "tenth", 0.1, false, {}};
    cases[3] = {"1%", "hundredth", 0.01, false, {}};
    cases[4] = {"0.1%", "thousandth", 0.001, false, {}};
    cases[5] = {"1% range+not", "hundredth_ranges", 0.01, false, {}};
    for (std::size_t q = 0; q < queries; ++q) {
        double tenant = static_cast<double>(1 + q % 100);
        double year = static_cast<double>(2015 + (q / 7) % 10);
        cases[1].filters.push_back(Filter::range("year", 2015.0, true, std::nullopt, true));
        cases[2].filters.push_back(Filter::equals("year", year));
        cases[3].filters.push_back(Filter::equals("tenant", tenant));
        cases[4].filters.push_back(Filter::all_of(
            {Filter::equals("tenant", tenant), Filter::equals("year", year)}));
        // Ten tenants (a range, 10%) and not before the last year (a negated range, 10%).
        double first = static_cast<double>(1 + (q % 10) * 10);
        cases[5].filters.push_back(Filter::all_of(
            {Filter::range("tenant", first, true, first + 9, true),
             Filter::negate(Filter::range("year", std::nullopt, true, 2023.0, true))}));
    }
    return cases;
}

// Index keeps both: the table for the predicate, the posting lists for the filtered plan.
ChunkTable make_chunks(const AnnData& data, retrieval::FilterPostings& postings) {
    ChunkTable chunks;
    chunks.reserve(data.tenant.size());
    for (std::size_t i = 0; i < data.tenant.size(); ++i) {
        ChunkInfo info;
        std::string key = std::to_string(i);
        info.metadata["doc_key"] = key;
        info.metadata["uri"] = "b://" + key;
        info.metadata["title"] = "doc " + key;
        info.metadata["tenant"] = static_cast<double>(data.tenant[i]);
        info.metadata["year"] = static_cast<double>(data.year[i]);
        info.acl.groups = {"staff"};
        postings.add(i, info.metadata, info.acl);
        chunks.emplace(i, std::move(info));
    }
    return chunks;
}

// The body of Index::admit: unknown chunks and chunks the reader may not read are refused before
// the filter looks at their metadata.
Allow admit(const ChunkTable& chunks, const retrieval::Filter& filter,
            const retrieval::Reader& reader) {
    return [&chunks, &filter, &reader](std::uint64_t id) {
        auto it = chunks.find(id);
        if (it == chunks.end() || !it->second.acl.allows(reader)) {
            return false;
        }
        return filter.matches(it->second.metadata);
    };
}

double resident_gib() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("VmRSS:", 0) == 0) {
            return std::stod(line.substr(6)) / (1024.0 * 1024.0);
        }
    }
    return 0;
}

double since_ms(Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::vector<std::uint64_t> ids_of(const std::vector<retrieval::ScoredId>& scored) {
    std::vector<std::uint64_t> ids;
    ids.reserve(scored.size());
    for (const auto& entry : scored) {
        ids.push_back(entry.id);
    }
    return ids;
}

struct Series {
    std::vector<double> ms;
    double recall_sum = 0;
    std::size_t recall_count = 0;
    std::size_t exact = 0;   // queries the wrapper answered by an exact scan
    std::size_t dry = 0;     // ...of which after a graph walk returned fewer than k
    double ef_sum = 0;       // efSearch of its graph walks
    double candidate_sum = 0;  // posting-list candidates it scanned
    double budget_sum = 0;     // its exact-scan budgets

    double mean_ms() const {
        return ms.empty() ? 0 : std::accumulate(ms.begin(), ms.end(), 0.0) / ms.size();
    }
    double recall() const { return recall_count ? recall_sum / recall_count : 0; }
};

struct Run {
    const Options& options;
    const std::vector<float>& queries;
    const ChunkTable& chunks;
    const retrieval::FilterPostings& postings;
    retrieval::VectorIndex& index;
    const retrieval::FaissBaseline& baseline;
    const retrieval::Reader reader{"bench", {"staff"}};
};

const float* query_row(const Run& run, std::size_t q) {
    return run.queries.data() + q * run.options.dim;
}

Result<std::vector<std::vector<std::uint64_t>>> ground_truth(const Run& run,
                                                             const FilterCase& filter_case) {
    std::vector<std::vector<std::uint64_t>> truth;
    std::size_t count = std::min(run.options.truth, run.options.queries);
    for (std::size_t q = 0; q < count; ++q) {
        Allow allow;
        if (!filter_case.unfiltered) {
            allow = admit(run.chunks, filter_case.filters[q], run.reader);
        }
        SLUICE_ASSIGN_OR_RETURN(auto exact, run.baseline.exact(query_row(run, q), run.options.k,
                                                               allow ? &allow : nullptr));
        truth.push_back(ids_of(exact));
    }
    return truth;
}

// Times the wrapper and raw FAISS on every query, alternating which goes first so that both see
// the same cache and the same contention.
Status measure(const Run& run, const FilterCase& filter_case, int ef,
               const std::vector<std::vector<std::uint64_t>>& truth, Series& wrapper,
               Series& raw) {
    run.index.set_hnsw_ef_search(ef);
    retrieval::Vector query(run.options.dim);
    for (std::size_t q = 0; q < run.options.queries; ++q) {
        Allow allow;
        if (!filter_case.unfiltered) {
            allow = admit(run.chunks, filter_case.filters[q], run.reader);
        }
        const Allow* allow_ptr = allow ? &allow : nullptr;
        std::copy_n(query_row(run, q), run.options.dim, query.begin());
        std::vector<retrieval::ScoredId> ours;
        std::vector<retrieval::ScoredId> theirs;
        for (int turn = 0; turn < 2; ++turn) {
            bool ours_now = (turn == 0) == (q % 2 == 0);
            auto start = Clock::now();
            if (ours_now) {
                // As Index::query does: the posting lists name the candidates of a tight
                // filter, and of any filter whose walk runs dry, inside the timed part ("none"
                // has no predicate, as raw FAISS).
                retrieval::VectorIndex::SearchPlan plan;
                retrieval::CandidateSource candidates;
                if (!filter_case.unfiltered) {
                    candidates = run.postings.source(filter_case.filters[q], run.reader);
                }
                SLUICE_ASSIGN_OR_RETURN(ours,
                                        run.index.search(query, run.options.k, allow_ptr, &plan,
                                                         candidates ? &candidates : nullptr));
                wrapper.ms.push_back(since_ms(start));
                wrapper.exact += plan.exact ? 1 : 0;
                wrapper.dry += plan.ran_dry ? 1 : 0;
                wrapper.ef_sum += plan.ef_search;
                wrapper.candidate_sum += static_cast<double>(plan.candidates);
                wrapper.budget_sum += static_cast<double>(plan.exact_budget);
            } else {
                SLUICE_ASSIGN_OR_RETURN(theirs, run.baseline.search(query_row(run, q),
                                                                    run.options.k, ef, allow_ptr));
                raw.ms.push_back(since_ms(start));
            }
        }
        if (q < truth.size()) {
            wrapper.recall_sum += ann_recall(ids_of(ours), truth[q], run.options.k);
            raw.recall_sum += ann_recall(ids_of(theirs), truth[q], run.options.k);
            ++wrapper.recall_count;
            ++raw.recall_count;
        }
    }
    return Status::ok_status();
}

// The wrapper's plan in a cell: the share of exact scans and the mean beam of its graph walks.
std::string describe_plan(const Series& series, bool wrapper, int ef) {
    if (!wrapper) {
        return "graph ef " + std::to_string(ef);
    }
    auto queries = static_cast<double>(series.ms.size());
    double walks = queries - static_cast<double>(series.exact);
    std::string cell = "exact " + format_fixed(100.0 * series.exact / queries, 0) + "%";
    if (series.candidate_sum > 0) {
        cell += " (" + format_fixed(series.candidate_sum / queries, 0) + " candidates)";
    }
    if (series.dry > 0) {
        cell += ", " + format_fixed(100.0 * series.dry / queries, 0) + "% after a dry walk";
    }
    if (walks > 0) {
        cell += ", graph ef " + format_fixed(series.ef_sum / walks, 0);
    }
    return cell;
}

void report_series(BenchReport& report, const FilterCase& filter, int ef,
                   const std::string& who, const Series& series, const std::string& overhead) {
    double p50 = retrieval::quantile(series.ms, 0.5);
    double p99 = retrieval::quantile(series.ms, 0.99);
    double qps = series.mean_ms() > 0 ? 1000.0 / series.mean_ms() : 0;
    bool wrapper = who == "sluice";
    report.add_row({filter.name, std::to_string(ef), who, format_fixed(series.recall(), 4),
                    format_fixed(p50, 3), format_fixed(p99, 3), format_fixed(qps, 0), overhead,
                    describe_plan(series, wrapper, ef)});
    std::string key = "search." + filter.key + ".ef" + std::to_string(ef) + "." + who;
    if (wrapper) {
        auto queries = static_cast<double>(series.ms.size());
        report.set_figure(key + ".exact_share", static_cast<double>(series.exact) / queries);
        report.set_figure(key + ".dry_share", static_cast<double>(series.dry) / queries);
        report.set_figure(key + ".candidates", series.candidate_sum / queries);
        report.set_figure(key + ".exact_budget", series.budget_sum / queries);
    }
    report.set_figure(key + ".recall@10", series.recall());
    report.set_figure(key + ".p50_ms", p50);
    report.set_figure(key + ".p99_ms", p99);
    report.set_figure(key + ".qps", qps);
}

Status search_all(const Run& run, BenchReport& report) {
    for (const FilterCase& filter_case : make_cases(run.options.queries)) {
        auto truth_start = Clock::now();
        SLUICE_ASSIGN_OR_RETURN(auto truth, ground_truth(run, filter_case));
        std::cerr << "ann: filter " << filter_case.name << ": exact ground truth for "
                  << truth.size() << " queries in " << format_fixed(since_ms(truth_start), 0)
                  << " ms\n";
        for (int ef : run.options.ef_search) {
            Series wrapper;
            Series raw;
            SLUICE_RETURN_IF_ERROR(measure(run, filter_case, ef, truth, wrapper, raw));
            double overhead = 100.0 * (wrapper.mean_ms() / raw.mean_ms() - 1.0);
            report_series(report, filter_case, ef, "faiss", raw, "");
            report_series(report, filter_case, ef, "sluice", wrapper,
                          format_fixed(overhead, 1) + "%");
            report.set_figure("search." + filter_case.key + ".ef" + std::to_string(ef) +
                                  ".overhead_pct",
                              overhead);
        }
    }
    return Status::ok_status();
}

// What a saved graph was built from, kept in its snapshot's sequence field (the bench has no
// chunk store, so the field is free): a graph built from other data or other HNSW settings
// must not be measured against this run's vectors and ground truth. FNV-1a over the settings.
std::uint64_t graph_tag(const Options& options) {
    std::uint64_t hash = 1469598103934665603ull;
    for (std::uint64_t part :
         {static_cast<std::uint64_t>(options.n), static_cast<std::uint64_t>(options.dim),
          options.seed, static_cast<std::uint64_t>(options.m),
          static_cast<std::uint64_t>(options.ef_construction)}) {
        for (int byte = 0; byte < 8; ++byte) {
            hash = (hash ^ ((part >> (8 * byte)) & 0xff)) * 1099511628211ull;
        }
    }
    return hash;
}

// Loads the graph saved by an earlier run with the same data and settings (the build of 1M
// vectors takes most of an hour on two cores): FAISS's graph from the snapshot, the wrapper's
// live copies from the regenerated data. kNotFound when nothing is saved there.
Result<std::unique_ptr<retrieval::VectorIndex>> load_graph(
    const Options& options, const retrieval::VectorIndexOptions& index_options,
    const AnnData& data, BenchReport& report) {
    auto start = Clock::now();
    std::uint64_t tag = 0;
    SLUICE_ASSIGN_OR_RETURN(auto index,
                            retrieval::VectorIndex::load(options.graph, index_options, tag));
    if (tag != graph_tag(options)) {
        return failed_precondition("graph '" + options.graph +
                                   "' was built from other data or settings (n, dim, seed, m, "
                                   "ef-construction); remove it or name another file");
    }
    for (std::size_t i = 0; i < options.n; ++i) {
        const float* row = data.vectors.data() + i * options.dim;
        index->restore_live(i, retrieval::Vector(row, row + options.dim));
    }
    SLUICE_RETURN_IF_ERROR(index->replay({}, {}));
    SLUICE_ASSIGN_OR_RETURN(std::size_t fixed, index->finish_restore());
    if (fixed != 0) {
        return failed_precondition("graph '" + options.graph + "' disagrees with the data in " +
                                   std::to_string(fixed) + " vectors");
    }
    double seconds = since_ms(start) / 1000;
    report.set_figure("build.loaded_seconds", seconds);
    report.add_note("graph loaded from " + options.graph + " in " + format_fixed(seconds, 1) +
                    " s (built by an earlier run with the same data and settings)");
    return index;
}

Result<std::unique_ptr<retrieval::VectorIndex>> build(const Options& options, const AnnData& data,
                                                      BenchReport& report) {
    retrieval::VectorIndexOptions index_options;
    index_options.factory = "HNSW" + std::to_string(options.m);
    index_options.metric = retrieval::Metric::kCosine;
    index_options.dimension = options.dim;
    index_options.hnsw_ef_construction = options.ef_construction;
    index_options.add_threads = options.add_threads > 0
                                    ? options.add_threads
                                    : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    if (!options.graph.empty()) {
        auto loaded = load_graph(options, index_options, data, report);
        if (loaded.ok() || loaded.status().code() != StatusCode::kNotFound) {
            return loaded;
        }
    }
    SLUICE_ASSIGN_OR_RETURN(auto index, retrieval::VectorIndex::create(index_options));
    double rss_before = resident_gib();
    auto start = Clock::now();
    std::vector<std::uint64_t> ids;
    std::vector<retrieval::Vector> vectors;
    std::size_t reported = 0;
    for (std::size_t first = 0; first < options.n; first += options.batch) {
        std::size_t count = std::min(options.batch, options.n - first);
        ids.resize(count);
        vectors.resize(count);
        for (std::size_t i = 0; i < count; ++i) {
            const float* row = data.vectors.data() + (first + i) * options.dim;
            ids[i] = first + i;
            vectors[i].assign(row, row + options.dim);
        }
        SLUICE_RETURN_IF_ERROR(index->add_batch(ids, vectors));
        if ((first + count) / 100000 > reported) {
            reported = (first + count) / 100000;
            std::cerr << "ann: added " << (first + count) << " vectors in "
                      << format_fixed(since_ms(start) / 1000, 1) << " s\n";
        }
    }
    double seconds = since_ms(start) / 1000;
    double index_gib = resident_gib() - rss_before;
    report.set_figure("build.seconds", seconds);
    report.set_figure("build.vectors_s", static_cast<double>(options.n) / seconds);
    report.set_figure("build.index_rss_gib", index_gib);
    report.set_figure("build.batch", options.batch);
    report.set_figure("build.add_threads", index_options.add_threads);
    report.add_note("build: " + std::to_string(options.n) + " vectors in add_batch() calls of " +
                    std::to_string(options.batch) + " on " +
                    std::to_string(index_options.add_threads) + " thread(s) in " +
                    format_fixed(seconds, 1) + " s (" +
                    format_fixed(static_cast<double>(options.n) / seconds, 0) +
                    " vectors/s); the index (FAISS graph and vectors, the wrapper's copy of the "
                    "live vectors) grew the resident memory by " +
                    format_fixed(index_gib, 2) + " GiB");
    if (!options.graph.empty()) {
        SLUICE_RETURN_IF_ERROR(index->save(options.graph, graph_tag(options)));
        std::cerr << "ann: graph saved to " << options.graph << "\n";
    }
    return index;
}

int fail(const Status& status) {
    std::cerr << "sluice bench ann: " << status.to_string() << "\n";
    return 1;
}

int run_bench(const Options& options) {
    AnnDataSpec spec;
    spec.n = options.n;
    spec.dimension = options.dim;
    spec.seed = options.seed;
    BenchReport report("ann");
    auto start = Clock::now();
    AnnData data = make_ann_data(spec);
    std::vector<float> queries = make_ann_queries(spec, options.queries);
    retrieval::FilterPostings postings;
    ChunkTable chunks = make_chunks(data, postings);
    std::cerr << "ann: generated " << options.n << " x " << options.dim << " in "
              << format_fixed(since_ms(start) / 1000, 1) << " s\n";
    auto index = build(options, data, report);
    if (!index.ok()) {
        return fail(index.status());
    }
    data.vectors = {};  // the index holds them now; the rest of the run needs only the queries
    auto baseline = retrieval::FaissBaseline::attach(**index);
    if (!baseline.ok()) {
        return fail(baseline.status());
    }
    report.set_columns({"filter", "ef", "search", "recall@" + std::to_string(options.k),
                        "p50 ms", "p99 ms", "queries/s", "overhead", "plan"});
    Run run{options, queries, chunks, postings, **index, **baseline};
    if (Status status = search_all(run, report); !status.ok()) {
        return fail(status);
    }
    report.set_figure("n", options.n);
    report.set_figure("dim", options.dim);
    report.set_figure("m", options.m);
    report.set_figure("ef_construction", options.ef_construction);
    report.set_figure("queries", options.queries);
    report.set_figure("truth_queries", std::min(options.truth, options.queries));
    report.add_note("one query at a time on one thread; overhead = the wrapper's mean time per "
                    "query over raw FAISS's on the same graph, same efSearch, same predicate");
    report.print(options.json);
    return 0;
}

}  // namespace

void add_ann_bench(Cli& cli) {
    auto options = std::make_shared<Options>();
    auto* command = cli.bench().add_subcommand(
        "ann", "HNSW recall and latency with filters at scale, against raw FAISS");
    command->add_flag("--json", options->json, "Print the figures as one JSON object last");
    command->add_option("--n", options->n, "Vectors indexed")->check(CLI::Range(1000, 100000000));
    command->add_option("--dim", options->dim, "Dimension")->check(CLI::Range(8, 4096));
    command->add_option("--queries", options->queries, "Queries timed per filter and efSearch")
        ->check(CLI::Range(10, 1000000));
    command->add_option("--truth", options->truth, "Queries whose recall is checked exactly")
        ->check(CLI::Range(1, 1000000));
    command->add_option("--k", options->k, "Neighbours per query")->check(CLI::Range(1, 1000));
    command->add_option("--m", options->m, "HNSW M (links per node)")->check(CLI::Range(4, 256));
    command->add_option("--ef-construction", options->ef_construction, "HNSW efConstruction")
        ->check(CLI::Range(8, 4096));
    command->add_option("--ef-search", options->ef_search, "HNSW efSearch values to run")
        ->delimiter(',')
        ->check(CLI::Range(1, 65536));
    command->add_option("--seed", options->seed, "Seed of the generated data");
    command->add_option("--batch", options->batch, "Vectors per add_batch() during the build")
        ->check(CLI::Range(1, 100000000));
    command->add_option("--add-threads", options->add_threads,
                        "OpenMP threads of each batch add (0: every core)")
        ->check(CLI::Range(0, 1024));
    command->add_option("--graph", options->graph,
                        "Load the built index from this file when an earlier run with the same "
                        "data and settings saved it there, else build it and save it there");
    cli.on_run(command, [options] { return run_bench(*options); });
}

}  // namespace sluice::app
