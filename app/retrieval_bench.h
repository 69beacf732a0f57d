#pragma once
// `sluice bench retrieval --dataset DIR [--mode lexical,vector,hybrid] [--json]`: builds an index
// from a BEIR-format data set (corpus.jsonl[.gz], queries.jsonl[.gz], qrels/test.tsv), runs every
// judged query once per mode (and per fusion setting for hybrid) over that one index, and reports
// nDCG@10, Recall@100, MRR@10, queries per second, p50/p99 latency, index size and build time.
// The options (embedder, fusion settings, query halves, a reusable index folder) are in
// app/retrieval_bench_options.h.

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "app/cli.h"
#include "common/result.h"
#include "retrieval/eval_metrics.h"

namespace sluice::app {

struct BeirDocument {
    std::string id;
    std::string title;
    std::string text;
};

struct BeirDataset {
    std::vector<BeirDocument> corpus;
    std::map<std::string, std::string> queries;  // id -> text
    std::map<std::string, retrieval::Judgements> qrels;  // query id -> judgements
};

// Reads DIR/corpus.jsonl (or .jsonl.gz), DIR/queries.jsonl (or .gz) and DIR/qrels/<split>.tsv.
// kNotFound names a missing file; kInvalidArgument gives file and line of a malformed record.
Result<BeirDataset> load_beir(const std::filesystem::path& dir, const std::string& split);

void add_retrieval_bench(Cli& cli);

}  // namespace sluice::app
