#pragma once
// `sluice bench ann`: the HNSW vector index at scale with filtered queries, against raw FAISS.
//
//   data      --n vectors (default 1,000,000) of --dim floats (default 384) from a Gaussian
//             mixture (app/ann_dataset.h), each with `tenant` (1..100) and `year` (2015..2024)
//   build     retrieval::VectorIndex, factory HNSW<--m>, --ef-construction, cosine, one vector
//             per add() as the index receives upserts; build time and resident memory
//   filters   none, year >= 2015 (100%, through the selector), year = Y (10%), tenant = T (1%),
//             tenant = T and year = Y (0.1%), each evaluated per candidate by the same code as
//             Index::query's admission (chunk table lookup, ACL check, Filter::matches)
//   search    one query at a time on one thread, for each --ef-search: the wrapper
//             (VectorIndex::search) and raw FAISS (faiss::IndexHNSW::search with the same
//             efSearch and the same predicate as an IDSelector, retrieval/faiss_baseline.h) on
//             the same graph, alternating which goes first; recall@k against FAISS's exact search
//             under the same filter on the first --truth queries; p50/p99 ms, queries/s, and the
//             wrapper's overhead over raw FAISS in mean time per query
//
// Thread safety: owned by the main thread.

#include "app/cli.h"

namespace sluice::app {

void add_ann_bench(Cli& cli);

}  // namespace sluice::app
