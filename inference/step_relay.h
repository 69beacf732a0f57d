#pragma once
// The step relay of an engine that spans several nodes (docs/parallel.md, "Serving across
// nodes"): node 0 schedules, and every other node runs the same backend calls on its own ranks,
// in the same order, so that their collectives meet.
//
//   node 0:       Engine -> LeaderBackend -> (broadcast the call) -> its local ranks' backend
//   node k > 0:   StepFollower: next call from the channel -> its local ranks' backend
//
// What travels is every call that changes what a rank holds: configure_kv_cache, forward (the
// whole ForwardBatch: tokens, positions, block tables, logits rows, hidden rows, and the
// device-sampling parameters with the uniform the leader drew, so every rank samples the same
// token) and copy_kv_block. Reads (memory, health, kv_cache_spec) are answered locally.
//
// The leader checks a call as the local backend would (detail::validate_forward_batch, the
// backend's step-token and device-sampling limits) *before* it broadcasts, so a malformed
// request is refused on node 0 alone and never reaches a follower. A follower therefore treats
// any failure of a relayed call as fatal: it aborts the whole group with the reason, which fails
// the leader's call in progress (its ranks' collectives end with kAborted) and every later one,
// turns the leader's health() red and so stops the engine; /readyz on every node says why.
//
// Wire format of one relayed call (little-endian, one channel message each):
//   u8 version (1), u8 kind (1 configure_kv_cache, 2 forward, 3 copy_kv_block), then
//   configure_kv_cache: i32 block_size, i32 n_blocks
//   copy_kv_block:      i32 src, i32 dst
//   forward:            u32 n_sequences, then per sequence
//                         i32 n_past, u8 logits (0 none, 1 last, 2 all), u8 hidden (0|1),
//                         u32 n_tokens, i32 tokens[n_tokens], u32 n_blocks, i32 blocks[n_blocks],
//                         u8 has_device_sample, and when 1:
//                           f32 temperature, i32 top_k, f32 top_p, f32 min_p, f64 u
// decode_relayed_call() refuses anything else (unknown version or kind, an enum out of range,
// a count past the message's end, trailing bytes) with kInvalidArgument naming what is wrong.
//
// Thread safety: a LeaderBackend is a Backend (owned by the scheduler's thread); a StepFollower's
// run() runs on one thread, stop() may be called from any.

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "inference/backend.h"

namespace sluice::inference {

// The control channel that joins the nodes of one engine (detail/tcp_bootstrap.h implements it
// over the bootstrap's connections). A node's channel is shared by its communicators, which abort
// with it, and by its relay.
class StepChannel {
public:
    virtual ~StepChannel() = default;

    virtual int node() const = 0;
    virtual int n_nodes() const = 0;

    // Node 0: sends `call` to every other node, in order. kAborted with the group's reason once
    // it has failed; kFailedPrecondition on any other node.
    virtual Status broadcast_step(std::string_view call) = 0;
    // Nodes > 0: blocks until node 0's next call arrives. kAborted with the group's reason when
    // the group fails; kCancelled when node 0 ended the group in order (it shut down) or stop()
    // was called; kFailedPrecondition on node 0.
    virtual Result<std::string> next_step() = 0;
    // Wakes a next_step() in progress (and every later one) with kCancelled; not a failure.
    virtual void stop_following() = 0;

    // Aborts the whole group with `reason`; the first reason wins (as BootstrapSession::abort).
    virtual void abort(const std::string& reason) = 0;
    // The reason, or empty while the group is healthy.
    virtual std::string abort_reason() const = 0;
};

// One relayed call, decoded. For kForward, `batch`'s spans point into `tokens` and `blocks`.
struct RelayedCall {
    enum class Kind : uint8_t { kConfigureKvCache = 1, kForward = 2, kCopyKvBlock = 3 };
    Kind kind = Kind::kForward;
    KvCacheSpec spec;             // kConfigureKvCache
    int32_t src = 0, dst = 0;     // kCopyKvBlock
    ForwardBatch batch;           // kForward
    std::vector<std::vector<int32_t>> tokens;  // per sequence
    std::vector<std::vector<int32_t>> blocks;  // per sequence

    RelayedCall() = default;
    RelayedCall(const RelayedCall&) = delete;  // spans into the vectors
    RelayedCall& operator=(const RelayedCall&) = delete;
    RelayedCall(RelayedCall&&) = default;  // moving a vector keeps its buffer
    RelayedCall& operator=(RelayedCall&&) = default;
};

std::string encode_configure_kv_cache(const KvCacheSpec& spec);
std::string encode_forward(const ForwardBatch& batch);
std::string encode_copy_kv_block(int32_t src, int32_t dst);
Result<RelayedCall> decode_relayed_call(std::string_view message);

// Node 0's backend: relays every call to the other nodes, then runs it on `local` (node 0's
// ranks). `max_step_tokens` is the local backend's limit on new tokens per step (0: none), which
// the leader checks before relaying. health() is the local backend's, else kAborted with the
// channel's reason.
std::unique_ptr<Backend> make_leader_backend(std::unique_ptr<Backend> local,
                                             std::shared_ptr<StepChannel> channel,
                                             int64_t max_step_tokens);

// A node > 0: runs node 0's calls on its local ranks until the group ends.
class StepFollower {
public:
    StepFollower(std::unique_ptr<Backend> local, std::shared_ptr<StepChannel> channel);
    ~StepFollower();

    // Follows until the group ends: Ok when node 0 ended it in order or stop() was called;
    // otherwise the reason the group failed (kAborted), after aborting the group if the failure
    // was this node's (a call that failed or did not decode).
    Status run();
    // Ends a run() in progress at the next call boundary (not a failure of the group).
    void stop();

    // Calls run so far (all kinds), for /metrics and tests.
    int64_t calls() const;
    const Backend& backend() const { return *local_; }
    const StepChannel& channel() const { return *channel_; }

private:
    std::unique_ptr<Backend> local_;
    std::shared_ptr<StepChannel> channel_;
    std::atomic<int64_t> calls_{0};
};

}  // namespace sluice::inference
