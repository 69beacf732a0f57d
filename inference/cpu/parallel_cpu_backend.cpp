// The parallel CPU backend: one worker thread per rank, each running DbrxModel over its shard
// and its own KV cache; the ranks meet in the model's collectives (dbrx.h), over the group of
// all ranks and, in a tensor x expert grid, over its rows and columns.
#include "inference/cpu/parallel_cpu_backend.h"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <thread>

#include "common/log.h"
#include "inference/cpu/attention.h"
#include "inference/cpu/dbrx.h"
#include "inference/dbrx_shard.h"
#include "inference/detail/forward_validation.h"
#include "inference/detail/rank_workers.h"
#include "inference/grid_communicators.h"
#include "inference/local_communicator.h"
#include "inference/step_relay.h"
#include "inference/tcp_communicator.h"

namespace sluice::inference::cpu {

namespace {

struct Rank {
    std::unique_ptr<Communicator> comm;  // every rank
    // The grid's: this rank's expert group (tensor_comm) and the ranks of its tensor index in
    // every group (expert_comm); declared after `comm`, so destroyed before it.
    std::unique_ptr<Communicator> tensor_comm;
    std::unique_ptr<Communicator> expert_comm;
    std::unique_ptr<DbrxModel> model;
    KvCacheStorage cache;
    ForwardOutput out;
    Status status;
};

class ParallelCpuBackend final : public Backend {
public:
    ParallelCpuBackend(ModelConfig config, const ParallelConfig& parallel,
                       std::unique_ptr<Checkpoint> checkpoint,
                       std::vector<std::unique_ptr<Rank>> ranks)
        : config_(std::move(config)),
          plan_(parallel.plan()),
          n_ranks_(parallel.n_ranks()),
          node_(parallel.node),
          n_nodes_(parallel.n_nodes()),
          checkpoint_(std::move(checkpoint)),
          ranks_(std::move(ranks)),
          workers_(ranks_.size(), [this](size_t r) { work(r); }) {}

    std::string name() const override {
        std::string name = "cpu-" + std::string(parallel_plan_name(plan_)) + "-parallel-" +
                           std::to_string(n_ranks_);
        if (n_nodes_ > 1) {
            name += "-node-" + std::to_string(node_) + "-of-" + std::to_string(n_nodes_);
        }
        return name;
    }
    const ModelConfig& config() const override { return config_; }

    BackendMemory memory() const override {
        // The embedding is one table every rank reads (borrowed from the mapping, or owned by
        // each when converted); it is counted once, like the single-rank backend does.
        BackendMemory total{ranks_.front()->model->weights().embedding.bytes(), 0};
        for (const auto& rank : ranks_) {
            total.weight_bytes +=
                dense_bytes(rank->model->weights()) + expert_bytes(rank->model->weights());
            total.kv_cache_bytes += rank->cache.bytes();
        }
        return total;
    }

    // Summed over the ranks: each reads its dense slices and its share of the routed experts.
    int64_t active_weight_bytes() const override {
        int64_t bytes = ranks_.front()->model->weights().embedding.bytes() / config_.n_vocab;
        for (const auto& rank : ranks_) {
            const DbrxWeights& w = rank->model->weights();
            bytes += dense_bytes(w) + expert_bytes(w) / config_.n_expert * config_.n_expert_used;
        }
        return bytes;
    }

    Status configure_kv_cache(const KvCacheSpec& spec) override {
        SLUICE_RETURN_IF_ERROR(failure());
        for (const auto& rank : ranks_) {
            const Status configured =
                rank->cache.configure(spec, config_.n_layer, rank->model->n_embd_kv());
            if (!configured.ok()) {
                // The other ranks (of every node) are about to meet below: free them.
                rank->comm->abort("configuring the KV cache: " + configured.message());
                return configured;
            }
        }
        // Every rank of every node meets here, so an engine spanning nodes opens on node 0 only
        // once every node has loaded its shards and configured its cache.
        workers_.run_step();  // batch_ null: the barrier
        for (const auto& rank : ranks_) {
            SLUICE_RETURN_IF_ERROR(rank->status);
        }
        return Status::ok_status();
    }
    KvCacheSpec kv_cache_spec() const override { return ranks_.front()->cache.spec(); }

    Result<ForwardOutput> forward(const ForwardBatch& batch) override {
        SLUICE_RETURN_IF_ERROR(failure());
        SLUICE_RETURN_IF_ERROR(detail::validate_forward_batch(batch, config_, kv_cache_spec()));
        batch_ = &batch;
        workers_.run_step();
        batch_ = nullptr;
        for (const auto& rank : ranks_) {
            if (!rank->status.ok()) {
                std::lock_guard lock(mutex_);
                failed_ = rank->status;
                log::error("inference", "parallel cpu backend stopped",
                           {{"error", failed_.to_string()}});
                return failed_;
            }
        }
        return std::move(ranks_.front()->out);
    }

    Status copy_kv_block(int32_t src, int32_t dst) override {
        SLUICE_RETURN_IF_ERROR(failure());
        SLUICE_RETURN_IF_ERROR(detail::validate_kv_block_copy(src, dst, kv_cache_spec()));
        if (src != dst) {
            for (const auto& rank : ranks_) {
                rank->cache.copy_block(src, dst);
            }
        }
        return Status::ok_status();
    }

    Status health() const override {
        std::lock_guard lock(mutex_);
        return failed_;
    }

private:
    static int64_t dense_bytes(const DbrxWeights& w) {
        int64_t bytes = w.lm_head.bytes();
        for (const DbrxLayerWeights& layer : w.layers) {
            bytes += layer.wqkv.bytes() + layer.out_proj.bytes() + layer.router.bytes();
        }
        return bytes;
    }
    static int64_t expert_bytes(const DbrxWeights& w) {
        int64_t bytes = 0;
        for (const DbrxLayerWeights& layer : w.layers) {
            bytes += layer.w1.bytes() + layer.v1.bytes() + layer.w2t.bytes();
        }
        return bytes;
    }

    Status failure() const { return health(); }

    // One step of rank `index` (RankWorkers), or configure_kv_cache's barrier when there is no
    // batch: a failure aborts the group, which wakes the ranks waiting on this one; the first
    // reason is the one reported.
    void work(size_t index) {
        Rank& rank = *ranks_[index];
        rank.out = ForwardOutput{};
        if (batch_ == nullptr) {
            rank.status = rank.comm->barrier();
            return;
        }
        rank.status = rank.model->forward(*batch_, &rank.cache, &rank.out);
        if (!rank.status.ok()) {
            rank.comm->abort(rank.status.message());
        }
    }

    const ModelConfig config_;
    const ParallelPlan plan_;
    const int n_ranks_;  // of all nodes; ranks_ holds this node's
    const int node_;
    const int n_nodes_;
    std::unique_ptr<Checkpoint> checkpoint_;  // owns the mapping borrowed weights point into
    std::vector<std::unique_ptr<Rank>> ranks_;

    mutable std::mutex mutex_;
    Status failed_;  // guarded by mutex_; sticky once a step failed
    // The step's batch, set by forward() around run_step() (RankWorkers orders the accesses);
    // null outside forward(), when run_step() is configure_kv_cache's barrier.
    const ForwardBatch* batch_ = nullptr;
    detail::RankWorkers workers_;  // last: joined before the ranks are destroyed
};

// The communicators the model of each rank uses (dbrx.h): the grid's rows and columns, split
// from the group of all ranks (grid_communicators.h).
Status connect_ranks(const ParallelConfig& parallel, std::vector<std::unique_ptr<Rank>>* ranks) {
    if (parallel.plan() != ParallelPlan::kGrid) {
        return Status::ok_status();
    }
    std::vector<Communicator*> all;
    for (const auto& rank : *ranks) {
        all.push_back(rank->comm.get());
    }
    SLUICE_ASSIGN_OR_RETURN(std::vector<GridCommunicators> grid, split_grid(parallel, all));
    for (size_t r = 0; r < ranks->size(); ++r) {
        (*ranks)[r]->tensor_comm = std::move(grid[r].tensor);
        (*ranks)[r]->expert_comm = std::move(grid[r].expert);
    }
    return Status::ok_status();
}

RankComms comms_of(const Rank& rank, ParallelPlan plan) {
    switch (plan) {
        case ParallelPlan::kTensor:
            return {rank.comm.get(), rank.comm.get(), nullptr};
        case ParallelPlan::kExpert:
            return {rank.comm.get(), nullptr, rank.comm.get()};
        case ParallelPlan::kGrid:
            return {rank.comm.get(), rank.tensor_comm.get(), rank.expert_comm.get()};
    }
    return {};
}

}  // namespace

namespace {

// This node's ranks as one backend, and the group's control channel where the engine spans
// nodes (null on one node).
struct LocalRanks {
    std::unique_ptr<Backend> backend;
    std::shared_ptr<StepChannel> channel;
};

// One communicator per rank of this node: local ones on one node; across nodes, TCP ones joined
// through node 0's bootstrap (tcp_communicator.h), with the group's channel.
Result<TcpGroup> connect(const ParallelConfig& parallel) {
    if (!parallel.multi_node()) {
        SLUICE_ASSIGN_OR_RETURN(auto comms, create_local_communicators(parallel.n_ranks()));
        return TcpGroup{std::move(comms), nullptr};
    }
    return open_tcp_communicators({.nodes = parallel.nodes,
                                   .node = parallel.node,
                                   .local_ranks = parallel.ranks_per_node(),
                                   .timeout = std::chrono::seconds(parallel.join_timeout_s)});
}

Result<LocalRanks> open_local_ranks(const ModelConfig& config,
                                    std::unique_ptr<Checkpoint> checkpoint,
                                    const CpuBackendOptions& options) {
    const ParallelPlan plan = options.parallel.plan();
    SLUICE_RETURN_IF_ERROR(check_parallel_fits_model(options.parallel, config));
    SLUICE_ASSIGN_OR_RETURN(TcpGroup group, connect(options.parallel));
    std::vector<std::unique_ptr<Rank>> ranks;
    for (auto& comm : group.comms) {
        ranks.push_back(std::make_unique<Rank>());
        ranks.back()->comm = std::move(comm);
    }
    const auto n_local = static_cast<int>(ranks.size());
    SLUICE_RETURN_IF_ERROR(connect_ranks(options.parallel, &ranks));
    const int hardware = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const int n_threads =
        options.n_threads > 0 ? options.n_threads : std::max(1, hardware / n_local);
    for (auto& rank : ranks) {
        const int global = rank->comm->rank();
        auto shard = shard_for_rank(config, options.parallel, global);
        if (!shard.ok()) {
            rank->comm->abort("rank " + std::to_string(global) + ": " + shard.status().message());
            return shard.status();
        }
        DbrxWeights weights = load_dbrx_weights(config, *checkpoint, options.weights, *shard);
        rank->model = std::make_unique<DbrxModel>(config, std::move(weights), n_threads, *shard,
                                                  comms_of(*rank, plan));
    }
    log::info("inference", "parallel cpu backend opened",
              {{"plan", parallel_plan_name(plan)},
               {"ranks", std::to_string(options.parallel.n_ranks())},
               {"local_ranks", std::to_string(n_local)},
               {"node", std::to_string(options.parallel.node)},
               {"nodes", std::to_string(options.parallel.n_nodes())},
               {"tensor", std::to_string(options.parallel.tensor)},
               {"expert", std::to_string(options.parallel.expert)},
               {"threads_per_rank", std::to_string(n_threads)}});
    return LocalRanks{std::make_unique<ParallelCpuBackend>(config, options.parallel,
                                                           std::move(checkpoint), std::move(ranks)),
                      std::move(group.channel)};
}

}  // namespace

Result<std::unique_ptr<Backend>> open_parallel_cpu_backend(const ModelConfig& config,
                                                           std::unique_ptr<Checkpoint> checkpoint,
                                                           const CpuBackendOptions& options) {
    SLUICE_RETURN_IF_ERROR(check_runs_engine(options.parallel));
    SLUICE_ASSIGN_OR_RETURN(LocalRanks local,
                            open_local_ranks(config, std::move(checkpoint), options));
    if (local.channel == nullptr) {
        return std::move(local.backend);
    }
    return make_leader_backend(std::move(local.backend), std::move(local.channel), 0);
}

Result<std::unique_ptr<StepFollower>> open_parallel_cpu_follower(
    const ModelConfig& config, std::unique_ptr<Checkpoint> checkpoint,
    const CpuBackendOptions& options) {
    SLUICE_RETURN_IF_ERROR(check_follows(options.parallel));
    SLUICE_ASSIGN_OR_RETURN(LocalRanks local,
                            open_local_ranks(config, std::move(checkpoint), options));
    return std::make_unique<StepFollower>(std::move(local.backend), std::move(local.channel));
}

}  // namespace sluice::inference::cpu
