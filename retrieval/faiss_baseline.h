#pragma once
// Raw FAISS on the graph of a VectorIndex, the reference that `sluice bench ann` times the
// wrapper against. It borrows the index's own FAISS HNSW (so both search one graph, built once)
// and calls faiss::IndexHNSW::search directly: efSearch per call and an IDSelector that asks the
// same predicate the wrapper gets, with none of the wrapper's work around it (query copy and
// normalisation, the lock, planning by filter selectivity, the exact fallback, id mapping).
//
// exact() is the ground truth for recall: FAISS's exhaustive search over the same stored vectors
// (the HNSW's flat storage) under the same selector.
//
// Thread safety: immutable after attach(); search() and exact() may run on many threads. The
// VectorIndex must outlive the baseline and take no writes while it is used.

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "common/result.h"
#include "retrieval/vector_index.h"

namespace sluice::retrieval {

class FaissBaseline {
public:
    // kFailedPrecondition unless `index` is an HNSW index over flat (uncompressed) storage.
    static Result<std::unique_ptr<FaissBaseline>> attach(const VectorIndex& index);

    // `query` holds dimension floats, already normalised for cosine. Scores are FAISS's inner
    // products (the bench uses inner product and cosine). Labels FAISS does not fill are dropped.
    Result<std::vector<ScoredId>> search(const float* query, std::size_t k, int ef_search,
                                         const std::function<bool(std::uint64_t)>* allow) const;
    Result<std::vector<ScoredId>> exact(const float* query, std::size_t k,
                                        const std::function<bool(std::uint64_t)>* allow) const;

    struct Tag {};
    FaissBaseline(Tag, VectorIndex::FaissView view, const faiss::Index* storage);

private:
    VectorIndex::FaissView view_;
    const faiss::Index* storage_;
};

}  // namespace sluice::retrieval
