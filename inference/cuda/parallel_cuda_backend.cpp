// The CUDA backend's parallel plans: a worker thread per rank, each running its CudaBackend's step;
// the scheduler's thread hands every step to all ranks and takes rank 0's output, as the
// parallel CPU backend does (cpu/parallel_cpu_backend.cpp).
#include "inference/cuda/parallel_cuda_backend.h"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "common/log.h"
#include "inference/cuda/staged_communicator.h"
#include "inference/detail/forward_validation.h"
#include "inference/detail/rank_workers.h"
#include "inference/grid_communicators.h"
#include "inference/nccl_communicator.h"
#include "inference/step_relay.h"

namespace sluice::inference::cuda {

namespace {

struct Rank {
    std::unique_ptr<Backend> backend;  // owns the rank's communicator
    Communicator* comm = nullptr;      // borrowed from the backend, to abort the group
    Result<ForwardOutput> out = ForwardOutput{};
};

class ParallelCudaBackend final : public Backend {
public:
    ParallelCudaBackend(ModelConfig config, const CudaBackendOptions& options,
                        std::vector<std::unique_ptr<Rank>> ranks)
        : config_(std::move(config)),
          plan_(options.parallel.plan()),
          max_tokens_(options.max_batch_tokens),
          n_ranks_(options.parallel.n_ranks()),
          node_(options.parallel.node),
          n_nodes_(options.parallel.n_nodes()),
          ranks_share_device_(options.ranks_share_device),
          ranks_(std::move(ranks)),
          workers_(ranks_.size(), [this](size_t r) { work(r); }) {}

    std::string name() const override {
        std::string name = "cuda-" + std::string(parallel_plan_name(plan_)) + "-parallel-" +
                           std::to_string(n_ranks_) + (ranks_share_device_ ? "-one-device" : "");
        if (n_nodes_ > 1) {
            name += "-node-" + std::to_string(node_) + "-of-" + std::to_string(n_nodes_);
        }
        return name;
    }
    const ModelConfig& config() const override { return config_; }

    // Summed over the ranks: each holds its shard, and the embedding, norms and router whole.
    BackendMemory memory() const override {
        BackendMemory total{0, 0};
        for (const auto& rank : ranks_) {
            const BackendMemory m = rank->backend->memory();
            total.weight_bytes += m.weight_bytes;
            total.kv_cache_bytes += m.kv_cache_bytes;
        }
        return total;
    }
    int64_t active_weight_bytes() const override {
        int64_t bytes = 0;
        for (const auto& rank : ranks_) {
            bytes += rank->backend->active_weight_bytes();
        }
        return bytes;
    }

    Status configure_kv_cache(const KvCacheSpec& spec) override {
        SLUICE_RETURN_IF_ERROR(health());
        for (const auto& rank : ranks_) {
            if (Status configured = rank->backend->configure_kv_cache(spec); !configured.ok()) {
                // The other ranks (of every node) are about to meet below: free them.
                rank->comm->abort("configuring the KV cache: " + configured.message());
                return configured;
            }
        }
        // Every rank of every node meets here, so the engine opening on node 0 (and /readyz) is
        // ready only once all nodes have loaded their shards and configured their caches; a node
        // that could not has aborted the group, which fails this with its reason.
        workers_.run_step();  // batch_ null: the barrier
        for (const auto& rank : ranks_) {
            if (!rank->out.ok()) {
                return rank->out.status();
            }
        }
        return Status::ok_status();
    }
    KvCacheSpec kv_cache_spec() const override { return ranks_.front()->backend->kv_cache_spec(); }
    bool samples_on_device() const override { return true; }
    int64_t device_sample_capacity() const override {
        return ranks_.front()->backend->device_sample_capacity();
    }

    Result<ForwardOutput> forward(const ForwardBatch& batch) override {
        SLUICE_RETURN_IF_ERROR(health());
        // Refused here, before any rank starts: a rank refusing alone would abort the group.
        SLUICE_RETURN_IF_ERROR(
            detail::validate_forward_batch(batch, config_, kv_cache_spec(), true));
        const int64_t n_tokens = detail::batch_token_count(batch);
        if (n_tokens > max_tokens_) {
            return invalid_argument("forward: " + std::to_string(n_tokens) +
                                    " new tokens in one step, the cuda backend holds " +
                                    std::to_string(max_tokens_));
        }
        const auto n_sampled = std::ranges::count_if(
            batch.device_sample, [](const auto& sampling) { return sampling.has_value(); });
        if (n_sampled > device_sample_capacity()) {
            return invalid_argument("forward: " + std::to_string(n_sampled) +
                                    " entries sampled on the device in one step, the cuda "
                                    "backend samples at most " +
                                    std::to_string(device_sample_capacity()));
        }
        batch_ = &batch;
        workers_.run_step();
        batch_ = nullptr;
        for (const auto& rank : ranks_) {
            if (!rank->out.ok()) {
                std::lock_guard lock(mutex_);
                failed_ = rank->out.status();
                log::error("inference", "parallel cuda backend stopped",
                           {{"error", failed_.to_string()}});
                return failed_;
            }
        }
        return std::move(*ranks_.front()->out);
    }

    Status copy_kv_block(int32_t src, int32_t dst) override {
        SLUICE_RETURN_IF_ERROR(health());
        for (const auto& rank : ranks_) {
            SLUICE_RETURN_IF_ERROR(rank->backend->copy_kv_block(src, dst));
        }
        return Status::ok_status();
    }

    Status health() const override {
        std::lock_guard lock(mutex_);
        return failed_;
    }

private:
    // One step of rank `index` (RankWorkers), or the barrier of configure_kv_cache when there is
    // no batch: a failure aborts the group, which wakes the ranks waiting on this one; the first
    // reason is the one reported.
    void work(size_t index) {
        Rank& rank = *ranks_[index];
        if (batch_ == nullptr) {
            const Status met = rank.comm->barrier();
            rank.out =
                met.ok() ? Result<ForwardOutput>(ForwardOutput{}) : Result<ForwardOutput>(met);
            return;
        }
        rank.out = rank.backend->forward(*batch_);
        if (!rank.out.ok()) {
            rank.comm->abort(rank.out.status().message());
        }
    }

    const ModelConfig config_;
    const ParallelPlan plan_;
    const int64_t max_tokens_;
    const int n_ranks_;  // of all nodes; ranks_ holds this node's
    const int node_;
    const int n_nodes_;
    const bool ranks_share_device_;
    std::vector<std::unique_ptr<Rank>> ranks_;

    mutable std::mutex mutex_;
    Status failed_;  // guarded by mutex_; sticky once a step failed
    // The step's batch, set by forward() around run_step() (RankWorkers orders the accesses);
    // null outside forward(), when run_step() is configure_kv_cache's barrier.
    const ForwardBatch* batch_ = nullptr;
    detail::RankWorkers workers_;  // last: joined before the ranks are destroyed
};

// The places this backend does not run, refused with what is missing.
Status check_supported(const CudaBackendOptions& options) {
    if (options.ranks_share_device && options.parallel.multi_node()) {
        return invalid_argument(
            "parallel.nodes: " + std::to_string(options.parallel.n_nodes()) +
            " nodes, but CudaBackendOptions::ranks_share_device puts every rank on one GPU of "
            "this process");
    }
    return Status::ok_status();
}

// This node's ranks, connected: one communicator per local rank in rank order, and where the
// engine spans nodes the node's control channel, which carries node 0's steps.
struct Connection {
    std::vector<std::unique_ptr<Communicator>> comms;
    std::shared_ptr<StepChannel> channel;  // null on one node
};

// The staging communicators on options.device, or NCCL over this node's GPUs 0 .. R-1 (R ranks
// per node), joined with the other nodes' through node 0's bootstrap.
Result<Connection> connect(const CudaBackendOptions& options) {
    const ParallelConfig& parallel = options.parallel;
    if (options.ranks_share_device) {
        SLUICE_ASSIGN_OR_RETURN(auto comms,
                                create_staged_communicators(parallel.n_ranks(), options.device));
        return Connection{std::move(comms), nullptr};
    }
    const int local = parallel.ranks_per_node();
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        count = 0;
    }
    if (count < local) {
        std::string field = parallel.tensor > 1 ? "parallel.tensor" : "parallel.expert";
        std::string need = std::to_string(local) + " ranks need a GPU each";
        if (parallel.multi_node()) {
            field = "parallel";
            need = std::to_string(parallel.n_ranks()) + " ranks over " +
                   std::to_string(parallel.n_nodes()) + " nodes need " + std::to_string(local) +
                   " GPUs on each";
        }
        return unavailable("config field '" + field + "': " + need + ", " + std::to_string(count) +
                           " visible (CudaBackendOptions::ranks_share_device puts every rank on "
                           "one GPU, for tests)");
    }
    NcclGroupOptions group;
    for (int r = 0; r < local; ++r) {
        group.devices.push_back(r);
    }
    if (parallel.multi_node()) {
        group.root_address = parallel.nodes.front();
        group.node = parallel.node;
        group.n_nodes = parallel.n_nodes();
        group.timeout = std::chrono::seconds(parallel.join_timeout_s);
    }
    SLUICE_ASSIGN_OR_RETURN(std::vector<std::unique_ptr<NcclCommunicator>> nccl,
                            open_nccl_communicators(group));
    // The bootstrap numbers ranks node by node in the order the nodes declare them; a node
    // whose configuration disagrees would meet the others' collectives with the wrong shard.
    const int first = nccl.front()->rank();
    if (nccl.front()->size() != parallel.n_ranks() || first != parallel.node * local) {
        const std::string why =
            "node " + std::to_string(parallel.node) + " was given ranks " + std::to_string(first) +
            ".." + std::to_string(first + local - 1) + " of " +
            std::to_string(nccl.front()->size()) + ", its configuration says " +
            std::to_string(parallel.node * local) + ".." +
            std::to_string(parallel.node * local + local - 1) + " of " +
            std::to_string(parallel.n_ranks()) + ": every node needs the same parallel section";
        nccl.front()->abort(why);
        return failed_precondition("config field 'parallel': " + why);
    }
    Connection connection;
    if (parallel.multi_node()) {
        connection.channel = nccl.front()->step_channel();
    }
    for (auto& comm : nccl) {
        connection.comms.push_back(std::move(comm));
    }
    return connection;
}

// Each rank's communicators. In a grid, its row and column are split from the group of all
// ranks (grid_communicators.h, as the CPU backend does), each local rank on its device: NCCL's
// split enqueues there (local rank i runs on GPU i), and a staged rank shares `device`.
Result<std::vector<RankCommunicators>> connect_ranks(
    const ParallelConfig& parallel, std::vector<std::unique_ptr<Communicator>> comms, int device) {
    std::vector<RankCommunicators> ranks(comms.size());
    for (size_t r = 0; r < comms.size(); ++r) {
        ranks[r].all = std::move(comms[r]);
    }
    if (parallel.plan() != ParallelPlan::kGrid) {
        return ranks;
    }
    std::vector<Communicator*> all;
    for (const RankCommunicators& rank : ranks) {
        all.push_back(rank.all.get());
    }
    auto select_device = [&](size_t r) -> Status {
        const int rank_device = all[r]->name() == "nccl" ? static_cast<int>(r) : device;
        if (cudaSetDevice(rank_device) != cudaSuccess) {
            return internal_error("cannot select cuda device " + std::to_string(rank_device));
        }
        return Status::ok_status();
    };
    SLUICE_ASSIGN_OR_RETURN(std::vector<GridCommunicators> grid,
                            split_grid(parallel, all, select_device));
    for (size_t r = 0; r < ranks.size(); ++r) {
        ranks[r].tensor = std::move(grid[r].tensor);
        ranks[r].expert = std::move(grid[r].expert);
    }
    return ranks;
}

}  // namespace

namespace {

// This node's ranks as one backend, and the node's channel where the engine spans nodes.
struct LocalRanks {
    std::unique_ptr<Backend> backend;
    std::shared_ptr<StepChannel> channel;
};

Result<LocalRanks> open_local_ranks(const ModelConfig& config,
                                    std::unique_ptr<Checkpoint> checkpoint,
                                    const CudaBackendOptions& options) {
    SLUICE_RETURN_IF_ERROR(validate_parallel_config(options.parallel));
    SLUICE_RETURN_IF_ERROR(check_supported(options));
    SLUICE_RETURN_IF_ERROR(check_parallel_fits_model(options.parallel, config));
    SLUICE_ASSIGN_OR_RETURN(Connection connection, connect(options));
    const size_t n_local = connection.comms.size();
    SLUICE_ASSIGN_OR_RETURN(
        std::vector<RankCommunicators> rank_comms,
        connect_ranks(options.parallel, std::move(connection.comms), options.device));
    std::vector<std::unique_ptr<Rank>> ranks;
    for (size_t i = 0; i < n_local; ++i) {
        RankCommunicators& comms = rank_comms[i];
        const int global = comms.all->rank();
        Communicator* all = comms.all.get();  // owned by the rank's backend once opened
        auto opened = [&]() -> Result<std::unique_ptr<Backend>> {
            SLUICE_ASSIGN_OR_RETURN(DbrxShard shard,
                                    shard_for_rank(config, options.parallel, global));
            CudaBackendOptions rank_options = options;
            rank_options.parallel = ParallelConfig{};
            rank_options.device = options.ranks_share_device ? options.device : static_cast<int>(i);
            rank_options.decode_graphs = false;  // see CudaBackend::decode_graph_step
            return open_cuda_rank(config, *checkpoint, rank_options, shard, std::move(comms));
        }();
        if (!opened.ok()) {
            // The other nodes are loading their shards: tell them, or they wait for this one
            // in their first collective. (The rank's communicators went with the failed open.)
            if (connection.channel != nullptr) {
                connection.channel->abort("rank " + std::to_string(global) +
                                          " did not open: " + opened.status().message());
            }
            return opened.status();
        }
        auto rank = std::make_unique<Rank>();
        rank->comm = all;
        rank->backend = std::move(*opened);
        ranks.push_back(std::move(rank));
    }
    log::info("inference", "parallel cuda backend opened",
              {{"plan", parallel_plan_name(options.parallel.plan())},
               {"ranks", std::to_string(options.parallel.n_ranks())},
               {"local_ranks", std::to_string(n_local)},
               {"node", std::to_string(options.parallel.node)},
               {"nodes", std::to_string(options.parallel.n_nodes())},
               {"tensor", std::to_string(options.parallel.tensor)},
               {"expert", std::to_string(options.parallel.expert)},
               {"communicator", ranks.front()->comm->name()}});
    // The ranks hold their own copies on the device; the mapping is no longer needed.
    checkpoint.reset();
    return LocalRanks{std::make_unique<ParallelCudaBackend>(config, options, std::move(ranks)),
                      std::move(connection.channel)};
}

}  // namespace

Result<std::unique_ptr<Backend>> open_parallel_cuda_backend(const ModelConfig& config,
                                                            std::unique_ptr<Checkpoint> checkpoint,
                                                            const CudaBackendOptions& options) {
    SLUICE_RETURN_IF_ERROR(check_runs_engine(options.parallel));
    SLUICE_ASSIGN_OR_RETURN(LocalRanks local,
                            open_local_ranks(config, std::move(checkpoint), options));
    if (local.channel == nullptr) {
        return std::move(local.backend);
    }
    return make_leader_backend(std::move(local.backend), std::move(local.channel),
                               options.max_batch_tokens);
}

Result<std::unique_ptr<StepFollower>> open_parallel_cuda_follower(
    const ModelConfig& config, std::unique_ptr<Checkpoint> checkpoint,
    const CudaBackendOptions& options) {
    SLUICE_RETURN_IF_ERROR(check_follows(options.parallel));
    SLUICE_ASSIGN_OR_RETURN(LocalRanks local,
                            open_local_ranks(config, std::move(checkpoint), options));
    return std::make_unique<StepFollower>(std::move(local.backend), std::move(local.channel));
}

}  // namespace sluice::inference::cuda
