#pragma once
// Times the CPU backend's batch-1 decode product on its own: one token times a bf16 weight
// matrix [rows, cols] through the backend's Matmul and thread pool, the work that makes up a
// decode step. `sluice bench decode` sets its memory rate beside a whole step's, which tells the
// kernel's rate from the step's other costs, and times both layouts of the weights (row-major,
// and the panels the backend loads bf16 weights into) in the same run.
//
// Errors: kInvalidArgument for sizes below one, a panel layout the shape does not fit (rows a
// multiple of 4, cols of 16), or more than 16 GiB of weights.
// Thread safety: any thread; each call owns its matrices and thread pool.

#include <cstdint>

#include "common/result.h"

namespace sluice::inference {

enum class GemvLayout { kRows, kPanels };

struct GemvTiming {
    double median_seconds = 0;  // of one product
    double best_seconds = 0;
    int64_t weight_bytes = 0;  // read per product
    // The process's CPU time per product (all threads). On a machine shared with other work,
    // bytes per CPU second compare kernels where wall time mostly measures the CPU share.
    double cpu_seconds = 0;
};

// Runs `repeats` products after one untimed one (which makes the weights resident).
Result<GemvTiming> time_cpu_decode_gemv(int64_t rows, int64_t cols, int n_threads,
                                        GemvLayout layout, int repeats);

}  // namespace sluice::inference
