#include "inference/tcp_communicator.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <numeric>

#include "common/check.h"
#include "inference/detail/host_collectives.h"
#include "inference/detail/tcp_mesh.h"

namespace sluice::inference {

namespace {

using detail::Fd;

// How long a rank that saw a peer's connection close waits for the control channel to deliver
// the abort that usually caused it, so every rank reports the same first reason.
constexpr int kLostPeerGraceMs = 2000;

using Op = detail::CollectiveOp;
using detail::check_count;
using detail::check_count_lists;
using detail::check_reduction;
using detail::collective_op_name;
using detail::combine;
using detail::load_element;
using detail::store_element;

// The arguments every rank sends every other before a collective, so that each rank checks all
// of them and all reach the same verdict. Fixed size for a group (the all-to-all counts are
// always there), so a rank that called another collective still reads whole headers.
struct Header {
    static constexpr int64_t kMagic = 0x534c5443484452;  // "SLTCHDR"
    static constexpr size_t kFixed = 8;

    Op op = Op::kBarrier;
    int64_t count = 0;
    DType dtype = DType::kF32;
    ReduceOp reduce = ReduceOp::kSum;
    int64_t root = 0;
    int64_t color = 0;  // split: may differ between ranks
    int64_t key = 0;
    std::vector<int64_t> send_counts;  // all_to_all
    std::vector<int64_t> recv_counts;

    std::vector<int64_t> encode(int size) const {
        std::vector<int64_t> words = {kMagic,
                                      static_cast<int64_t>(op),
                                      count,
                                      static_cast<int64_t>(dtype),
                                      static_cast<int64_t>(reduce),
                                      root,
                                      color,
                                      key};
        words.resize(kFixed + 2 * static_cast<size_t>(size), 0);
        std::copy(send_counts.begin(), send_counts.end(), words.begin() + kFixed);
        std::copy(recv_counts.begin(), recv_counts.end(),
                  words.begin() + static_cast<int64_t>(kFixed) + size);
        return words;
    }

    static bool decode(const std::vector<int64_t>& words, int size, Header* out) {
        if (words.size() != kFixed + 2 * static_cast<size_t>(size) || words[0] != kMagic) {
            return false;
        }
        out->op = static_cast<Op>(words[1]);
        out->count = words[2];
        out->dtype = static_cast<DType>(words[3]);
        out->reduce = static_cast<ReduceOp>(words[4]);
        out->root = words[5];
        out->color = words[6];
        out->key = words[7];
        out->send_counts.assign(words.begin() + kFixed, words.begin() + kFixed + size);
        out->recv_counts.assign(words.begin() + kFixed + size, words.end());
        return true;
    }
};

Header make_header(Op op, int64_t count, DType dtype, ReduceOp reduce = ReduceOp::kSum,
                   int root = 0) {
    Header header;
    header.op = op;
    header.count = count;
    header.dtype = dtype;
    header.reduce = reduce;
    header.root = root;
    return header;
}

// The group's abort as this node sees it, set by the bootstrap session's on_abort callback: the
// one place where every abort arrives (this node's, another node's, a node that is gone). The
// wake pipe is written once and never drained, so every rank's poll sees it from then on.
class AbortState {
public:
    AbortState() {
        int fds[2];
        SLUICE_CHECK(::pipe2(fds, O_CLOEXEC) == 0, "tcp communicator: cannot make a pipe");
        wake_read_ = Fd(fds[0]);
        wake_write_ = Fd(fds[1]);
    }

    void set(const std::string& reason) {
        {
            std::lock_guard lock(mutex_);
            if (aborted_) {
                return;
            }
            aborted_ = true;
            message_ = reason;
        }
        const char byte = 1;
        [[maybe_unused]] const ssize_t n = ::write(wake_write_.get(), &byte, 1);
    }

    bool aborted() const {
        std::lock_guard lock(mutex_);
        return aborted_;
    }
    Status status() const {
        std::lock_guard lock(mutex_);
        return Status(StatusCode::kAborted, message_);
    }
    int wake_fd() const { return wake_read_.get(); }

private:
    mutable std::mutex mutex_;
    bool aborted_ = false;  // guarded by mutex_
    std::string message_;   // guarded by mutex_
    Fd wake_read_;
    Fd wake_write_;
};

// What this node's communicators, and every group split from them, share.
struct TcpFamily {
    detail::TcpMesh mesh;
    std::shared_ptr<AbortState> abort;
};

// One send and one receive with a peer in a step of a collective; either may be empty.
struct Transfer {
    int peer = 0;  // rank in the group
    const uint8_t* send = nullptr;
    size_t send_bytes = 0;
    uint8_t* recv = nullptr;
    size_t recv_bytes = 0;
    size_t sent = 0;
    size_t received = 0;
};

class TcpCommunicator final : public Communicator {
public:
    // `members[r]`: the global rank of this group's rank r; `rank`: this rank in the group.
    TcpCommunicator(std::shared_ptr<TcpFamily> family, std::vector<int> members, int rank)
        : family_(std::move(family)),
          members_(std::move(members)),
          rank_(rank),
          local_(members_[static_cast<size_t>(rank)] - family_->mesh.rank_offset) {}

    std::string name() const override { return "tcp"; }
    int rank() const override { return rank_; }
    int size() const override { return static_cast<int>(members_.size()); }

    Status all_reduce(void* data, int64_t count, DType dtype, ReduceOp op) override {
        SLUICE_RETURN_IF_ERROR(check_reduction(Op::kAllReduce, count, dtype));
        SLUICE_RETURN_IF_ERROR(agree(make_header(Op::kAllReduce, count, dtype, op)));
        // Rank r reduces chunk r of every rank's data, then every rank gathers the chunks: each
        // element is reduced once, in rank order, so every rank stores the same values.
        auto* bytes = static_cast<uint8_t*>(data);
        const int64_t element = dtype_size(dtype);
        const auto [begin, end] = chunk(count, rank_);
        std::vector<std::vector<uint8_t>> theirs(static_cast<size_t>(size()));
        std::vector<Transfer> reduce_step;
        for (int p = 0; p < size(); ++p) {
            if (p == rank_) {
                continue;
            }
            const auto [p_begin, p_end] = chunk(count, p);
            theirs[static_cast<size_t>(p)].resize(static_cast<size_t>((end - begin) * element));
            reduce_step.push_back(
                {p, bytes + p_begin * element, static_cast<size_t>((p_end - p_begin) * element),
                 theirs[static_cast<size_t>(p)].data(), theirs[static_cast<size_t>(p)].size()});
        }
        SLUICE_RETURN_IF_ERROR(exchange(reduce_step, Op::kAllReduce));
        reduce_blocks(theirs, bytes + begin * element, end - begin, dtype, op,
                      bytes + begin * element);
        std::vector<Transfer> gather_step;
        for (int p = 0; p < size(); ++p) {
            if (p == rank_) {
                continue;
            }
            const auto [p_begin, p_end] = chunk(count, p);
            gather_step.push_back(
                {p, bytes + begin * element, static_cast<size_t>((end - begin) * element),
                 bytes + p_begin * element, static_cast<size_t>((p_end - p_begin) * element)});
        }
        return exchange(gather_step, Op::kAllReduce);
    }

    Status all_gather(const void* send, void* recv, int64_t count, DType dtype) override {
        SLUICE_RETURN_IF_ERROR(check_count(Op::kAllGather, count));
        SLUICE_RETURN_IF_ERROR(agree(make_header(Op::kAllGather, count, dtype)));
        const auto bytes = static_cast<size_t>(count * dtype_size(dtype));
        auto* out = static_cast<uint8_t*>(recv);
        copy_bytes(out + rank_ * bytes, send, bytes);
        std::vector<Transfer> step;
        for (int p = 0; p < size(); ++p) {
            if (p != rank_) {
                step.push_back(
                    {p, static_cast<const uint8_t*>(send), bytes, out + p * bytes, bytes});
            }
        }
        return exchange(step, Op::kAllGather);
    }

    Status reduce_scatter(const void* send, void* recv, int64_t count, DType dtype,
                          ReduceOp op) override {
        SLUICE_RETURN_IF_ERROR(check_reduction(Op::kReduceScatter, count, dtype));
        SLUICE_RETURN_IF_ERROR(agree(make_header(Op::kReduceScatter, count, dtype, op)));
        const auto bytes = static_cast<size_t>(count * dtype_size(dtype));
        const auto* in = static_cast<const uint8_t*>(send);
        std::vector<std::vector<uint8_t>> theirs(static_cast<size_t>(size()));
        std::vector<Transfer> step;
        for (int p = 0; p < size(); ++p) {
            if (p != rank_) {
                theirs[static_cast<size_t>(p)].resize(bytes);
                step.push_back(
                    {p, in + p * bytes, bytes, theirs[static_cast<size_t>(p)].data(), bytes});
            }
        }
        SLUICE_RETURN_IF_ERROR(exchange(step, Op::kReduceScatter));
        reduce_blocks(theirs, in + rank_ * bytes, count, dtype, op, recv);
        return Status::ok_status();
    }

    Status all_to_all(const void* send, std::span<const int64_t> send_counts, void* recv,
                      std::span<const int64_t> recv_counts, DType dtype) override {
        SLUICE_RETURN_IF_ERROR(check_count_lists(send_counts, recv_counts, size()));
        Header header = make_header(Op::kAllToAll, 0, dtype);
        header.send_counts.assign(send_counts.begin(), send_counts.end());
        header.recv_counts.assign(recv_counts.begin(), recv_counts.end());
        SLUICE_RETURN_IF_ERROR(agree(header));
        const int64_t element = dtype_size(dtype);
        const auto* in = static_cast<const uint8_t*>(send);
        auto* out = static_cast<uint8_t*>(recv);
        int64_t send_offset = 0;
        int64_t recv_offset = 0;
        std::vector<Transfer> step;
        for (int p = 0; p < size(); ++p) {
            const int64_t n_send = send_counts[static_cast<size_t>(p)];
            const int64_t n_recv = recv_counts[static_cast<size_t>(p)];
            if (p == rank_) {
                copy_bytes(out + recv_offset * element, in + send_offset * element,
                           static_cast<size_t>(n_send * element));
            } else {
                step.push_back({p, in + send_offset * element,
                                static_cast<size_t>(n_send * element), out + recv_offset * element,
                                static_cast<size_t>(n_recv * element)});
            }
            send_offset += n_send;
            recv_offset += n_recv;
        }
        return exchange(step, Op::kAllToAll);
    }

    Status broadcast(void* data, int64_t count, DType dtype, int root) override {
        SLUICE_RETURN_IF_ERROR(check_count(Op::kBroadcast, count));
        if (root < 0 || root >= size()) {
            return invalid_argument("broadcast: root " + std::to_string(root) +
                                    " outside the group of " + std::to_string(size()));
        }
        SLUICE_RETURN_IF_ERROR(
            agree(make_header(Op::kBroadcast, count, dtype, ReduceOp::kSum, root)));
        const auto bytes = static_cast<size_t>(count * dtype_size(dtype));
        auto* buffer = static_cast<uint8_t*>(data);
        std::vector<Transfer> step;
        if (rank_ == root) {
            for (int p = 0; p < size(); ++p) {
                if (p != rank_) {
                    step.push_back({p, buffer, bytes, nullptr, 0});
                }
            }
        } else {
            step.push_back({root, nullptr, 0, buffer, bytes});
        }
        return exchange(step, Op::kBroadcast);
    }

    // Every rank has sent its header when any rank has received all of them.
    Status barrier() override { return agree(make_header(Op::kBarrier, 0, DType::kF32)); }

    Result<std::unique_ptr<Communicator>> split(int color, int key) override {
        Header header = make_header(Op::kSplit, 0, DType::kF32);
        header.color = color;
        header.key = key;
        std::vector<Header> headers;
        SLUICE_RETURN_IF_ERROR(agree(header, &headers));
        if (color < 0) {
            return invalid_argument("split: color " + std::to_string(color) +
                                    " is negative, expected 0 or more");
        }
        // Members by ascending key, ties by rank here (stable sort of ranks in order).
        std::vector<int> members;
        for (int r = 0; r < size(); ++r) {
            if (headers[static_cast<size_t>(r)].color == color) {
                members.push_back(r);
            }
        }
        std::stable_sort(members.begin(), members.end(), [&](int a, int b) {
            return headers[static_cast<size_t>(a)].key < headers[static_cast<size_t>(b)].key;
        });
        const auto sub_rank =
            static_cast<int>(std::find(members.begin(), members.end(), rank_) - members.begin());
        std::vector<int> global;
        for (int member : members) {
            global.push_back(members_[static_cast<size_t>(member)]);
        }
        return std::unique_ptr<Communicator>(
            std::make_unique<TcpCommunicator>(family_, std::move(global), sub_rank));
    }

    void abort(const std::string& reason) override {
        family_->mesh.session->abort("rank " + std::to_string(global_rank()) +
                                     " aborted: " + reason);
    }

private:
    int global_rank() const { return members_[static_cast<size_t>(rank_)]; }

    int fd_of(int peer) const {
        return family_->mesh
            .connections[static_cast<size_t>(local_)]
                        [static_cast<size_t>(members_[static_cast<size_t>(peer)])]
            .get();
    }

    // [begin, end) of rank r's share of `count` elements in all_reduce (as the local one's).
    std::pair<int64_t, int64_t> chunk(int64_t count, int r) const {
        return {count * r / size(), count * (r + 1) / size()};
    }

    // out[i] = reduction over ranks 0, 1, ... of element i of their blocks (this rank's is
    // `mine`, the others' in `theirs`), widened to fp32 and stored in `dtype`. `out` may be
    // `mine`: every element is loaded before it is stored.
    void reduce_blocks(const std::vector<std::vector<uint8_t>>& theirs, const void* mine,
                       int64_t count, DType dtype, ReduceOp op, void* out) const {
        auto block = [&](int r) -> const void* {
            return r == rank_ ? mine : theirs[static_cast<size_t>(r)].data();
        };
        for (int64_t i = 0; i < count; ++i) {
            float value = load_element(dtype, block(0), i);
            for (int r = 1; r < size(); ++r) {
                value = combine(op, value, load_element(dtype, block(r), i));
            }
            store_element(dtype, out, i, value);
        }
    }

    static void copy_bytes(void* dst, const void* src, size_t bytes) {
        if (bytes > 0 && dst != src) {
            std::memcpy(dst, src, bytes);
        }
    }

    // Sends `mine` to every rank and receives every rank's header (into `all` when given), then
    // checks them all as the local communicator does, so every rank gives the same verdict.
    Status agree(const Header& mine, std::vector<Header>* all = nullptr) {
        if (family_->abort->aborted()) {
            return family_->abort->status();
        }
        const std::vector<int64_t> encoded = mine.encode(size());
        const size_t bytes = encoded.size() * sizeof(int64_t);
        std::vector<std::vector<int64_t>> received(static_cast<size_t>(size()), encoded);
        std::vector<Transfer> step;
        for (int p = 0; p < size(); ++p) {
            if (p != rank_) {
                step.push_back({p, reinterpret_cast<const uint8_t*>(encoded.data()), bytes,
                                reinterpret_cast<uint8_t*>(received[static_cast<size_t>(p)].data()),
                                bytes});
            }
        }
        SLUICE_RETURN_IF_ERROR(exchange(step, mine.op));
        std::vector<Header> headers(static_cast<size_t>(size()));
        for (int r = 0; r < size(); ++r) {
            if (!Header::decode(received[static_cast<size_t>(r)], size(),
                                &headers[static_cast<size_t>(r)])) {
                // The byte streams are out of step: nothing later on them can be trusted.
                return lose_group(
                    r, std::string("sent a malformed header in ") + collective_op_name(mine.op));
            }
        }
        SLUICE_RETURN_IF_ERROR(check_agreement(mine, headers));
        if (all != nullptr) {
            *all = std::move(headers);
        }
        return Status::ok_status();
    }

    Status check_agreement(const Header& mine, const std::vector<Header>& headers) const {
        std::vector<detail::CollectiveCall> calls;
        for (const Header& header : headers) {
            calls.push_back(call_of(header));
        }
        return detail::check_agreement(rank_, call_of(mine), calls);
    }

    static detail::CollectiveCall call_of(const Header& header) {
        return {header.op,
                header.count,
                header.dtype,
                header.reduce,
                static_cast<int>(header.root),
                header.send_counts,
                header.recv_counts};
    }

    // Runs every transfer of one step at once: sends and receives to and from all peers make
    // progress together (non-blocking sockets, one poll), so no two ranks wait on each other
    // with both socket buffers full. Returns kAborted as soon as the group aborts.
    Status exchange(std::vector<Transfer>& step, Op op) {
        std::vector<pollfd> fds;
        std::vector<Transfer*> owners;
        for (;;) {
            fds.clear();
            owners.clear();
            for (Transfer& t : step) {
                const short events = static_cast<short>((t.sent < t.send_bytes ? POLLOUT : 0) |
                                                        (t.received < t.recv_bytes ? POLLIN : 0));
                if (events != 0) {
                    fds.push_back({fd_of(t.peer), events, 0});
                    owners.push_back(&t);
                }
            }
            if (owners.empty()) {
                return Status::ok_status();
            }
            fds.push_back({family_->abort->wake_fd(), POLLIN, 0});
            if (::poll(fds.data(), fds.size(), -1) < 0) {
                if (errno == EINTR) {
                    continue;
                }
                return lose_group(rank_, std::string("poll failed in ") + collective_op_name(op) +
                                             ": " + std::strerror(errno));
            }
            if (fds.back().revents != 0) {
                return family_->abort->status();
            }
            for (size_t i = 0; i < owners.size(); ++i) {
                if (fds[i].revents != 0) {
                    SLUICE_RETURN_IF_ERROR(progress(*owners[i], fds[i].fd, op));
                }
            }
        }
    }

    // Moves what the socket takes now in both directions; a closed or failed connection loses
    // the group.
    Status progress(Transfer& t, int fd, Op op) {
        while (t.received < t.recv_bytes) {
            const ssize_t n = ::recv(fd, t.recv + t.received, t.recv_bytes - t.received, 0);
            if (n > 0) {
                t.received += static_cast<size_t>(n);
                continue;
            }
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                break;
            }
            return peer_lost(t.peer, op, n == 0 ? "closed" : std::strerror(errno));
        }
        while (t.sent < t.send_bytes) {
            const ssize_t n = ::send(fd, t.send + t.sent, t.send_bytes - t.sent, MSG_NOSIGNAL);
            if (n >= 0) {
                t.sent += static_cast<size_t>(n);
                continue;
            }
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            }
            return peer_lost(t.peer, op, std::strerror(errno));
        }
        return Status::ok_status();
    }

    // A peer's connection closed or failed mid-collective. Usually the group was aborted (or a
    // node died) and the control channel is about to say so; the first reason is kept, so this
    // rank waits a little for it before aborting the group in the peer's name.
    Status peer_lost(int peer, Op op, const std::string& what) {
        pollfd wake{family_->abort->wake_fd(), POLLIN, 0};
        (void)::poll(&wake, 1, kLostPeerGraceMs);
        return lose_group(peer, "connection " + what + " during " + collective_op_name(op));
    }

    Status lose_group(int rank, const std::string& what) {
        if (!family_->abort->aborted()) {
            family_->mesh.session->abort(
                "rank " + std::to_string(members_[static_cast<size_t>(rank)]) + ": " + what +
                " (seen by rank " + std::to_string(global_rank()) + ")");
        }
        return family_->abort->status();
    }

    const std::shared_ptr<TcpFamily> family_;
    const std::vector<int> members_;
    const int rank_;
    const int local_;  // index of this rank's row of connections
};

}  // namespace

Result<TcpGroup> open_tcp_communicators(const TcpGroupOptions& options) {
    SLUICE_ASSIGN_OR_RETURN(detail::TcpMesh mesh, detail::join_tcp_mesh(options));
    auto family = std::make_shared<TcpFamily>();
    family->mesh = std::move(mesh);
    family->abort = std::make_shared<AbortState>();
    // The callback holds the abort state, not the family: the session must not keep alive the
    // family that owns it.
    family->mesh.session->on_abort(
        [abort = family->abort](const std::string& reason) { abort->set(reason); });
    TcpGroup group;
    std::vector<int> world(static_cast<size_t>(family->mesh.world_size));
    std::iota(world.begin(), world.end(), 0);
    for (int local = 0; local < options.local_ranks; ++local) {
        group.comms.push_back(
            std::make_unique<TcpCommunicator>(family, world, family->mesh.rank_offset + local));
    }
    group.channel = family->mesh.session;
    return group;
}

}  // namespace sluice::inference
