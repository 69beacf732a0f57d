#pragma once
// The parallel setting of an engine: how many ranks share the model and how they split it
// (docs/parallel.md), as the configuration's `parallel: {tensor, expert, nodes}` states it.
//
//   tensor: N  (N ranks) attention split by heads, out-projection row-parallel + all-reduce,
//              every expert's ffn split inside (w2 row-parallel + all-reduce), lm_head split by
//              vocabulary + all-gather.
//   expert: M  (M ranks) attention and lm_head as in the tensor plan; experts distributed whole
//              across the ranks, tokens dispatched to them and combined back by all-to-all.
//   both > 1   the grid: N x M ranks. Attention and lm_head are split across all N x M ranks
//              as in the tensor plan; the experts are distributed across M expert groups of N
//              ranks each (all-to-all between the groups), and each expert is split inside
//              across the N ranks of its group (w2 row-parallel + all-reduce in the group).
//              Rank r is tensor index r % N of expert group r / N, so a group's ranks are
//              neighbours (one node's GPUs, where the group's all-reduce is cheapest).
//   nodes      "host:port" of each node, the first being the NCCL bootstrap (rank 0). Empty or
//              one entry: this node only. Every node brings the same number of ranks (GPUs):
//              node k holds ranks k x R .. (k + 1) x R - 1, R = ranks / nodes. Node 0 schedules
//              and serves; the others follow its steps (step_relay.h).
//   node       this process's index in `nodes`.
//
// Thread safety: values.

#include <string>
#include <vector>

#include "common/result.h"
#include "inference/model_config.h"

namespace sluice::inference {

enum class ParallelPlan { kTensor, kExpert, kGrid };

// The most ranks a setting may name in all (tensor x expert), as the config schema bounds each.
inline constexpr int kMaxParallelRanks = 4096;

struct ParallelConfig {
    int tensor = 1;
    int expert = 1;
    std::vector<std::string> nodes;
    int node = 0;
    int join_timeout_s = 300;  // for every node to join the group (the bootstrap)

    int n_ranks() const { return tensor * expert; }
    int n_nodes() const { return nodes.size() > 1 ? static_cast<int>(nodes.size()) : 1; }
    bool multi_node() const { return n_nodes() > 1; }
    int ranks_per_node() const { return n_ranks() / n_nodes(); }
    ParallelPlan plan() const {
        if (tensor > 1 && expert > 1) {
            return ParallelPlan::kGrid;
        }
        return expert > 1 ? ParallelPlan::kExpert : ParallelPlan::kTensor;
    }
    bool parallel() const { return n_ranks() > 1; }
    // Rank r's place in the grid: its expert group and its index inside the group.
    int expert_group(int rank) const { return rank / tensor; }
    int tensor_index(int rank) const { return rank % tensor; }
};

// "tensor" | "expert" | "grid"
const char* parallel_plan_name(ParallelPlan plan);

// kInvalidArgument naming the field for sizes below 1, more than kMaxParallelRanks in all, a
// node that is not "host:port" with a port in 1..65535, `node` outside the node list, ranks that
// the nodes cannot share evenly, or a join timeout below one second.
Status validate_parallel_config(const ParallelConfig& config);

// kFailedPrecondition unless `config` puts this process on node 0, which runs the engine (the
// other nodes of several open as followers, step_relay.h).
Status check_runs_engine(const ParallelConfig& config);
// kFailedPrecondition unless `config` puts this process on node 1 or up of several.
Status check_follows(const ParallelConfig& config);

// kInvalidArgument naming the field when `model` cannot be split as `config` says: more ranks
// in all than attention heads, more expert groups than experts, or more ranks per expert than
// ffn columns. `config` was validated.
Status check_parallel_fits_model(const ParallelConfig& config, const ModelConfig& model);

}  // namespace sluice::inference
