#include "inference/cuda/staged_communicator.h"

#include <algorithm>
#include <numeric>
#include <string>

#include "inference/local_communicator.h"
#include "inference/nccl_communicator.h"

namespace sluice::inference::cuda {

namespace {

struct PinnedDeleter {
    void operator()(void* p) const { (void)cudaFreeHost(p); }
};
using PinnedPtr = std::unique_ptr<void, PinnedDeleter>;

// Pinned host memory that grows to the largest request and is kept.
class PinnedBuffer {
public:
    Result<void*> at_least(int64_t bytes) {
        if (bytes > bytes_) {
            ptr_.reset();
            bytes_ = 0;
            void* raw = nullptr;
            SLUICE_CUDA_CHECK(
                cudaHostAlloc(&raw, static_cast<size_t>(bytes), cudaHostAllocDefault));
            ptr_.reset(raw);
            bytes_ = bytes;
        }
        return ptr_.get();
    }

private:
    PinnedPtr ptr_;
    int64_t bytes_ = 0;
};

class StagedCommunicator final : public Communicator {
public:
    // `owned` is null for a sub-group, which borrows its parent's `stream`.
    StagedCommunicator(std::unique_ptr<Communicator> host, StreamPtr owned, cudaStream_t stream)
        : host_(std::move(host)), owned_stream_(std::move(owned)), stream_(stream) {}

    std::string name() const override { return "staged"; }
    int rank() const override { return host_->rank(); }
    int size() const override { return host_->size(); }
    cudaStream_t stream() const { return stream_; }

    Status all_reduce(void* data, int64_t count, DType dtype, ReduceOp op) override {
        const int64_t bytes = count * dtype_size(dtype);
        SLUICE_ASSIGN_OR_RETURN(void* staged, send_.at_least(bytes));
        SLUICE_RETURN_IF_ERROR(to_host(data, staged, bytes));
        SLUICE_RETURN_IF_ERROR(host_->all_reduce(staged, count, dtype, op));
        return to_device(staged, data, bytes);
    }

    Status all_gather(const void* send, void* recv, int64_t count, DType dtype) override {
        const int64_t bytes = count * dtype_size(dtype);
        SLUICE_ASSIGN_OR_RETURN(void* staged_send, send_.at_least(bytes));
        SLUICE_ASSIGN_OR_RETURN(void* staged_recv, recv_.at_least(bytes * size()));
        SLUICE_RETURN_IF_ERROR(to_host(send, staged_send, bytes));
        SLUICE_RETURN_IF_ERROR(host_->all_gather(staged_send, staged_recv, count, dtype));
        return to_device(staged_recv, recv, bytes * size());
    }

    Status reduce_scatter(const void* send, void* recv, int64_t count, DType dtype,
                          ReduceOp op) override {
        const int64_t bytes = count * dtype_size(dtype);
        SLUICE_ASSIGN_OR_RETURN(void* staged_send, send_.at_least(bytes * size()));
        SLUICE_ASSIGN_OR_RETURN(void* staged_recv, recv_.at_least(bytes));
        SLUICE_RETURN_IF_ERROR(to_host(send, staged_send, bytes * size()));
        SLUICE_RETURN_IF_ERROR(host_->reduce_scatter(staged_send, staged_recv, count, dtype, op));
        return to_device(staged_recv, recv, bytes);
    }

    Status all_to_all(const void* send, std::span<const int64_t> send_counts, void* recv,
                      std::span<const int64_t> recv_counts, DType dtype) override {
        const int64_t element = dtype_size(dtype);
        const int64_t send_bytes =
            std::accumulate(send_counts.begin(), send_counts.end(), int64_t{0}) * element;
        const int64_t recv_bytes =
            std::accumulate(recv_counts.begin(), recv_counts.end(), int64_t{0}) * element;
        SLUICE_ASSIGN_OR_RETURN(void* staged_send, send_.at_least(send_bytes));
        SLUICE_ASSIGN_OR_RETURN(void* staged_recv, recv_.at_least(recv_bytes));
        SLUICE_RETURN_IF_ERROR(to_host(send, staged_send, send_bytes));
        SLUICE_RETURN_IF_ERROR(
            host_->all_to_all(staged_send, send_counts, staged_recv, recv_counts, dtype));
        return to_device(staged_recv, recv, recv_bytes);
    }

    Status broadcast(void* data, int64_t count, DType dtype, int root) override {
        const int64_t bytes = count * dtype_size(dtype);
        SLUICE_ASSIGN_OR_RETURN(void* staged, send_.at_least(bytes));
        SLUICE_RETURN_IF_ERROR(to_host(data, staged, bytes));
        SLUICE_RETURN_IF_ERROR(host_->broadcast(staged, count, dtype, root));
        return to_device(staged, data, bytes);
    }

    Status barrier() override {
        SLUICE_CUDA_CHECK(cudaStreamSynchronize(stream_));
        return host_->barrier();
    }

    Result<std::unique_ptr<Communicator>> split(int color, int key) override {
        SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> sub, host_->split(color, key));
        return std::unique_ptr<Communicator>(
            std::make_unique<StagedCommunicator>(std::move(sub), StreamPtr(), stream_));
    }

    void abort(const std::string& reason) override { host_->abort(reason); }

private:
    // Copies `bytes` of device memory to pinned host memory and waits for them (and for the
    // work enqueued before, which produced them).
    Status to_host(const void* device, void* host, int64_t bytes) {
        if (bytes > 0) {
            SLUICE_CUDA_CHECK(cudaMemcpyAsync(host, device, static_cast<size_t>(bytes),
                                              cudaMemcpyDeviceToHost, stream_));
        }
        SLUICE_CUDA_CHECK(cudaStreamSynchronize(stream_));
        return Status::ok_status();
    }

    // Enqueues the copy back. The next call's to_host runs on the same stream after it, so the
    // staging memory is not overwritten before this copy has read it.
    Status to_device(const void* host, void* device, int64_t bytes) {
        if (bytes > 0) {
            SLUICE_CUDA_CHECK(cudaMemcpyAsync(device, host, static_cast<size_t>(bytes),
                                              cudaMemcpyHostToDevice, stream_));
        }
        return Status::ok_status();
    }

    std::unique_ptr<Communicator> host_;
    StreamPtr owned_stream_;
    cudaStream_t stream_;
    PinnedBuffer send_;
    PinnedBuffer recv_;
};

}  // namespace

Result<std::vector<std::unique_ptr<Communicator>>> create_staged_communicators(int n_ranks,
                                                                               int device) {
    SLUICE_ASSIGN_OR_RETURN(std::vector<std::unique_ptr<Communicator>> hosts,
                            create_local_communicators(n_ranks));
    SLUICE_CUDA_CHECK(cudaSetDevice(device));
    std::vector<std::unique_ptr<Communicator>> comms;
    for (std::unique_ptr<Communicator>& host : hosts) {
        cudaStream_t raw = nullptr;
        SLUICE_CUDA_CHECK(cudaStreamCreateWithFlags(&raw, cudaStreamNonBlocking));
        StreamPtr stream(raw);
        comms.push_back(
            std::make_unique<StagedCommunicator>(std::move(host), std::move(stream), raw));
    }
    return comms;
}

cudaStream_t communicator_stream(const Communicator& comm) {
    if (const auto* staged = dynamic_cast<const StagedCommunicator*>(&comm)) {
        return staged->stream();
    }
    if (const auto* nccl = dynamic_cast<const NcclCommunicator*>(&comm)) {
        return static_cast<cudaStream_t>(nccl->stream());
    }
    return nullptr;
}

}  // namespace sluice::inference::cuda
