#pragma once
// CPU references of the expert plan's dispatch kernels (cuda/expert_dispatch.cuh), of the same
// names and layouts. A dispatched row is a token's normalised state followed by the id of the
// expert it goes to, in one fp32 column (exact for any expert id), so that a receiving rank
// learns both from one all-to-all (docs/parallel.md).
//
// Thread safety: pure functions over caller-owned buffers.

#include <cstdint>

namespace sluice::inference::cpu {

// send[s] = [x_sorted[s] | e] where e is the expert whose slots [offsets[e], offsets[e + 1])
// hold slot s.
// x_sorted: [n_slots, d]; offsets: [n_expert + 1]; send: [n_slots, d + 1]
void pack_dispatch_rows(const float* x_sorted, const int32_t* offsets, int64_t n_expert,
                        int64_t n_slots, int64_t d, float* send);

// The inverse on the receiving rank: x[i] = recv[i][0, d) and local_expert[i] = recv[i][d] -
// expert_begin, the expert's index among the rank's own.
// recv: [n_rows, d + 1]; x: [n_rows, d]; local_expert: [n_rows]
void unpack_dispatch_rows(const float* recv, int64_t n_rows, int64_t d, int64_t expert_begin,
                          float* x, int32_t* local_expert);

// dst[i] = src[index[i]].
// src: [*, d]; index: [n_rows]; dst: [n_rows, d]
void gather_rows(const float* src, const int32_t* index, int64_t n_rows, int64_t d, float* dst);

}  // namespace sluice::inference::cpu
