#pragma once
// Candidate ids for a filtered vector search, named on demand: FilterPostings produces them from
// its posting lists, VectorIndex::search scans them instead of asking an opaque predicate about
// every vector.
//
// Thread safety: a CandidateList is a value; a CandidateSource borrows whatever it reads and is
// called on the searching thread only.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

namespace sluice::retrieval {

// A superset of the ids a search's predicate admits, increasing, no repeats; `exact` when they
// are exactly those, so a scan need not ask the predicate again.
struct CandidateList {
    std::vector<std::uint64_t> ids;
    bool exact = false;
};

// The candidates of one search, or nullopt when they are more than `limit` (building them stops
// there, so a loose filter costs a few list sizes). VectorIndex::search calls it with its
// exact-scan budget when it plans and, only when it must scan without a list (a graph walk ran
// dry, or the sample planned a scan), once more with a larger limit, so a search that the walk
// answers pays for no more than the first, bounded call. It is called under the vector index's
// shared lock and must not call back into the index.
using CandidateSource = std::function<std::optional<CandidateList>(std::size_t limit)>;

}  // namespace sluice::retrieval
