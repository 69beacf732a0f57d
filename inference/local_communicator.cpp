#include "inference/local_communicator.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <numeric>
#include <optional>

#include "common/check.h"
#include "inference/detail/host_collectives.h"

namespace sluice::inference {

namespace {

using Op = detail::CollectiveOp;
using detail::check_count;
using detail::check_count_lists;
using detail::check_reduction;
using detail::collective_op_name;
using detail::combine;
using detail::load_element;
using detail::store_element;

// What one rank posts for a collective.
struct Post {
    Op op = Op::kBarrier;
    const void* send = nullptr;
    void* recv = nullptr;
    int64_t count = 0;
    DType dtype = DType::kF32;
    ReduceOp reduce = ReduceOp::kSum;
    int root = 0;
    std::span<const int64_t> send_counts;
    std::span<const int64_t> recv_counts;
    int color = 0;  // split: may differ between ranks
    int key = 0;
};

Post make_post(Op op, const void* send, void* recv, int64_t count, DType dtype,
               ReduceOp reduce = ReduceOp::kSum, int root = 0) {
    Post post;
    post.op = op;
    post.send = send;
    post.recv = recv;
    post.count = count;
    post.dtype = dtype;
    post.reduce = reduce;
    post.root = root;
    return post;
}

class LocalGroup;

// A group made by create_local_communicators and every group split from it, directly or not.
// They fail together: a rank waiting in one group must learn that a rank of another stopped.
struct LocalFamily {
    std::mutex mutex;
    bool aborted = false;                           // guarded by mutex
    std::string message;                            // guarded by mutex
    std::vector<std::weak_ptr<LocalGroup>> groups;  // guarded by mutex
};

// The state the ranks of one group share.
class LocalGroup {
public:
    // `world_ranks[r]`: the rank in the original group of this group's rank r, which abort
    // messages name so that every group of the family reports the same rank.
    static std::shared_ptr<LocalGroup> make(std::shared_ptr<LocalFamily> family,
                                            std::vector<int> world_ranks) {
        auto group = std::make_shared<LocalGroup>(family, std::move(world_ranks));
        std::lock_guard lock(family->mutex);
        if (family->aborted) {
            group->aborted_ = true;  // not shared with any rank yet
            group->abort_message_ = family->message;
        }
        family->groups.push_back(group);
        return group;
    }

    LocalGroup(std::shared_ptr<LocalFamily> family, std::vector<int> world_ranks)
        : size_(static_cast<int>(world_ranks.size())),
          family_(std::move(family)),
          world_ranks_(std::move(world_ranks)),
          posts_(static_cast<size_t>(size_)),
          scratch_(static_cast<size_t>(size_)),
          split_(static_cast<size_t>(size_)) {}

    int size() const { return size_; }
    const std::shared_ptr<LocalFamily>& family() const { return family_; }
    int world_rank(int rank) const { return world_ranks_[static_cast<size_t>(rank)]; }

    // The entry rendezvous: posts `post` for `rank` and waits for every rank's. kAborted when
    // the group is (or becomes) aborted before all have arrived.
    Status enter(int rank, const Post& post) {
        std::unique_lock lock(mutex_);
        if (aborted_) {
            return aborted_status();
        }
        posts_[static_cast<size_t>(rank)] = post;
        if (!arrive(lock, /*abortable=*/true)) {
            return aborted_status();
        }
        return Status::ok_status();
    }

    // The exit rendezvous. Not abortable: every rank is past the entry, so all will arrive, and
    // returning early could free a buffer a slower rank still reads.
    void leave() {
        std::unique_lock lock(mutex_);
        arrive(lock, /*abortable=*/false);
    }

    // Aborts every group of the family. The family's lock is not held while a group's is
    // taken, so no order between the locks is needed.
    void abort(int rank, const std::string& reason) {
        std::vector<std::weak_ptr<LocalGroup>> groups;
        std::string message;
        {
            std::lock_guard lock(family_->mutex);
            if (family_->aborted) {
                return;
            }
            family_->aborted = true;
            family_->message = "rank " + std::to_string(world_rank(rank)) + " aborted: " + reason;
            message = family_->message;
            groups = family_->groups;
        }
        for (const std::weak_ptr<LocalGroup>& weak : groups) {
            if (std::shared_ptr<LocalGroup> group = weak.lock()) {
                group->mark_aborted(message);
            }
        }
    }

    // Read after the entry rendezvous, before the exit one.
    const Post& post(int rank) const { return posts_[static_cast<size_t>(rank)]; }
    std::vector<float>& scratch(int rank) { return scratch_[static_cast<size_t>(rank)]; }
    // A split's new group, made by its first member between the rendezvous and read by the
    // others after the exit one; overwritten only by a later split, past the next entry.
    std::shared_ptr<LocalGroup>& split_slot(int rank) { return split_[static_cast<size_t>(rank)]; }

private:
    // Counts this rank in and waits for the rest of the generation; false when aborted first.
    bool arrive(std::unique_lock<std::mutex>& lock, bool abortable) {
        const uint64_t generation = generation_;
        if (++arrived_ == size_) {
            arrived_ = 0;
            ++generation_;
            cv_.notify_all();
            return true;
        }
        cv_.wait(lock, [&] { return generation_ != generation || (abortable && aborted_); });
        if (generation_ != generation) {
            return true;
        }
        --arrived_;  // leaves the rendezvous; an aborted group never completes another
        return false;
    }

    void mark_aborted(const std::string& message) {
        std::lock_guard lock(mutex_);
        aborted_ = true;
        abort_message_ = message;
        cv_.notify_all();
    }

    Status aborted_status() const { return Status(StatusCode::kAborted, abort_message_); }

    const int size_;
    const std::shared_ptr<LocalFamily> family_;
    const std::vector<int> world_ranks_;
    std::mutex mutex_;
    std::condition_variable cv_;
    int arrived_ = 0;          // guarded by mutex_
    uint64_t generation_ = 0;  // guarded by mutex_
    bool aborted_ = false;     // guarded by mutex_
    std::string abort_message_;  // guarded by mutex_
    std::vector<Post> posts_;  // slot r written by rank r before the entry rendezvous
    std::vector<std::vector<float>> scratch_;  // slot r written by rank r between rendezvous
    std::vector<std::shared_ptr<LocalGroup>> split_;  // see split_slot()
};

class LocalCommunicator final : public Communicator {
public:
    LocalCommunicator(std::shared_ptr<LocalGroup> group, int rank)
        : group_(std::move(group)), rank_(rank) {}

    std::string name() const override { return "local"; }
    int rank() const override { return rank_; }
    int size() const override { return group_->size(); }

    Status all_reduce(void* data, int64_t count, DType dtype, ReduceOp op) override {
        SLUICE_RETURN_IF_ERROR(check_reduction(Op::kAllReduce, count, dtype));
        Post post = make_post(Op::kAllReduce, data, data, count, dtype, op);
        return run(post, [&] {
            // This rank reduces its chunk into its scratch; then every rank reads all chunks.
            const auto [begin, end] = chunk(count, rank_);
            std::vector<float>& mine = group_->scratch(rank_);
            mine.resize(static_cast<size_t>(end - begin));
            reduce_range(begin, end, dtype, op, mine.data());
            return true;
        }, [&] {
            for (int r = 0; r < size(); ++r) {
                const auto [begin, end] = chunk(count, r);
                const std::vector<float>& theirs = group_->scratch(r);
                for (int64_t i = begin; i < end; ++i) {
                    store_element(dtype, data, i, theirs[static_cast<size_t>(i - begin)]);
                }
            }
        });
    }

    Status all_gather(const void* send, void* recv, int64_t count, DType dtype) override {
        SLUICE_RETURN_IF_ERROR(check_count(Op::kAllGather, count));
        Post post = make_post(Op::kAllGather, send, recv, count, dtype);
        const int64_t bytes = count * dtype_size(dtype);
        return run(post, [&] {
            for (int r = 0; r < size(); ++r) {
                copy_bytes(static_cast<uint8_t*>(recv) + r * bytes, group_->post(r).send, bytes);
            }
            return true;
        });
    }

    Status reduce_scatter(const void* send, void* recv, int64_t count, DType dtype,
                          ReduceOp op) override {
        SLUICE_RETURN_IF_ERROR(check_reduction(Op::kReduceScatter, count, dtype));
        Post post = make_post(Op::kReduceScatter, send, recv, count, dtype, op);
        return run(post, [&] {
            std::vector<float>& mine = group_->scratch(rank_);
            mine.resize(static_cast<size_t>(count));
            reduce_range(rank_ * count, (rank_ + 1) * count, dtype, op, mine.data());
            for (int64_t i = 0; i < count; ++i) {
                store_element(dtype, recv, i, mine[static_cast<size_t>(i)]);
            }
            return true;
        });
    }

    Status all_to_all(const void* send, std::span<const int64_t> send_counts, void* recv,
                      std::span<const int64_t> recv_counts, DType dtype) override {
        SLUICE_RETURN_IF_ERROR(check_count_lists(send_counts, recv_counts, size()));
        Post post = make_post(Op::kAllToAll, send, recv, 0, dtype);
        post.send_counts = send_counts;
        post.recv_counts = recv_counts;
        const int64_t element = dtype_size(dtype);
        return run(post, [&] {
            int64_t out = 0;
            for (int r = 0; r < size(); ++r) {
                const Post& theirs = group_->post(r);
                const int64_t offset = std::accumulate(theirs.send_counts.begin(),
                                                       theirs.send_counts.begin() + rank_,
                                                       int64_t{0});
                const int64_t n = recv_counts[static_cast<size_t>(r)];
                copy_bytes(static_cast<uint8_t*>(recv) + out * element,
                           static_cast<const uint8_t*>(theirs.send) + offset * element,
                           n * element);
                out += n;
            }
            return true;
        });
    }

    Status broadcast(void* data, int64_t count, DType dtype, int root) override {
        SLUICE_RETURN_IF_ERROR(check_count(Op::kBroadcast, count));
        if (root < 0 || root >= size()) {
            return invalid_argument("broadcast: root " + std::to_string(root) +
                                    " outside the group of " + std::to_string(size()));
        }
        Post post = make_post(Op::kBroadcast, data, data, count, dtype, ReduceOp::kSum, root);
        return run(post, [&] {
            if (rank_ != root) {
                copy_bytes(data, group_->post(root).send, count * dtype_size(dtype));
            }
            return true;
        });
    }

    Status barrier() override {
        return group_->enter(rank_, make_post(Op::kBarrier, nullptr, nullptr, 0, DType::kF32));
    }

    Result<std::unique_ptr<Communicator>> split(int color, int key) override {
        Post post = make_post(Op::kSplit, nullptr, nullptr, 0, DType::kF32);
        post.color = color;
        post.key = key;
        std::shared_ptr<LocalGroup> sub;
        std::vector<int> members;  // read from the posts before the exit, which may change after
        SLUICE_RETURN_IF_ERROR(run(
            post,
            [&] {
                // The first member of each sub-group makes it; the others take it after the exit.
                members = members_of(color);
                if (!members.empty() && members.front() == rank_) {
                    std::vector<int> world;
                    for (int member : members) {
                        world.push_back(group_->world_rank(member));
                    }
                    group_->split_slot(rank_) =
                        LocalGroup::make(group_->family(), std::move(world));
                }
                return true;
            },
            [&] {
                if (!members.empty()) {
                    sub = group_->split_slot(members.front());
                }
            }));
        if (sub == nullptr) {
            return invalid_argument("split: color " + std::to_string(color) +
                                    " is negative, expected 0 or more");
        }
        const auto sub_rank =
            static_cast<int>(std::find(members.begin(), members.end(), rank_) - members.begin());
        return std::unique_ptr<Communicator>(std::make_unique<LocalCommunicator>(sub, sub_rank));
    }

    void abort(const std::string& reason) override { group_->abort(rank_, reason); }

private:
    // The ranks that posted `color` to the current split, by ascending key, then rank; none for
    // a negative color.
    std::vector<int> members_of(int color) const {
        std::vector<int> members;
        if (color < 0) {
            return members;
        }
        for (int r = 0; r < size(); ++r) {
            if (group_->post(r).color == color) {
                members.push_back(r);
            }
        }
        std::stable_sort(members.begin(), members.end(),
                         [&](int a, int b) { return group_->post(a).key < group_->post(b).key; });
        return members;
    }

    // [begin, end) of rank r's share of `count` elements in all_reduce.
    std::pair<int64_t, int64_t> chunk(int64_t count, int r) const {
        return {count * r / size(), count * (r + 1) / size()};
    }

    // out[i - begin] = reduction over ranks 0, 1, ... of element i of their posted send buffers.
    void reduce_range(int64_t begin, int64_t end, DType dtype, ReduceOp op, float* out) const {
        for (int64_t i = begin; i < end; ++i) {
            out[i - begin] = load_element(dtype, group_->post(0).send, i);
        }
        for (int r = 1; r < size(); ++r) {
            const void* theirs = group_->post(r).send;
            for (int64_t i = begin; i < end; ++i) {
                out[i - begin] = combine(op, out[i - begin], load_element(dtype, theirs, i));
            }
        }
    }

    static void copy_bytes(void* dst, const void* src, int64_t bytes) {
        if (bytes > 0 && dst != src) {
            std::memcpy(dst, src, static_cast<size_t>(bytes));
        }
    }

    // Every rank checks every post the same way, so all reach the same verdict.
    Status check_agreement(const Post& mine) const {
        std::vector<detail::CollectiveCall> calls;
        for (int r = 0; r < size(); ++r) {
            calls.push_back(call_of(group_->post(r)));
        }
        return detail::check_agreement(rank_, call_of(mine), calls);
    }

    static detail::CollectiveCall call_of(const Post& post) {
        return {post.op,   post.count,       post.dtype,      post.reduce,
                post.root, post.send_counts, post.recv_counts};
    }

    // Entry rendezvous, agreement check, this rank's work, the exit rendezvous, then `finish`
    // (all_reduce reads the chunks the others reduced). Nothing is read after `finish` that a
    // rank could change before the next entry rendezvous, so no third rendezvous is needed.
    template <typename Work>
    Status run(const Post& post, Work work) {
        return run(post, work, [] {});
    }

    template <typename Work, typename Finish>
    Status run(const Post& post, Work work, Finish finish) {
        SLUICE_RETURN_IF_ERROR(group_->enter(rank_, post));
        Status agreed = check_agreement(post);
        if (!agreed.ok()) {
            group_->leave();
            return agreed;
        }
        work();
        group_->leave();
        finish();
        return Status::ok_status();
    }

    std::shared_ptr<LocalGroup> group_;
    const int rank_;
};

}  // namespace

Result<std::vector<std::unique_ptr<Communicator>>> create_local_communicators(int n_ranks) {
    if (n_ranks < 1) {
        return invalid_argument("local communicator group of " + std::to_string(n_ranks) +
                                " ranks, expected at least 1");
    }
    std::vector<int> world(static_cast<size_t>(n_ranks));
    std::iota(world.begin(), world.end(), 0);
    auto group = LocalGroup::make(std::make_shared<LocalFamily>(), std::move(world));
    std::vector<std::unique_ptr<Communicator>> ranks;
    for (int r = 0; r < n_ranks; ++r) {
        ranks.push_back(std::make_unique<LocalCommunicator>(group, r));
    }
    return ranks;
}

}  // namespace sluice::inference
