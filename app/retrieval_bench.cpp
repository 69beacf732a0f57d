#include "app/retrieval_bench.h"

#include <charconv>
#include <chrono>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "app/atomic_file.h"
#include "app/bench_report.h"
#include "app/http_embedder.h"
#include "app/retrieval_bench_options.h"
#include "retrieval/index.h"
#include "retrieval/text_file.h"

namespace sluice::app {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

Result<std::filesystem::path> find_file(const std::filesystem::path& base) {
    std::error_code ec;
    if (std::filesystem::exists(base, ec)) {
        return base;
    }
    auto gz = base;
    gz += ".gz";
    if (std::filesystem::exists(gz, ec)) {
        return gz;
    }
    return not_found("data set file '" + base.string() + "' (or .gz) does not exist");
}

// Calls `visit` with each parsed JSON line of a JSON Lines file.
Status for_each_json_line(const std::filesystem::path& path,
                          const std::function<Status(const nlohmann::json&)>& visit) {
    SLUICE_ASSIGN_OR_RETURN(std::string text, retrieval::read_text_file(path));
    std::size_t line_no = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t eol = text.find('\n', pos);
        std::string_view line(text.data() + pos,
                              (eol == std::string::npos ? text.size() : eol) - pos);
        pos = eol == std::string::npos ? text.size() : eol + 1;
        ++line_no;
        if (line.find_first_not_of(" \t\r") == std::string_view::npos) {
            continue;
        }
        auto json = nlohmann::json::parse(line, nullptr, false);
        if (json.is_discarded() || !json.is_object()) {
            return invalid_argument(path.string() + ":" + std::to_string(line_no) +
                                    ": not a JSON object");
        }
        SLUICE_RETURN_IF_ERROR(visit(json).with_context(path.string() + ":" +
                                                        std::to_string(line_no)));
    }
    return Status::ok_status();
}

// BEIR ids are strings, but some exports write numbers.
Result<std::string> id_of(const nlohmann::json& record) {
    auto it = record.find("_id");
    if (it == record.end()) {
        return invalid_argument("record has no _id");
    }
    if (it->is_string()) {
        return it->get<std::string>();
    }
    if (it->is_number_integer()) {
        return it->dump();  // as written: 2^64 - 1 read as a long long was "-1"
    }
    return invalid_argument("_id is neither a string nor an integer");
}

std::string string_field(const nlohmann::json& record, const char* name) {
    auto it = record.find(name);
    return it != record.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

Result<BeirDataset> load_beir(const std::filesystem::path& dir, const std::string& split) {
    BeirDataset data;
    SLUICE_ASSIGN_OR_RETURN(auto corpus_path, find_file(dir / "corpus.jsonl"));
    SLUICE_RETURN_IF_ERROR(for_each_json_line(corpus_path, [&](const nlohmann::json& record) {
        SLUICE_ASSIGN_OR_RETURN(std::string id, id_of(record));
        data.corpus.push_back(
            BeirDocument{id, string_field(record, "title"), string_field(record, "text")});
        return Status::ok_status();
    }));
    SLUICE_ASSIGN_OR_RETURN(auto queries_path, find_file(dir / "queries.jsonl"));
    SLUICE_RETURN_IF_ERROR(for_each_json_line(queries_path, [&](const nlohmann::json& record) {
        SLUICE_ASSIGN_OR_RETURN(std::string id, id_of(record));
        data.queries[id] = string_field(record, "text");
        return Status::ok_status();
    }));
    auto qrels_path = dir / "qrels" / (split + ".tsv");
    SLUICE_ASSIGN_OR_RETURN(std::string qrels, retrieval::read_text_file(qrels_path));
    std::istringstream lines(qrels);
    std::size_t line_no = 0;
    for (std::string line; std::getline(lines, line);) {
        ++line_no;
        if (!line.empty() && line.back() == '\r') {
            line.pop_back();
        }
        if (line.empty() || (line_no == 1 && line.rfind("query-id", 0) == 0)) {
            continue;
        }
        std::istringstream fields(line);
        std::string query;
        std::string doc;
        std::string score_text;
        std::string extra;
        int score = 0;
        // The whole score, and nothing after it: ">> int" read "1.5" as 1 and let a fourth
        // column pass.
        const bool read =
            static_cast<bool>(fields >> query >> doc >> score_text) && !(fields >> extra);
        const char* score_end = score_text.data() + score_text.size();
        auto [parsed_end, parse_error] = std::from_chars(score_text.data(), score_end, score);
        if (!read || parse_error != std::errc() || parsed_end != score_end) {
            return invalid_argument(qrels_path.string() + ":" + std::to_string(line_no) +
                                    ": expected query-id, corpus-id and an integer score");
        }
        data.qrels[query][doc] = score;
    }
    return data;
}

namespace {

int fail(const Status& status) {
    std::cerr << "sluice bench retrieval: " << status.message() << "\n";
    return 1;
}

// The index the runs query: created in a temporary folder (removed at the end), or created in
// --index-dir and reopened from it by later runs, whose upserts then find every document
// unchanged and embed nothing.
struct BenchIndex {
    std::unique_ptr<retrieval::Index> index;
    std::filesystem::path dir;
    bool temporary = true;
    bool reopened = false;

    BenchIndex() = default;
    BenchIndex(const BenchIndex&) = delete;
    BenchIndex& operator=(const BenchIndex&) = delete;
    ~BenchIndex() {
        index.reset();
        if (temporary && !dir.empty()) {
            std::error_code ec;
            std::filesystem::remove_all(dir, ec);
        }
    }
};

Status open_bench_index(const RetrievalBenchOptions& options, BenchIndex& out) {
    auto settings = bench_index_settings(options);
    retrieval::IndexDeps deps;
    deps.embedders = server_embedder_factory();
    if (options.index_dir.empty()) {
        std::random_device random;
        out.dir = std::filesystem::temp_directory_path() /
                  ("sluice-bench-retrieval-" + std::to_string(random()));
        out.temporary = true;
    } else {
        out.dir = options.index_dir;
        out.temporary = false;
        std::error_code ec;
        bool holds_files = std::filesystem::exists(out.dir, ec) &&
                           !std::filesystem::is_empty(out.dir, ec);
        if (holds_files) {
            SLUICE_ASSIGN_OR_RETURN(out.index, retrieval::Index::open(out.dir, deps));
            out.reopened = true;
            return check_reusable(out.index->settings(), settings);
        }
    }
    SLUICE_ASSIGN_OR_RETURN(out.index, retrieval::Index::create(out.dir, settings, deps));
    return Status::ok_status();
}

// Upserts the corpus in batches of 1,000 and snapshots the vectors.
Result<retrieval::UpsertStats> load_corpus(retrieval::Index& index, const BeirDataset& data) {
    const std::size_t batch_size = 1000;
    retrieval::UpsertStats total;
    for (std::size_t first = 0; first < data.corpus.size(); first += batch_size) {
        std::vector<retrieval::Document> batch;
        for (std::size_t i = first; i < std::min(first + batch_size, data.corpus.size()); ++i) {
            const auto& doc = data.corpus[i];
            retrieval::Document d;
            d.key = doc.id;
            d.title = doc.title;
            d.text = doc.text;
            d.acl.principals = {"bench"};
            batch.push_back(std::move(d));
        }
        SLUICE_ASSIGN_OR_RETURN(auto stats, index.upsert(batch));
        total.documents += stats.documents;
        total.unchanged += stats.unchanged;
        total.embedded += stats.embedded;
        total.embedding_cache_hits += stats.embedding_cache_hits;
    }
    SLUICE_RETURN_IF_ERROR(index.snapshot());
    // A reused folder that held another data set keeps that set's other documents.
    std::unordered_set<std::string> keys;
    for (const auto& doc : data.corpus) {
        keys.insert(doc.id);
    }
    if (index.document_count() != keys.size()) {
        return failed_precondition(
            "the index holds " + std::to_string(index.document_count()) +
            " documents after loading a corpus of " + std::to_string(keys.size()) +
            ": --index-dir holds another data set; use another folder or remove this one");
    }
    return total;
}

struct JudgedQuery {
    std::string id;
    std::string text;
    const retrieval::Judgements* judged = nullptr;
};

// The judged queries to run. Judgements of a query that queries.jsonl does not hold are left
// out, as BEIR's evaluation leaves out queries it did not run; `without_text` counts them.
Result<std::vector<JudgedQuery>> select_queries(const RetrievalBenchOptions& options,
                                                const BeirDataset& data,
                                                std::size_t& without_text) {
    std::vector<JudgedQuery> out;
    without_text = 0;
    for (const auto& [query_id, judged] : data.qrels) {
        if (options.limit_queries != 0 && out.size() == options.limit_queries) {
            break;
        }
        auto text = data.queries.find(query_id);
        if (text == data.queries.end()) {
            ++without_text;
            continue;
        }
        SLUICE_ASSIGN_OR_RETURN(bool taken, in_query_split(query_id, options.query_split));
        if (taken) {
            out.push_back(JudgedQuery{query_id, text->second, &judged});
        }
    }
    return out;
}

struct RunFigures {
    double ndcg = 0;
    double recall = 0;
    double mrr = 0;
    double qps = 0;
    double p50_ms = 0;
    double p99_ms = 0;
    std::vector<double> query_ndcg;  // per query, in the order of the judged queries
    std::vector<double> query_recall;
    std::vector<double> query_mrr;
};

double mean(const std::vector<double>& values) {
    double sum = 0;
    for (double x : values) {
        sum += x;
    }
    return values.empty() ? 0.0 : sum / static_cast<double>(values.size());
}

Result<RunFigures> measure(const retrieval::Index& index, const RetrievalRun& run,
                           const std::vector<JudgedQuery>& queries) {
    // The bench reader may read everything it indexed, so access checks run but admit all.
    const retrieval::Reader reader{"bench", {}};
    std::vector<double> ndcg;
    std::vector<double> recall;
    std::vector<double> mrr;
    std::vector<double> latency_ms;
    auto run_start = Clock::now();
    for (const auto& judged_query : queries) {
        retrieval::Query query = run.query_template();
        query.text = judged_query.text;
        auto start = Clock::now();
        auto hits = index.query(query, reader);
        latency_ms.push_back(seconds_since(start) * 1000.0);
        if (!hits.ok()) {
            return hits.status().with_context(run.label() + ": query " + judged_query.id);
        }
        std::vector<std::string> ranked;
        for (const auto& hit : *hits) {
            ranked.push_back(hit.chunk.doc_key);
        }
        ndcg.push_back(retrieval::ndcg_at_k(ranked, *judged_query.judged, 10));
        recall.push_back(retrieval::recall_at_k(ranked, *judged_query.judged, 100));
        mrr.push_back(retrieval::mrr_at_k(ranked, *judged_query.judged, 10));
    }
    double run_s = seconds_since(run_start);
    RunFigures out;
    out.ndcg = mean(ndcg);
    out.recall = mean(recall);
    out.mrr = mean(mrr);
    out.query_ndcg = std::move(ndcg);
    out.query_recall = std::move(recall);
    out.query_mrr = std::move(mrr);
    out.qps = run_s > 0 ? static_cast<double>(latency_ms.size()) / run_s : 0.0;
    out.p50_ms = retrieval::quantile(latency_ms, 0.5);
    out.p99_ms = retrieval::quantile(latency_ms, 0.99);
    return out;
}

std::string describe_embedder(const retrieval::IndexSettings& settings) {
    std::string out = settings.embedder + "/" + std::to_string(settings.dimension);
    if (settings.embedder == "http") {
        out += " (" + settings.embedder_model + " at " + settings.embedder_endpoint + ")";
    }
    return out;
}

int run_bench(const RetrievalBenchOptions& options) {
    if (auto valid = validate(options); !valid.ok()) {
        std::cerr << "sluice bench retrieval: " << valid.message() << "\n";
        return 2;
    }
    auto data = load_beir(options.dataset, options.split);
    if (!data.ok()) {
        return fail(data.status());
    }
    std::size_t without_text = 0;
    auto queries = select_queries(options, *data, without_text);
    if (!queries.ok()) {
        return fail(queries.status());
    }
    const std::string unread = std::to_string(without_text) + " judged quer" +
                               (without_text == 1 ? "y" : "ies") + " of qrels/" + options.split +
                               ".tsv " + (without_text == 1 ? "is" : "are") +
                               " not in queries.jsonl";
    if (queries->empty()) {
        return fail(
            not_found(without_text == data->qrels.size()
                          ? "no judged query of split '" + options.split + "' has a text: " + unread
                          : "no judged query of split '" + options.split +
                                "' is in --query-split " + options.query_split));
    }
    if (without_text > 0) {
        std::cerr << "sluice bench retrieval: " << unread << "; left out\n";
    }

    auto build_start = Clock::now();
    BenchIndex bench;
    if (auto opened = open_bench_index(options, bench); !opened.ok()) {
        return fail(opened);
    }
    auto loaded = load_corpus(*bench.index, *data);
    if (!loaded.ok()) {
        return fail(loaded.status());
    }
    double build_s = seconds_since(build_start);
    auto stats = bench.index->stats();
    const auto& settings = bench.index->settings();

    BenchReport report("retrieval");
    report.set_columns({"mode", "queries", "nDCG@10", "Recall@100", "MRR@10", "queries/s",
                        "p50 ms", "p99 ms"});
    auto results = nlohmann::json::array();
    std::string per_query;
    for (const auto& run : expand_runs(options, retrieval::hybrid_fusion(settings))) {
        auto figures = measure(*bench.index, run, *queries);
        if (!figures.ok()) {
            return fail(figures.status());
        }
        for (std::size_t q = 0; q < queries->size(); ++q) {
            per_query += nlohmann::json{{"label", run.label()},
                                        {"query", (*queries)[q].id},
                                        {"ndcg@10", figures->query_ndcg[q]},
                                        {"recall@100", figures->query_recall[q]},
                                        {"mrr@10", figures->query_mrr[q]}}
                             .dump() +
                         "\n";
        }
        report.add_row({run.label(), std::to_string(queries->size()),
                        format_fixed(figures->ndcg, 4), format_fixed(figures->recall, 4),
                        format_fixed(figures->mrr, 4), format_fixed(figures->qps, 1),
                        format_fixed(figures->p50_ms, 3), format_fixed(figures->p99_ms, 3)});
        nlohmann::json row = {{"mode", run.mode},
                              {"label", run.label()},
                              {"ndcg@10", figures->ndcg},
                              {"recall@100", figures->recall},
                              {"mrr@10", figures->mrr},
                              {"qps", figures->qps},
                              {"p50_ms", figures->p50_ms},
                              {"p99_ms", figures->p99_ms}};
        if (run.mode == "hybrid") {
            row["fusion"] = run.fusion;
            row["index_default"] = run.index_default;
            row["candidates"] = run.candidates;
            if (run.fusion == "weighted") {
                row["vector_weight"] = run.vector_weight;
            }
        }
        if (results.empty()) {
            // The first row's figures stay at the top level, where single-mode runs put them.
            for (const char* key : {"ndcg@10", "recall@100", "mrr@10", "qps", "p50_ms", "p99_ms"}) {
                report.set_figure(key, row[key]);
            }
            report.set_figure("mode", run.mode);
        }
        results.push_back(std::move(row));
    }
    if (!options.per_query.empty()) {
        if (auto written = write_file_atomically(options.per_query, per_query, 0644);
            !written.ok()) {
            return fail(written.with_context("--per-query"));
        }
    }
    std::uint64_t index_bytes = stats.store_disk_bytes + stats.snapshot_disk_bytes;
    std::string how = bench.reopened ? "reopened from " + bench.dir.string() + " in "
                                     : "built in ";
    report.add_note("data set " + options.dataset + ": " + std::to_string(data->corpus.size()) +
                    " documents, " + std::to_string(stats.chunks) + " chunks; index " + how +
                    format_fixed(build_s, 2) + " s (analysis, " + describe_embedder(settings) +
                    " vectors, " + settings.factory + ", RocksDB commits, snapshot; " +
                    std::to_string(loaded->embedded) + " chunks embedded, " +
                    std::to_string(loaded->embedding_cache_hits) + " from the embedding cache, " +
                    std::to_string(loaded->unchanged) + " documents unchanged); on disk " +
                    format_fixed(static_cast<double>(index_bytes) / (1024.0 * 1024.0), 1) +
                    " MiB, BM25 postings in memory " +
                    format_fixed(static_cast<double>(stats.lexical_memory_bytes) /
                                     (1024.0 * 1024.0), 1) +
                    " MiB");
    report.add_note("queries: " + std::to_string(queries->size()) + " judged (--query-split " +
                    options.query_split + "), k = " + std::to_string(kRetrievalBenchK) +
                    ", one at a time on one thread; vector and hybrid latencies include "
                    "embedding the query");
    report.set_figure("dataset", options.dataset);
    report.set_figure("documents", data->corpus.size());
    report.set_figure("queries", queries->size());
    report.set_figure("query_split", options.query_split);
    report.set_figure("embedder", describe_embedder(settings));
    report.set_figure("results", results);
    report.set_figure("build_s", build_s);
    report.set_figure("embedded", loaded->embedded);
    report.set_figure("index_bytes", index_bytes);
    report.set_figure("lexical_memory_bytes", stats.lexical_memory_bytes);
    report.print(options.json);
    return 0;
}

}  // namespace

void add_retrieval_bench(Cli& cli) {
    auto options = std::make_shared<RetrievalBenchOptions>();
    auto* command = cli.bench().add_subcommand(
        "retrieval", "Retrieval quality and speed on a BEIR-format data set");
    command->add_option("--dataset", options->dataset,
                        "Folder with corpus.jsonl[.gz], queries.jsonl, qrels/<split>.tsv")
        ->required();
    command->add_option("--mode", options->modes,
                        "lexical, vector, hybrid, or several separated by commas (one row each, "
                        "over one index)")
        ->delimiter(',');
    command
        ->add_option("--fusion", options->fusions,
                     "Hybrid rows: index (the index's own fusion, what a query that names "
                     "none gets; the default), rrf (k = 60), weighted, or several separated "
                     "by commas")
        ->delimiter(',');
    command
        ->add_option("--vector-weight", options->vector_weights,
                     "Weighted fusion: the vector side's weight(s), 0 to 1 (default: the "
                     "index's: 0.2 for lexical-hash, else 0.5)")
        ->delimiter(',');
    command->add_option("--candidates", options->candidates,
                        "Hybrid: how deep each ranker goes before fusion (0: the product's "
                        "default, max(k, 100); else 100 to 1000, as k is 100 here); several "
                        "separated by commas")
        ->delimiter(',');
    command->add_option("--query-split", options->query_split,
                        "all, or even / odd: the judged queries whose integer id has that "
                        "parity (to choose settings on one half and report on the other)");
    command->add_option("--split", options->split, "qrels split to evaluate");
    command->add_option("--factory", options->factory, "FAISS factory string for vectors");
    command->add_option("--language", options->language, "Snowball language of the analyzer");
    command->add_option("--embedder", options->embedder,
                        "lexical-hash (weight-free, not semantic) or http (an OpenAI-compatible "
                        "/v1/embeddings server)");
    command->add_option("--embedder-endpoint", options->embedder_endpoint,
                        "http: the server's base URL, e.g. http://127.0.0.1:8011");
    command->add_option("--embedder-model", options->embedder_model,
                        "http: the \"model\" field of each request");
    command->add_option("--dim", options->dimension,
                        "Embedding dimension (required with --embedder http)")
        ->each([options](const std::string&) { options->dimension_given = true; });
    command->add_option("--index-dir", options->index_dir,
                        "Keep the index in this folder and reuse it on later runs with the same "
                        "settings (its documents are found unchanged: nothing is embedded again)");
    command->add_option("--per-query", options->per_query,
                        "Also write each row's figures per query to this file (JSON Lines)");
    command->add_option("--limit-queries", options->limit_queries, "Run at most this many");
    command->add_flag("--chunk", options->chunking,
                      "Split documents into chunks (BEIR baselines index whole documents)");
    command->add_flag("--json", options->json, "Print the figures as one JSON line last");
    cli.on_run(command, [options] { return run_bench(*options); });
}

}  // namespace sluice::app
