#pragma once
// The options of `sluice bench retrieval`, their checks, and the runs they ask for: which
// embedder builds the vectors, which modes and fusion settings are measured over one index, on
// which queries, and whether the index is kept in a folder to be reused (a second run finds its
// documents unchanged and embeds only the queries, which matters with a slow embedder).
//
// Thread safety: value types and pure functions.

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "retrieval/index.h"
#include "retrieval/index_settings.h"

namespace sluice::app {

// Every query asks for 100 hits, for Recall@100.
inline constexpr std::size_t kRetrievalBenchK = 100;

struct RetrievalBenchOptions {
    std::string dataset;
    std::vector<std::string> modes = {"lexical"};  // lexical, vector, hybrid
    // Hybrid rows: index (what a query that names no fusion gets: the index's
    // retrieval::hybrid_fusion()), rrf, weighted.
    std::vector<std::string> fusions = {"index"};
    // Weighted fusion: one row per weight; empty takes the index's weight (hybrid_fusion()).
    std::vector<double> vector_weights;
    // Hybrid: how deep each ranker goes before fusion; 0 is the product's default. Index::query
    // takes max(k, depth), so only 0 or kRetrievalBenchK..1000 are accepted.
    std::vector<std::size_t> candidates = {0};
    std::string query_split = "all";  // all, even, odd: by the parity of integer query ids
    std::string split = "test";       // the qrels file
    std::string factory = "Flat";
    std::string language = "english";
    std::string embedder = "lexical-hash";  // lexical-hash or http
    std::string embedder_endpoint;
    std::string embedder_model;
    std::size_t dimension = 256;
    bool dimension_given = false;
    std::string index_dir;  // empty: a temporary index, removed after the run
    // When set, one JSON line per row and query ({"label", "query", "ndcg@10", "recall@100",
    // "mrr@10"}), for paired comparisons of rows; written atomically after the last row.
    std::string per_query;
    std::size_t limit_queries = 0;
    bool chunking = false;
    bool json = false;
};

// kInvalidArgument naming the first bad option and what it expects.
Status validate(const RetrievalBenchOptions& options);

// The index the bench builds from the options.
retrieval::IndexSettings bench_index_settings(const RetrievalBenchOptions& options);

// When a reused index folder holds an index built with other settings: kFailedPrecondition
// naming the first setting that differs, its stored and its requested value.
Status check_reusable(const retrieval::IndexSettings& stored,
                      const retrieval::IndexSettings& requested);

// Whether the query id belongs to the split: "all" takes every id; "even" and "odd" take
// integer ids by parity (kInvalidArgument for an id that is not an integer).
Result<bool> in_query_split(const std::string& query_id, const std::string& split);

// One measured row: a mode and, for hybrid, its fusion settings.
struct RetrievalRun {
    std::string mode;  // lexical, vector, hybrid
    // Hybrid only: rrf or weighted; with index_default, the index's own, which the query
    // leaves unnamed.
    std::string fusion;
    double vector_weight = 0;    // weighted only
    std::size_t candidates = 0;  // 0: the product's default depth
    bool index_default = false;
    std::string label() const;
    retrieval::Query query_template() const;
};

// The rows, in the order of --mode; each hybrid mode expands to every fusion x candidates (and
// every weight for weighted fusion). `index_fusion` is the index's hybrid_fusion(): what the
// "index" rows measure and the weight of weighted rows without --vector-weight.
std::vector<RetrievalRun> expand_runs(const RetrievalBenchOptions& options,
                                      const retrieval::FusionChoice& index_fusion);

}  // namespace sluice::app
