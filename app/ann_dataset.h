#pragma once
// Synthetic vectors with metadata for `sluice bench ann`, and recall against exact search.
//
// Vectors come from a Gaussian mixture: `centres` centres drawn from N(0, I), each vector a
// centre plus N(0, spread^2 I) noise, L2-normalised (the bench searches by inner product, that
// is cosine). Real embeddings cluster by topic; uniform random vectors in 384 dimensions have
// no neighbourhood structure at all (every point is nearly equidistant), which makes every graph
// index look far worse than it does on real data. spread 1 puts a vector's noise on the scale of
// its centre, so clusters overlap and neighbours are not trivially the cluster mates.
// Queries are fresh draws from the same mixture (not copies of indexed vectors).
//
// Metadata: each vector gets `tenant` uniform in 1..100 and `year` uniform in 2015..2024, drawn
// independently of its cluster, so `year = Y` admits 10% and `tenant = T` 1% of the vectors.
//
// Everything is a pure function of (n, dimension, centres, seed): the same arguments give the
// same bytes on every run.
//
// Thread safety: pure functions.

#include <cstdint>
#include <vector>

namespace sluice::app {

struct AnnDataSpec {
    std::size_t n = 0;
    std::size_t dimension = 0;
    std::size_t centres = 256;
    double spread = 1.0;
    std::uint64_t seed = 1;
};

struct AnnData {
    std::vector<float> vectors;  // [n, dimension], rows L2-normalised
    std::vector<std::uint8_t> tenant;  // [n], 1..100
    std::vector<std::uint16_t> year;   // [n], 2015..2024
};

// The indexed vectors and their metadata.
AnnData make_ann_data(const AnnDataSpec& spec);
// `count` query vectors [count, dimension] from the same mixture (same centres), other noise.
std::vector<float> make_ann_queries(const AnnDataSpec& spec, std::size_t count);

// Recall@k of `found` against the exact answer `truth` (best first): the share of the first
// min(k, |truth|) true neighbours that `found`'s first k contain; 1 when truth is empty.
double ann_recall(const std::vector<std::uint64_t>& found,
                  const std::vector<std::uint64_t>& truth, std::size_t k);

}  // namespace sluice::app
