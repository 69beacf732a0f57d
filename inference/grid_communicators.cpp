#include "inference/grid_communicators.h"

#include <string>
#include <thread>

namespace sluice::inference {

Result<std::vector<GridCommunicators>> split_grid(
    const ParallelConfig& parallel, std::span<Communicator* const> all,
    const std::function<Status(size_t local_rank)>& prepare) {
    std::vector<GridCommunicators> grid(all.size());
    std::vector<Status> results(all.size());
    auto split_one = [&](size_t r) -> Status {
        Communicator& comm = *all[r];
        if (prepare) {
            SLUICE_RETURN_IF_ERROR(prepare(r));
        }
        const int global = comm.rank();
        const int group = parallel.expert_group(global);
        const int index = parallel.tensor_index(global);
        SLUICE_ASSIGN_OR_RETURN(grid[r].tensor, comm.split(group, index));
        SLUICE_ASSIGN_OR_RETURN(grid[r].expert, comm.split(index, group));
        return Status::ok_status();
    };
    {
        std::vector<std::jthread> threads;
        for (size_t r = 0; r < all.size(); ++r) {
            threads.emplace_back([&, r] {
                results[r] = split_one(r);
                if (!results[r].ok()) {
                    all[r]->abort("splitting the grid: " + results[r].message());
                }
            });
        }
    }  // joins
    for (const Status& result : results) {
        SLUICE_RETURN_IF_ERROR(result);
    }
    return grid;
}

}  // namespace sluice::inference
