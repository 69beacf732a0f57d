#pragma once
// The FAISS factory strings a vector index may be built from, checked before FAISS sees them.
//
// FAISS's index_factory accepts parameters it later crashes on, or crashes on itself: HNSW0
// segfaults at the first add, HNSW1 never finishes one (its level multiplier is 1 / ln 1),
// IVF0,Flat aborts on an assertion at the first add, PQ<m>x0 segfaults and PQ0 divides by zero
// inside the factory. An index is stored with its factory string and rebuilt from it at every
// open, so a string that is accepted once crashes every later start. Hence a grammar of our own
// with bounds on every number, instead of a list of known-bad strings:
//
//   Flat                         exact; removes in place
//   SQfp16                       half-precision codes, no training; removes in place
//   HNSW[<M>][,Flat | _Flat]     M 4 to 256 (FAISS's default 32 when absent)
//   IVF<nlist>,<codes>           nlist 1 to 65536
//      codes: Flat | SQ4 | SQ6 | SQ8 | SQfp16 | PQ<m>[x<bits>][np]
//             (m divides the dimension, bits 1 to 8, FAISS's default 8)
//
// Why the bounds: HNSW below M 4 is too sparse for the walk to find a stored vector by itself
// (self-recall@1 over 5,000 random 64-d vectors: M 2 0.49, M 3 0.82, M 4 0.97, M 6 1.00), and
// level 0 alone holds 2M neighbour ids a vector (8 KB at M 1024; HNSW100000 would take 800 KB a
// vector and does not finish an add). IVF trains at 39 vectors a list (VectorIndex), so 65536
// lists wait for 2.5M vectors; more is not a size this server trains under its write lock.
// FAISS 1.7 refuses PQ codes wider than 8 bits under IVF.
//
// Refused, each with its reason: the forms FAISS parses but this server cannot serve: indexes
// that need training outside IVF (SQ4/SQ6/SQ8, PQ, RQ/LSQ alone, HNSW over codes), id maps
// (IDMap, IDMap2: VectorIndex keeps its own), vector transforms (OPQ, PCA, RR, L2norm, ITQ, Pad),
// refinement (RFlat, Refine), coarse quantizers other than a flat one (IVF<n>_HNSW, IMI,
// Residual, parenthesised indexes), IVF codes whose search ignores per-query parameters or
// returns Hamming distances as scores (fast-scan PQ, spectral hashing), FlatDedup, LSH, NSG and
// lattices.
//
// Thread safety: a pure function.

#include <cstddef>
#include <string_view>

#include "common/status.h"

namespace sluice::retrieval {

// kInvalidArgument naming the factory string, the part at fault and what is expected.
// `dimension` 0: the width is not known yet (an index of the model before creation resolves
// it), and the check that needs it (PQ's m divides the dimension) waits for the known width.
Status validate_vector_factory(std::string_view factory, std::size_t dimension);

}  // namespace sluice::retrieval
