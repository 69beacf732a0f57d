#pragma once
// The expert plan's token exchange on the device (docs/parallel.md, expert_exchange.h): the
// kernels around the two all-to-alls of a layer's experts.
//
//   rows_per_group        a rank's rows for each expert group, from its expert-sorted pairs'
//                         offsets (fp32 counts, to be all-gathered).
//                         CPU reference: rows_per_group (expert_exchange.h).
//   pack_dispatch_rows    the dispatch payload: each sorted pair's row and its expert id in an
//                         extra fp32 column. CPU reference: cpu::pack_dispatch_rows.
//   unpack_dispatch_rows  the receiver's rows and the index of their expert among its own.
//                         CPU reference: cpu::unpack_dispatch_rows.
//   gather_rows           dst[i] = src[index[i]]: puts the experts' outputs back in the order
//                         their rows arrived. CPU reference: cpu::gather_rows.
//
// Host launchers check shapes, launch on `stream` and return the launch error; pointers are
// device pointers. A count of zero launches nothing.

#include <cstdint>

#include "inference/cuda/cuda_check.h"

namespace sluice::inference::cuda {

// offsets: [n_expert + 1], read only when n_slots > 0 (else every count is 0); rows: [n_groups]
Status rows_per_group(const int32_t* offsets, int64_t n_expert, int64_t n_slots, int n_groups,
                      float* rows, cudaStream_t stream);

// x_sorted: [n_slots, d]; offsets: [n_expert + 1]; send: [n_slots, d + 1]
Status pack_dispatch_rows(const float* x_sorted, const int32_t* offsets, int64_t n_expert,
                          int64_t n_slots, int64_t d, float* send, cudaStream_t stream);

// recv: [n_rows, d + 1]; x: [n_rows, d]; local_expert: [n_rows]
Status unpack_dispatch_rows(const float* recv, int64_t n_rows, int64_t d, int64_t expert_begin,
                            float* x, int32_t* local_expert, cudaStream_t stream);

// src: [*, d]; index: [n_rows]; dst: [n_rows, d]
Status gather_rows(const float* src, const int32_t* index, int64_t n_rows, int64_t d, float* dst,
                   cudaStream_t stream);

}  // namespace sluice::inference::cuda
