#pragma once
// The parallel setting of an engine: how many ranks share the model and how they split it
// (docs/parallel.md), as the configuration's `parallel: {tensor, expert, nodes}` states it.
//
//   tensor: N  (N ranks) attention split by heads, out-projection row-parallel + all-reduce,
//              every expert's ffn split inside (w2 row-parallel + all-reduce), lm_head split by
//              vocabulary + all-gather.
//   expert: M  (M ranks) attention and lm_head as in the tensor plan; experts distributed whole
//              across the ranks, tokens dispatched to them and combined back by all-to-all.
//   both > 1   must be equal: the expert plan over that many ranks (its attention is the tensor
//              plan's), since a rank grid of tensor × expert groups is not implemented.
//   nodes      "host:port" of each node, the first being the NCCL bootstrap (rank 0). Empty or
//              one entry: this node only.
//
// Thread safety: values.

#include <string>
#include <vector>

#include "common/result.h"

namespace sluice::inference {

enum class ParallelPlan { kTensor, kExpert };

struct ParallelConfig {
    int tensor = 1;
    int expert = 1;
    std::vector<std::string> nodes;

    int n_ranks() const { return tensor > expert ? tensor : expert; }
    ParallelPlan plan() const { return expert > 1 ? ParallelPlan::kExpert : ParallelPlan::kTensor; }
    bool parallel() const { return n_ranks() > 1; }
};

// "tensor" | "expert"
const char* parallel_plan_name(ParallelPlan plan);

// kInvalidArgument naming the field for sizes below 1, tensor and expert both above 1 and
// different, or a node that is not "host:port" with a port in 1..65535.
Status validate_parallel_config(const ParallelConfig& config);

}  // namespace sluice::inference
