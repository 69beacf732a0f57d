#include "app/retrieval_bench.h"

#include <chrono>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "app/bench_report.h"
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
        return std::to_string(it->get<long long>());
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
        int score = 0;
        if (!(fields >> query >> doc >> score)) {
            return invalid_argument(qrels_path.string() + ":" + std::to_string(line_no) +
                                    ": expected query-id, corpus-id and an integer score");
        }
        data.qrels[query][doc] = score;
    }
    return data;
}

namespace {

struct BenchOptions {
    std::string dataset;
    std::string mode = "lexical";
    std::string split = "test";
    std::string factory = "Flat";
    std::string language = "english";
    std::size_t dimension = 256;
    std::size_t limit_queries = 0;
    bool chunking = false;
    bool json = false;
};

int run_bench(const BenchOptions& options) {
    auto mode = retrieval::parse_query_mode(options.mode == "vector" ? "ann" : options.mode);
    if (!mode.ok()) {
        std::cerr << "sluice bench retrieval: " << mode.status().message() << "\n";
        return 2;
    }
    auto data = load_beir(options.dataset, options.split);
    if (!data.ok()) {
        std::cerr << "sluice bench retrieval: " << data.status().message() << "\n";
        return 1;
    }
    std::random_device random;
    auto dir = std::filesystem::temp_directory_path() /
               ("sluice-bench-retrieval-" + std::to_string(random()));
    struct Cleanup {
        std::filesystem::path path;
        ~Cleanup() {
            std::error_code ec;
            std::filesystem::remove_all(path, ec);
        }
    } cleanup{dir};

    retrieval::IndexSettings settings;
    settings.name = "bench";
    settings.language = options.language;
    settings.chunking = options.chunking;
    settings.embedder = "lexical-hash";
    settings.dimension = options.dimension;
    settings.factory = options.factory;
    // The bench reader may read everything it indexed, so access checks run but admit all.
    const retrieval::Reader reader{"bench", {}};

    auto build_start = Clock::now();
    auto created = retrieval::Index::create(dir, settings, retrieval::IndexDeps{});
    if (!created.ok()) {
        std::cerr << "sluice bench retrieval: " << created.status().message() << "\n";
        return 1;
    }
    auto& index = *created;
    const std::size_t batch_size = 1000;
    for (std::size_t first = 0; first < data->corpus.size(); first += batch_size) {
        std::vector<retrieval::Document> batch;
        for (std::size_t i = first; i < std::min(first + batch_size, data->corpus.size()); ++i) {
            const auto& doc = data->corpus[i];
            retrieval::Document d;
            d.key = doc.id;
            d.title = doc.title;
            d.text = doc.text;
            d.acl.principals = {"bench"};
            batch.push_back(std::move(d));
        }
        auto upserted = index->upsert(batch);
        if (!upserted.ok()) {
            std::cerr << "sluice bench retrieval: " << upserted.status().message() << "\n";
            return 1;
        }
    }
    if (auto saved = index->snapshot(); !saved.ok()) {
        std::cerr << "sluice bench retrieval: " << saved.message() << "\n";
        return 1;
    }
    double build_s = seconds_since(build_start);
    auto stats = index->stats();

    std::vector<double> ndcg;
    std::vector<double> recall;
    std::vector<double> mrr;
    std::vector<double> latency_ms;
    auto run_start = Clock::now();
    for (const auto& [query_id, judged] : data->qrels) {
        if (options.limit_queries != 0 && latency_ms.size() == options.limit_queries) {
            break;
        }
        auto text = data->queries.find(query_id);
        if (text == data->queries.end()) {
            continue;
        }
        retrieval::Query query;
        query.text = text->second;
        query.k = 100;
        query.mode = *mode;
        auto start = Clock::now();
        auto hits = index->query(query, reader);
        latency_ms.push_back(seconds_since(start) * 1000.0);
        if (!hits.ok()) {
            std::cerr << "sluice bench retrieval: query " << query_id << ": "
                      << hits.status().message() << "\n";
            return 1;
        }
        std::vector<std::string> ranked;
        for (const auto& hit : *hits) {
            ranked.push_back(hit.chunk.doc_key);
        }
        ndcg.push_back(retrieval::ndcg_at_k(ranked, judged, 10));
        recall.push_back(retrieval::recall_at_k(ranked, judged, 100));
        mrr.push_back(retrieval::mrr_at_k(ranked, judged, 10));
    }
    double run_s = seconds_since(run_start);
    auto mean = [](const std::vector<double>& v) {
        double sum = 0;
        for (double x : v) {
            sum += x;
        }
        return v.empty() ? 0.0 : sum / static_cast<double>(v.size());
    };
    double qps = run_s > 0 ? static_cast<double>(latency_ms.size()) / run_s : 0.0;
    double p50 = retrieval::quantile(latency_ms, 0.5);
    double p99 = retrieval::quantile(latency_ms, 0.99);
    std::uint64_t index_bytes = stats.store_disk_bytes + stats.snapshot_disk_bytes;

    BenchReport report("retrieval");
    report.set_columns({"mode", "queries", "nDCG@10", "Recall@100", "MRR@10", "queries/s",
                        "p50 ms", "p99 ms"});
    report.add_row({options.mode, std::to_string(latency_ms.size()), format_fixed(mean(ndcg), 4),
                    format_fixed(mean(recall), 4), format_fixed(mean(mrr), 4),
                    format_fixed(qps, 1), format_fixed(p50, 3), format_fixed(p99, 3)});
    report.add_note("data set " + options.dataset + ": " + std::to_string(data->corpus.size()) +
                    " documents, " + std::to_string(stats.chunks) + " chunks; index built in " +
                    format_fixed(build_s, 2) + " s (analysis, " + settings.embedder + "/" +
                    std::to_string(settings.dimension) + " vectors, " + settings.factory +
                    ", RocksDB commits, snapshot); on disk " +
                    format_fixed(static_cast<double>(index_bytes) / (1024.0 * 1024.0), 1) +
                    " MiB, BM25 postings in memory " +
                    format_fixed(static_cast<double>(stats.lexical_memory_bytes) /
                                     (1024.0 * 1024.0), 1) +
                    " MiB; queries run one at a time on one thread");
    report.set_figure("mode", options.mode);
    report.set_figure("dataset", options.dataset);
    report.set_figure("documents", data->corpus.size());
    report.set_figure("queries", latency_ms.size());
    report.set_figure("ndcg@10", mean(ndcg));
    report.set_figure("recall@100", mean(recall));
    report.set_figure("mrr@10", mean(mrr));
    report.set_figure("qps", qps);
    report.set_figure("p50_ms", p50);
    report.set_figure("p99_ms", p99);
    report.set_figure("build_s", build_s);
    report.set_figure("index_bytes", index_bytes);
    report.set_figure("lexical_memory_bytes", stats.lexical_memory_bytes);
    report.print(options.json);
    return 0;
}

}  // namespace

void add_retrieval_bench(Cli& cli) {
    auto options = std::make_shared<BenchOptions>();
    auto* command = cli.bench().add_subcommand(
        "retrieval", "Retrieval quality and speed on a BEIR-format data set");
    command->add_option("--dataset", options->dataset,
                        "Folder with corpus.jsonl[.gz], queries.jsonl, qrels/<split>.tsv")
        ->required();
    command->add_option("--mode", options->mode, "lexical, vector or hybrid")
        ->check(CLI::IsMember({"lexical", "vector", "hybrid"}));
    command->add_option("--split", options->split, "qrels split to evaluate");
    command->add_option("--factory", options->factory, "FAISS factory string for vectors");
    command->add_option("--language", options->language, "Snowball language of the analyzer");
    command->add_option("--dim", options->dimension, "lexical-hash embedding dimension");
    command->add_option("--limit-queries", options->limit_queries, "Run at most this many");
    command->add_flag("--chunk", options->chunking,
                      "Split documents into chunks (BEIR baselines index whole documents)");
    command->add_flag("--json", options->json, "Print the figures as one JSON line last");
    cli.on_run(command, [options] { return run_bench(*options); });
}

}  // namespace sluice::app
