#pragma once
// `sluice bench tokenizer [--json] [--corpus FILE] [--threads N] [--repeats N]`: encoding
// throughput of the tokenizer in MB/s on one thread and on all cores (Tokenizer::encode_batch),
// side by side with the reference tokenizer (npm `tiktoken`, WASM) on the same text, run as
// `node tools/tiktoken/bench.mjs FILE`. When node or the package is missing the table and the
// JSON say so and report ours alone. Token totals of both are compared as a sanity check.
//
// The default corpus is build/tokenizer/bench_corpus.jsonl, written by
// tools/tiktoken/make_cases.mjs: the shared corpora (SciFact, SQuAD, the Rust book) plus
// multilingual paragraphs. A corpus file is JSON lines {"text": ...}.

#include "app/cli.h"

namespace sluice::app {

void add_tokenizer_bench(Cli& cli);

}  // namespace sluice::app
