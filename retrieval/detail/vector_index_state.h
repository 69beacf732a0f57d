#pragma once
// VectorIndex's state behind its lock, shared by the index's operations (vector_index.cpp) and
// its snapshot format (vector_index_snapshot.cpp).
//
// Thread safety: guarded by VectorIndex's mutex.

#include <faiss/Index.h>
#include <faiss/IndexHNSW.h>

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "retrieval/vector_index.h"

namespace sluice::retrieval {

// What FAISS holds. For kIdMap and kHnsw the inner index numbers vectors by position and `ids`
// maps positions to our ids (HNSW never frees a position; a removed one is `dead`). IVF stores
// our ids itself; `ivf_ids` mirrors them.
struct VectorIndex::State {
    std::unique_ptr<faiss::Index> index;
    std::vector<std::uint64_t> ids;
    std::vector<std::uint8_t> dead;
    std::unordered_map<std::uint64_t, std::int64_t> position;
    std::size_t dead_count = 0;
    std::unordered_set<std::uint64_t> ivf_ids;
};

namespace detail {

// FAISS before 1.8 (Debian ships 1.7.3) sizes HNSW's candidate beam from the index's own
// hnsw.efSearch and reads SearchParametersHNSW::efSearch only in the stopping rule (fixed
// upstream by facebookresearch/faiss#3233). So the configured beam lives in the index, and a
// per-query efSearch above it can only lift the early stop, not grow the beam.
inline void set_faiss_ef_search(faiss::Index& index, int ef_search) {
    if (auto* hnsw = dynamic_cast<faiss::IndexHNSW*>(&index)) {
        hnsw->hnsw.efSearch = ef_search;
    }
}

}  // namespace detail

}  // namespace sluice::retrieval
