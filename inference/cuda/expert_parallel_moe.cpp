#include "inference/cuda/expert_parallel_moe.h"

#include "inference/cuda/expert_dispatch.cuh"
#include "inference/expert_exchange.h"

namespace sluice::inference::cuda {

namespace {

int64_t padded_slice(int64_t max_tokens, int n_groups) {
    return (max_tokens + n_groups - 1) / n_groups;
}

}  // namespace

int64_t ExpertParallelBuffers::bytes(const ModelConfig& config, int64_t max_tokens, int n_groups) {
    const int64_t d = config.d_model;
    const int64_t pairs = max_tokens * config.n_expert_used;
    const int64_t padded = padded_slice(max_tokens, n_groups);
    const int64_t floats = 2 * pairs * (d + 1) + pairs * d + n_groups +
                           int64_t{n_groups} * n_groups + padded * d * (1 + n_groups);
    const int64_t ints = 3 * pairs + config.n_expert + 1;
    return (floats + ints) * 4;
}

Status ExpertParallelBuffers::allocate(const ModelConfig& config, int64_t max_tokens,
                                       int n_groups) {
    const int64_t d = config.d_model;
    const int64_t pairs = max_tokens * config.n_expert_used;
    const int64_t padded = padded_slice(max_tokens, n_groups);
    SLUICE_RETURN_IF_ERROR(send.allocate(pairs * (d + 1) * 4));
    SLUICE_RETURN_IF_ERROR(recv.allocate(pairs * (d + 1) * 4));
    SLUICE_RETURN_IF_ERROR(recv_x.allocate(pairs * d * 4));
    SLUICE_RETURN_IF_ERROR(recv_expert.allocate(pairs * 4));
    SLUICE_RETURN_IF_ERROR(recv_offsets.allocate((config.n_expert + 1) * 4));
    SLUICE_RETURN_IF_ERROR(recv_pair_slot.allocate(pairs * 4));
    SLUICE_RETURN_IF_ERROR(recv_slot_token.allocate(pairs * 4));
    SLUICE_RETURN_IF_ERROR(rows.allocate(int64_t{n_groups} * 4));
    SLUICE_RETURN_IF_ERROR(rows_gathered.allocate(int64_t{n_groups} * n_groups * 4));
    SLUICE_RETURN_IF_ERROR(slice_local.allocate(padded * d * 4));
    SLUICE_RETURN_IF_ERROR(slice_gathered.allocate(n_groups * padded * d * 4));
    host_rows.assign(static_cast<size_t>(n_groups) * static_cast<size_t>(n_groups), 0.0f);
    return Status::ok_status();
}

namespace {

// Steps 1 and 2 of the header: routes and sorts this group's slice, then learns every
// group's row counts. Returns this rank's exchange.
Result<ExpertExchange> route_and_count(const ExpertParallelLayer& layer, const Split& slice) {
    const ModelConfig& config = *layer.config;
    const int64_t d = config.d_model;
    const int64_t k = config.n_expert_used;
    const int64_t n_expert = config.n_expert;
    StepBuffers& b = *layer.buffers;
    ExpertParallelBuffers& ex = *layer.exchange;
    Communicator& comm = *layer.expert_comm;
    const int n_groups = comm.size();
    const Permutation perm{b.offsets.as<int32_t>(), b.pair_slot.as<int32_t>(),
                           b.slot_token.as<int32_t>()};
    SLUICE_RETURN_IF_ERROR(route_top_k(b.router_logits.as<float>() + slice.begin * n_expert,
                                       slice.count, n_expert, k, config.expert_weights_norm_p,
                                       b.route_experts.as<int32_t>(), b.route_weights.as<float>(),
                                       layer.stream));
    SLUICE_RETURN_IF_ERROR(permute_by_expert(b.route_experts.as<int32_t>(), slice.count, k,
                                             n_expert, perm, b.h.as<float>() + slice.begin * d, d,
                                             b.x_sorted.as<float>(), layer.stream));
    SLUICE_RETURN_IF_ERROR(rows_per_group(perm.offsets, n_expert, slice.count * k, n_groups,
                                          ex.rows.as<float>(), layer.stream));
    SLUICE_RETURN_IF_ERROR(
        comm.all_gather(ex.rows.as<float>(), ex.rows_gathered.as<float>(), n_groups, DType::kF32));
    // The one synchronisation of the layer: the all-to-alls take their counts on the host.
    SLUICE_CUDA_CHECK(cudaMemcpyAsync(ex.host_rows.data(), ex.rows_gathered.get(),
                                      ex.host_rows.size() * 4, cudaMemcpyDeviceToHost,
                                      layer.stream));
    SLUICE_CUDA_CHECK(cudaStreamSynchronize(layer.stream));
    return expert_exchange(ex.host_rows, comm.rank(), n_groups);
}

// Steps 3 to 5: dispatch, the rank's experts, combine into x's slice rows.
Status exchange_and_run(const ExpertParallelLayer& layer, const Split& slice,
                        const ExpertExchange& exchange) {
    const ModelConfig& config = *layer.config;
    const DbrxShard& shard = *layer.shard;
    const int64_t d = config.d_model;
    const int64_t k = config.n_expert_used;
    StepBuffers& b = *layer.buffers;
    ExpertParallelBuffers& ex = *layer.exchange;
    Communicator& comm = *layer.expert_comm;
    SLUICE_RETURN_IF_ERROR(pack_dispatch_rows(b.x_sorted.as<float>(), b.offsets.as<int32_t>(),
                                              config.n_expert, slice.count * k, d,
                                              ex.send.as<float>(), layer.stream));
    SLUICE_RETURN_IF_ERROR(comm.all_to_all(ex.send.get(), exchange.dispatch_send(d + 1),
                                           ex.recv.get(), exchange.dispatch_recv(d + 1),
                                           DType::kF32));

    const int64_t n_recv = exchange.n_recv;
    const Permutation local{ex.recv_offsets.as<int32_t>(), ex.recv_pair_slot.as<int32_t>(),
                            ex.recv_slot_token.as<int32_t>()};
    SLUICE_RETURN_IF_ERROR(unpack_dispatch_rows(ex.recv.as<float>(), n_recv, d, shard.expert_begin,
                                                ex.recv_x.as<float>(), ex.recv_expert.as<int32_t>(),
                                                layer.stream));
    SLUICE_RETURN_IF_ERROR(permute_by_expert(ex.recv_expert.as<int32_t>(), n_recv, 1,
                                             shard.n_expert, local, ex.recv_x.as<float>(), d,
                                             b.x_sorted.as<float>(), layer.stream));
    if (n_recv > 0) {
        // Every expert's slot count is at most n_recv, the bound the kernels choose by.
        const ExpertShape shape{shard.n_expert, d, shard.n_ff, n_recv, n_recv};
        SLUICE_RETURN_IF_ERROR(layer.run_experts(b.x_sorted.as<float>(), local.offsets, shape,
                                                 b.expert_out.as<float>()));
    }
    if (layer.tensor_comm != nullptr) {
        // The group's ranks received the same rows (they hold the same tokens), so they agree
        // on n_recv, zero included.
        SLUICE_RETURN_IF_ERROR(layer.tensor_comm->all_reduce(b.expert_out.get(), n_recv * d,
                                                             DType::kF32, ReduceOp::kSum));
    }
    SLUICE_RETURN_IF_ERROR(gather_rows(b.expert_out.as<float>(), local.pair_slot, n_recv, d,
                                       ex.recv_x.as<float>(), layer.stream));
    // Back to the senders, each into its send order: the slots of its sorted pairs.
    SLUICE_RETURN_IF_ERROR(comm.all_to_all(ex.recv_x.get(), exchange.combine_send(d), ex.send.get(),
                                           exchange.combine_recv(d), DType::kF32));
    return unpermute_add(ex.send.as<float>(), b.pair_slot.as<int32_t>(),
                         b.route_experts.as<int32_t>(), b.route_weights.as<float>(), slice.count, k,
                         d, b.x.as<float>() + slice.begin * d, layer.stream);
}

// Step 6: every group's slice into every rank's x, the slices padded to the largest.
Status gather_slices(const ExpertParallelLayer& layer, int64_t n_tokens, const Split& slice) {
    const int64_t d = layer.config->d_model;
    ExpertParallelBuffers& ex = *layer.exchange;
    Communicator& comm = *layer.expert_comm;
    const int n_groups = comm.size();
    float* x = layer.buffers->x.as<float>();
    const int64_t padded = (n_tokens + n_groups - 1) / n_groups;
    if (slice.count > 0) {
        SLUICE_CUDA_CHECK(cudaMemcpyAsync(ex.slice_local.get(), x + slice.begin * d,
                                          static_cast<size_t>(slice.count * d) * 4,
                                          cudaMemcpyDeviceToDevice, layer.stream));
    }
    SLUICE_RETURN_IF_ERROR(
        comm.all_gather(ex.slice_local.get(), ex.slice_gathered.get(), padded * d, DType::kF32));
    for (int r = 0; r < n_groups; ++r) {
        const Split theirs = split_evenly(n_tokens, r, n_groups);
        if (theirs.count > 0) {
            SLUICE_CUDA_CHECK(cudaMemcpyAsync(
                x + theirs.begin * d, ex.slice_gathered.as<float>() + r * padded * d,
                static_cast<size_t>(theirs.count * d) * 4, cudaMemcpyDeviceToDevice, layer.stream));
        }
    }
    return Status::ok_status();
}

}  // namespace

Status expert_parallel_moe(const ExpertParallelLayer& layer, int64_t n_tokens) {
    const Split slice =
        split_evenly(n_tokens, layer.expert_comm->rank(), layer.expert_comm->size());
    SLUICE_ASSIGN_OR_RETURN(const ExpertExchange exchange, route_and_count(layer, slice));
    SLUICE_RETURN_IF_ERROR(exchange_and_run(layer, slice, exchange));
    return gather_slices(layer, n_tokens, slice);
}

}  // namespace sluice::inference::cuda
