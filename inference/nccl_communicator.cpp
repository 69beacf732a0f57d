#include "inference/nccl_communicator.h"

#if SLUICE_HAVE_NCCL

#include <cuda_runtime.h>
#include <nccl.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <thread>

#include "common/log.h"
#include "inference/detail/tcp_bootstrap.h"

namespace sluice::inference {

namespace {

Status nccl_error(const std::string& what, ncclResult_t result) {
    return Status(StatusCode::kInternal,
                  "nccl: " + what + ": " + ncclGetErrorString(result));
}

Status cuda_error(const std::string& what, cudaError_t error) {
    return Status(StatusCode::kInternal, "nccl: " + what + ": " + cudaGetErrorString(error));
}

// NCCL's element type for `dtype`; reductions only for the float types the engine reduces.
Result<ncclDataType_t> nccl_type(DType dtype, bool reduction) {
    switch (dtype) {
        case DType::kF32: return ncclFloat32;
        case DType::kBF16: return ncclBfloat16;
        case DType::kF16: return ncclFloat16;
        case DType::kI8:
        case DType::kU8:
        case DType::kF8E4M3:
            if (!reduction) {
                return ncclUint8;  // moved as bytes
            }
            break;
    }
    return invalid_argument("nccl: cannot reduce " + std::string(dtype_name(dtype)) +
                            " (reductions take F32, BF16 or F16)");
}

ncclRedOp_t nccl_op(ReduceOp op) { return op == ReduceOp::kSum ? ncclSum : ncclMax; }

// What the ranks of this node share: the bootstrap session (the control channel to the other
// nodes), every local NCCL communicator and the abort state.
class Group {
public:
    explicit Group(std::unique_ptr<detail::BootstrapSession> session)
        : session_(std::move(session)) {}

    ~Group() {
        // The session first: its watcher thread is joined, so no abort runs while the
        // communicators are destroyed. Split communicators (added last) go before their parents.
        session_.reset();
        for (auto it = comms_.rbegin(); it != comms_.rend(); ++it) {
            ncclComm_t comm = *it;
            if (comm == nullptr) {
                continue;
            }
            if (aborted()) {
                ncclCommAbort(comm);
            } else {
                ncclCommFinalize(comm);
                ncclCommDestroy(comm);
            }
        }
    }

    void set_comms(std::vector<ncclComm_t> comms) {
        {
            std::lock_guard lock(mutex_);
            comms_ = std::move(comms);
        }
        // From now on an abort anywhere (this node or another) aborts the local communicators.
        session_->on_abort([this](const std::string& reason) { abort_locally(reason); });
    }

    // A communicator split from one of the group's: it fails with the group and is destroyed
    // with it. False (and `comm` aborted) when the group was aborted meanwhile.
    bool add_comm(ncclComm_t comm) {
        std::lock_guard lock(mutex_);
        if (aborted_.load()) {
            ncclCommAbort(comm);
            return false;
        }
        comms_.push_back(comm);
        return true;
    }

    detail::BootstrapSession& session() { return *session_; }

    bool aborted() const { return aborted_.load(std::memory_order_acquire); }
    std::string reason() const {
        std::lock_guard lock(mutex_);
        return reason_;
    }
    Status aborted_status() const {
        return Status(StatusCode::kAborted, "parallel group aborted: " + reason());
    }

    // Aborts the whole group: the session tells every node, whose callbacks (this one's too)
    // abort their communicators.
    void abort(const std::string& reason) { session_->abort(reason); }

private:
    void abort_locally(const std::string& reason) {
        std::lock_guard lock(mutex_);
        if (aborted_.load()) {
            return;
        }
        reason_ = reason;
        aborted_.store(true, std::memory_order_release);
        // ncclCommAbort is the documented way to free ranks stuck in a collective, from any
        // thread; the handles are not used again (every call checks aborted() first).
        for (ncclComm_t& comm : comms_) {
            if (comm != nullptr) {
                ncclCommAbort(comm);
                comm = nullptr;
            }
        }
    }

    std::unique_ptr<detail::BootstrapSession> session_;
    std::atomic<bool> aborted_{false};
    mutable std::mutex mutex_;
    std::vector<ncclComm_t> comms_;  // guarded by mutex_ once set_comms ran
    std::string reason_;             // guarded by mutex_
};

class Nccl final : public NcclCommunicator {
public:
    // `world_rank`: the rank in the group of all GPUs, which abort messages name. A split
    // communicator borrows its parent's stream (`owns_stream` false): the rank's work stays on
    // one stream, in order.
    Nccl(std::shared_ptr<Group> group, ncclComm_t comm, cudaStream_t stream, bool owns_stream,
         int device, int rank, int size, int world_rank)
        : group_(std::move(group)),
          comm_(comm),
          stream_(stream),
          owns_stream_(owns_stream),
          device_(device),
          rank_(rank),
          size_(size),
          world_rank_(world_rank) {}

    ~Nccl() override {
        cudaSetDevice(device_);
        if (stream_ != nullptr && owns_stream_) {
            if (!group_->aborted()) {
                cudaStreamSynchronize(stream_);
            }
            cudaStreamDestroy(stream_);
        }
        if (barrier_word_ != nullptr) {
            cudaFree(barrier_word_);
        }
    }

    std::string name() const override { return "nccl"; }
    int rank() const override { return rank_; }
    int size() const override { return size_; }
    int device() const override { return device_; }
    void* stream() const override { return stream_; }
    // Shares the group: the channel keeps the session and the communicators' handles alive.
    std::shared_ptr<StepChannel> step_channel() const override {
        return {group_, &group_->session()};
    }

    Status all_reduce(void* data, int64_t count, DType dtype, ReduceOp op) override {
        SLUICE_RETURN_IF_ERROR(check_count(count));
        SLUICE_ASSIGN_OR_RETURN(const ncclDataType_t type, nccl_type(dtype, true));
        return run("all_reduce", [&] {
            return ncclAllReduce(data, data, static_cast<size_t>(count), type, nccl_op(op),
                                 comm_, stream_);
        });
    }

    Status all_gather(const void* send, void* recv, int64_t count, DType dtype) override {
        SLUICE_RETURN_IF_ERROR(check_count(count));
        SLUICE_ASSIGN_OR_RETURN(const ncclDataType_t type, nccl_type(dtype, false));
        return run("all_gather", [&] {
            return ncclAllGather(send, recv, static_cast<size_t>(count), type, comm_, stream_);
        });
    }

    Status reduce_scatter(const void* send, void* recv, int64_t count, DType dtype,
                          ReduceOp op) override {
        SLUICE_RETURN_IF_ERROR(check_count(count));
        SLUICE_ASSIGN_OR_RETURN(const ncclDataType_t type, nccl_type(dtype, true));
        return run("reduce_scatter", [&] {
            return ncclReduceScatter(send, recv, static_cast<size_t>(count), type, nccl_op(op),
                                     comm_, stream_);
        });
    }

    Status all_to_all(const void* send, std::span<const int64_t> send_counts, void* recv,
                      std::span<const int64_t> recv_counts, DType dtype) override {
        if (static_cast<int>(send_counts.size()) != size_ ||
            static_cast<int>(recv_counts.size()) != size_) {
            return invalid_argument("nccl: all_to_all needs " + std::to_string(size_) +
                                    " send and receive counts, found " +
                                    std::to_string(send_counts.size()) + " and " +
                                    std::to_string(recv_counts.size()));
        }
        for (int r = 0; r < size_; ++r) {
            SLUICE_RETURN_IF_ERROR(check_count(send_counts[static_cast<size_t>(r)]));
            SLUICE_RETURN_IF_ERROR(check_count(recv_counts[static_cast<size_t>(r)]));
        }
        SLUICE_ASSIGN_OR_RETURN(const ncclDataType_t type, nccl_type(dtype, false));
        const int64_t bytes = dtype_size(dtype);
        return run("all_to_all", [&]() -> ncclResult_t {
            ncclResult_t result = ncclGroupStart();
            if (result != ncclSuccess) {
                return result;
            }
            int64_t send_offset = 0;
            int64_t recv_offset = 0;
            for (int r = 0; r < size_ && result == ncclSuccess; ++r) {
                const int64_t s = send_counts[static_cast<size_t>(r)];
                const int64_t v = recv_counts[static_cast<size_t>(r)];
                if (s > 0) {
                    result = ncclSend(static_cast<const char*>(send) + send_offset * bytes,
                                      static_cast<size_t>(s), type, r, comm_, stream_);
                }
                if (result == ncclSuccess && v > 0) {
                    result = ncclRecv(static_cast<char*>(recv) + recv_offset * bytes,
                                      static_cast<size_t>(v), type, r, comm_, stream_);
                }
                send_offset += s;
                recv_offset += v;
            }
            const ncclResult_t end = ncclGroupEnd();
            return result != ncclSuccess ? result : end;
        });
    }

    Status broadcast(void* data, int64_t count, DType dtype, int root) override {
        SLUICE_RETURN_IF_ERROR(check_count(count));
        if (root < 0 || root >= size_) {
            return invalid_argument("nccl: broadcast root " + std::to_string(root) +
                                    " outside [0, " + std::to_string(size_) + ")");
        }
        SLUICE_ASSIGN_OR_RETURN(const ncclDataType_t type, nccl_type(dtype, false));
        return run("broadcast", [&] {
            return ncclBroadcast(data, data, static_cast<size_t>(count), type, root, comm_, stream_);
        });
    }

    Status barrier() override {
        // A one-element all-reduce orders every rank, then the stream is waited for by polling,
        // so that an abort (here or on another node) or an asynchronous NCCL error ends the wait.
        if (barrier_word_ == nullptr) {
            cudaSetDevice(device_);
            const cudaError_t error = cudaMalloc(&barrier_word_, sizeof(float));
            if (error != cudaSuccess) {
                return cuda_error("barrier buffer", error);
            }
        }
        SLUICE_RETURN_IF_ERROR(run("barrier", [&] {
            return ncclAllReduce(barrier_word_, barrier_word_, 1, ncclFloat32, ncclSum, comm_,
                                 stream_);
        }));
        for (;;) {
            if (group_->aborted()) {
                return group_->aborted_status();
            }
            const cudaError_t state = cudaStreamQuery(stream_);
            if (state == cudaSuccess) {
                return Status::ok_status();
            }
            if (state != cudaErrorNotReady) {
                const Status failed = cuda_error("barrier", state);
                group_->abort("rank " + std::to_string(world_rank_) + ": " + failed.message());
                return failed;
            }
            ncclResult_t async = ncclSuccess;
            if (ncclCommGetAsyncError(comm_, &async) == ncclSuccess && async != ncclSuccess &&
                async != ncclInProgress) {
                const Status failed = nccl_error("barrier", async);
                group_->abort("rank " + std::to_string(world_rank_) + ": " + failed.message());
                return group_->aborted_status();
            }
            std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
    }

    Result<std::unique_ptr<Communicator>> split(int color, int key) override {
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 18, 0)
        // A negative color still takes part, as "no color", so the other ranks are not left
        // waiting in the collective.
        ncclComm_t sub = nullptr;
        SLUICE_RETURN_IF_ERROR(run("split", [&] {
            return ncclCommSplit(comm_, color < 0 ? NCCL_SPLIT_NOCOLOR : color, key, &sub, nullptr);
        }));
        if (color < 0) {
            return invalid_argument("nccl: split color " + std::to_string(color) +
                                    " is negative, expected 0 or more");
        }
        if (!group_->add_comm(sub)) {
            return group_->aborted_status();
        }
        int sub_rank = 0;
        int sub_size = 0;
        ncclResult_t result = ncclCommUserRank(sub, &sub_rank);
        if (result == ncclSuccess) {
            result = ncclCommCount(sub, &sub_size);
        }
        if (result != ncclSuccess) {
            return nccl_error("split", result);
        }
        return std::unique_ptr<Communicator>(std::make_unique<Nccl>(
            group_, sub, stream_, /*owns_stream=*/false, device_, sub_rank, sub_size, world_rank_));
#else
        (void)color;
        (void)key;
        return Status(StatusCode::kNotSupported,
                      "nccl: split needs NCCL 2.18 or later (ncclCommSplit); this build has " +
                          std::to_string(NCCL_MAJOR) + "." + std::to_string(NCCL_MINOR));
#endif
    }

    void abort(const std::string& reason) override {
        group_->abort("rank " + std::to_string(world_rank_) + ": " + reason);
    }

private:
    static Status check_count(int64_t count) {
        if (count < 0) {
            return invalid_argument("nccl: negative element count " + std::to_string(count));
        }
        return Status::ok_status();
    }

    template <typename Call>
    Status run(const char* what, Call call) {
        if (group_->aborted()) {
            return group_->aborted_status();
        }
        const cudaError_t device_error = cudaSetDevice(device_);
        if (device_error != cudaSuccess) {
            return cuda_error(what, device_error);
        }
        const ncclResult_t result = call();
        if (result != ncclSuccess) {
            if (group_->aborted()) {
                return group_->aborted_status();
            }
            return nccl_error(what, result);
        }
        return Status::ok_status();
    }

    std::shared_ptr<Group> group_;
    ncclComm_t comm_;
    cudaStream_t stream_;
    bool owns_stream_;
    int device_;
    int rank_;
    int size_;
    int world_rank_;
    void* barrier_word_ = nullptr;
};

Result<std::vector<int>> resolve_devices(const NcclGroupOptions& options) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
        cudaGetLastError();  // clear the sticky "no device" error
        return unavailable("nccl: no GPU is visible");
    }
    std::vector<int> devices = options.devices;
    if (devices.empty()) {
        for (int d = 0; d < count; ++d) {
            devices.push_back(d);
        }
    }
    for (size_t i = 0; i < devices.size(); ++i) {
        if (devices[i] < 0 || devices[i] >= count) {
            return unavailable("nccl: GPU " + std::to_string(devices[i]) + " is not visible (" +
                               std::to_string(count) + " GPUs)");
        }
        for (size_t j = 0; j < i; ++j) {
            if (devices[j] == devices[i]) {
                return invalid_argument("nccl: GPU " + std::to_string(devices[i]) +
                                        " is listed twice");
            }
        }
    }
    return devices;
}

}  // namespace

Result<std::vector<std::unique_ptr<NcclCommunicator>>> open_nccl_communicators(
    const NcclGroupOptions& options) {
    SLUICE_ASSIGN_OR_RETURN(const std::vector<int> devices, resolve_devices(options));
    std::string id_bytes;
    if (options.node == 0) {
        ncclUniqueId id;
        const ncclResult_t result = ncclGetUniqueId(&id);
        if (result != ncclSuccess) {
            return nccl_error("unique id", result);
        }
        id_bytes.assign(id.internal, sizeof(id.internal));
    }
    detail::BootstrapOptions bootstrap;
    bootstrap.root_address = options.root_address;
    bootstrap.node = options.node;
    bootstrap.n_nodes = options.n_nodes;
    bootstrap.local_ranks = static_cast<int>(devices.size());
    bootstrap.timeout = options.timeout;
    SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<detail::BootstrapSession> session,
                            detail::join_bootstrap(bootstrap, id_bytes));
    if (session->payload().size() != sizeof(ncclUniqueId::internal)) {
        return Status(StatusCode::kInternal, "nccl: the bootstrap handed out " +
                                                 std::to_string(session->payload().size()) +
                                                 " bytes, not a unique id");
    }
    ncclUniqueId id;
    std::memcpy(id.internal, session->payload().data(), sizeof(id.internal));
    const int world = session->world_size();
    const int offset = session->rank_offset();
    auto group = std::make_shared<Group>(std::move(session));

    // Every local rank joins inside one NCCL group call: one process initialises all its GPUs.
    std::vector<ncclComm_t> comms(devices.size(), nullptr);
    std::vector<cudaStream_t> streams(devices.size(), nullptr);
    auto destroy_streams = [&] {
        for (size_t i = 0; i < streams.size(); ++i) {
            if (streams[i] != nullptr) {
                cudaSetDevice(devices[i]);
                cudaStreamDestroy(streams[i]);
            }
        }
    };
    for (size_t i = 0; i < devices.size(); ++i) {
        cudaError_t error = cudaSetDevice(devices[i]);
        if (error == cudaSuccess) {
            error = cudaStreamCreateWithFlags(&streams[i], cudaStreamNonBlocking);
        }
        if (error != cudaSuccess) {
            destroy_streams();
            return cuda_error("stream on GPU " + std::to_string(devices[i]), error);
        }
    }
    ncclResult_t result = ncclGroupStart();
    for (size_t i = 0; i < devices.size() && result == ncclSuccess; ++i) {
        cudaSetDevice(devices[i]);
        result = ncclCommInitRank(&comms[i], world, id, offset + static_cast<int>(i));
    }
    const ncclResult_t end = ncclGroupEnd();
    if (result == ncclSuccess) {
        result = end;
    }
    if (result != ncclSuccess) {
        for (ncclComm_t comm : comms) {
            if (comm != nullptr) {
                ncclCommAbort(comm);
            }
        }
        destroy_streams();
        group->abort("nccl initialisation failed: " + std::string(ncclGetErrorString(result)));
        return nccl_error("init", result);
    }
    group->set_comms(comms);
    std::vector<std::unique_ptr<NcclCommunicator>> out;
    for (size_t i = 0; i < devices.size(); ++i) {
        const int rank = offset + static_cast<int>(i);
        out.push_back(std::make_unique<Nccl>(group, comms[i], streams[i], /*owns_stream=*/true,
                                             devices[i], rank, world, rank));
    }
    log::info("inference", "nccl communicators ready",
              {{"node", options.node},
               {"nodes", options.n_nodes},
               {"local_ranks", static_cast<int64_t>(devices.size())},
               {"world_size", world},
               {"first_rank", offset}});
    return out;
}

}  // namespace sluice::inference

#else  // no NCCL in this build

namespace sluice::inference {

Result<std::vector<std::unique_ptr<NcclCommunicator>>> open_nccl_communicators(
    const NcclGroupOptions& /*options*/) {
    return Status(StatusCode::kNotSupported,
                  "nccl: this build has no NCCL (configure with CUDA and NCCL to use several GPUs)");
}

}  // namespace sluice::inference

#endif
