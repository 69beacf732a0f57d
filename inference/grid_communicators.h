#pragma once
// The rows and columns of a tensor x expert grid (parallel_config.h), split from the group of all
// ranks: rank r's row is its expert group's ranks (the tensor communicator, ordered by tensor
// index), its column the ranks with its tensor index in every group (the expert communicator,
// ordered by group). The CPU and CUDA parallel backends both build their grids here, so their
// ranks agree on who is in which sub-group by construction.
//
// A split is collective, so each local rank splits on its own thread; `prepare` (may be empty)
// runs first on that thread, for what the split needs there (the CUDA backend selects the rank's
// device). A rank that fails aborts the group through its communicator, so that the other ranks'
// splits (and any other node's) stop waiting, and the first failure is returned.
//
// Thread safety: call from one thread; it joins the threads it starts.

#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "common/result.h"
#include "inference/communicator.h"
#include "inference/parallel_config.h"

namespace sluice::inference {

struct GridCommunicators {
    std::unique_ptr<Communicator> tensor;  // the rank's row: its expert group
    std::unique_ptr<Communicator> expert;  // the rank's column: its tensor index in every group
};

// One entry per communicator of `all` (this node's ranks, each the group of all ranks).
// Precondition: parallel.plan() is kGrid.
Result<std::vector<GridCommunicators>> split_grid(
    const ParallelConfig& parallel, std::span<Communicator* const> all,
    const std::function<Status(size_t local_rank)>& prepare = {});

}  // namespace sluice::inference
