#pragma once
// The MoE half of a DBRX block under the expert plan and the grid on the CUDA backend
// (docs/parallel.md), matching the CPU plan (cpu/dbrx_expert_parallel.cpp):
//
//   1. each expert group routes its slice of the step's tokens (split_evenly over the groups):
//      top-k of the router logits, which the caller computed for every token as one rank does,
//      so the choice is one rank's bit for bit; the slice's (token, expert) pairs are sorted by
//      expert (permute_by_expert), which groups them by the group holding the expert;
//   2. the rows each group sends to each are counted on the device (rows_per_group),
//      all-gathered, and read on the host — one stream synchronisation per layer, since the
//      all-to-all's counts are host arguments (expert_exchange.h);
//   3. dispatch: all_to_all of [row | expert id] (pack_dispatch_rows);
//   4. the received rows are grouped by the rank's experts (permute_by_expert with k = 1, in
//      arrival order within an expert) and run through the grouped expert products over the
//      rank's experts; in the grid each rank of a group holds its ffn slice of the group's
//      experts, and the group's partial sums are all-reduced over `tensor_comm`;
//   5. combine: the outputs go back in arrival order (gather_rows), all_to_all back, and each
//      sender adds them to its tokens with the routing weights in ascending expert order
//      (unpermute_add), the single-rank order;
//   6. the slices are all-gathered so that every rank again holds the whole residual stream.
// Everything runs over `expert_comm`, one rank per group; all on the stream the communicators
// enqueue on. In the grid the ranks of a group hold the same tokens and route the same, so they
// exchange the same rows with their own column, side by side.
//
// Thread safety: owned by the rank's thread, as the backend that holds the buffers.

#include <cstdint>
#include <functional>
#include <vector>

#include "common/result.h"
#include "inference/communicator.h"
#include "inference/cuda/cuda_check.h"
#include "inference/cuda/moe.cuh"
#include "inference/cuda/step_buffers.h"
#include "inference/dbrx_shard.h"
#include "inference/model_config.h"

namespace sluice::inference::cuda {

// The exchange's device buffers for steps of up to `max_tokens` tokens over `n_groups` groups,
// allocated once with the step buffers (T = max_tokens, P = T · n_expert_used).
struct ExpertParallelBuffers {
    DeviceBuffer send;             // [P, d + 1]: the dispatch payload; later the combined rows
    DeviceBuffer recv;             // [P, d + 1]: the rows received
    DeviceBuffer recv_x;           // [P, d]: their states; later the outputs sent back
    DeviceBuffer recv_expert;      // [P] int32: their experts among the rank's own
    DeviceBuffer recv_offsets;     // [n_expert + 1] int32
    DeviceBuffer recv_pair_slot;   // [P] int32
    DeviceBuffer recv_slot_token;  // [P] int32
    DeviceBuffer rows;             // [n_groups] f32: rows this rank sends to each group
    DeviceBuffer rows_gathered;    // [n_groups, n_groups] f32
    DeviceBuffer slice_local;      // [ceil(T / n_groups), d]
    DeviceBuffer slice_gathered;   // [n_groups, ceil(T / n_groups), d]
    std::vector<float> host_rows;  // rows_gathered, read back

    static int64_t bytes(const ModelConfig& config, int64_t max_tokens, int n_groups);
    Status allocate(const ModelConfig& config, int64_t max_tokens, int n_groups);
};

// The backend's grouped expert products (moe.cuh): y = experts(x_sorted) for the rows grouped
// by `offsets` [shape.n_expert + 1].
using RunExperts = std::function<Status(const float* x_sorted, const int32_t* offsets,
                                        const ExpertShape& shape, float* y)>;

struct ExpertParallelLayer {
    const ModelConfig* config = nullptr;
    const DbrxShard* shard = nullptr;  // the rank's experts and ffn slice
    Communicator* expert_comm = nullptr;
    Communicator* tensor_comm = nullptr;  // the grid's group; null for the expert plan
    StepBuffers* buffers = nullptr;       // h: the normed states; router_logits: every token's
    ExpertParallelBuffers* exchange = nullptr;
    RunExperts run_experts;
    cudaStream_t stream = nullptr;
};

// x (buffers->x, [n_tokens, d], the whole residual stream on every rank) += the experts' output
// of every token. Collective over expert_comm (and tensor_comm): every rank calls it with the
// same n_tokens. The communicators' errors; kInternal when CUDA fails.
Status expert_parallel_moe(const ExpertParallelLayer& layer, int64_t n_tokens);

}  // namespace sluice::inference::cuda
