// The step relay over real bootstrap sessions on loopback, node 0 and node 1 as threads of this
// process (node 1 once as a child process that dies): the follower runs the leader's calls in
// order with the same results (direct calls and a whole engine), device-sampling parameters
// arrive intact, a malformed call is refused on node 0 alone, and a follower's failure or death
// fails the leader with the reason, while an orderly end is not a failure.
#include "inference/step_relay.h"

#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include "fake_backend.h"
#include "inference/cpu_backend.h"
#include "inference/detail/tcp_bootstrap.h"
#include "inference/engine.h"
#include "inference/tiny_model.h"
#include "inference_test_support.h"
#include "loopback_nodes.h"

namespace sluice::inference {
namespace {

using namespace std::chrono_literals;

const std::string& tiny_dir() { return testing::tiny_model_dir(11); }

std::unique_ptr<Backend> tiny_backend() {
    // One thread: two backends then sum in the same order, so their outputs match bit for bit.
    auto backend = open_cpu_backend(tiny_dir(), {WeightFormat::kAsStored, 1});
    REQUIRE_MESSAGE(backend.ok(), backend.status().to_string());
    return std::move(*backend);
}

// FNV-1a over raw bytes.
class Digest {
public:
    template <typename T>
    void add(const std::vector<T>& values) {
        add_bytes(values.data(), values.size() * sizeof(T));
        add_bytes(nullptr, 0);
    }
    void add(int64_t v) { add_bytes(&v, sizeof(v)); }
    uint64_t value() const { return h_; }

private:
    void add_bytes(const void* data, size_t size) {
        const auto* bytes = static_cast<const unsigned char*>(data);
        for (size_t i = 0; i < size; ++i) {
            h_ = (h_ ^ bytes[i]) * 0x100000001b3ULL;
        }
        h_ = (h_ ^ size) * 0x100000001b3ULL;  // lengths, so [a][bc] differs from [ab][c]
    }
    uint64_t h_ = 0xcbf29ce484222325ULL;
};

uint64_t digest(const ForwardOutput& out) {
    Digest d;
    d.add(out.n_vocab);
    d.add(out.logits);
    d.add(out.first_row);
    d.add(out.n_rows);
    std::vector<int64_t> sampled;
    for (const TokenLogprob& t : out.sampled) {
        uint32_t bits = 0;
        std::memcpy(&bits, &t.logprob, 4);
        sampled.push_back(t.id);
        sampled.push_back(bits);
    }
    d.add(sampled);
    d.add(out.n_embd);
    d.add(out.hidden);
    d.add(out.hidden_first_row);
    d.add(out.hidden_n_rows);
    return d.value();
}

// One call that reached a rank's backend: what it was asked (the call's own encoding, so every
// input counts) and what it answered.
struct CallRecord {
    std::string input;
    StatusCode code = StatusCode::kOk;
    uint64_t output = 0;        // digest of a forward's output
    int64_t output_floats = 0;  // logits and hidden values a forward returned
    bool operator==(const CallRecord&) const = default;
};

// What a RecordingBackend saw; written by the thread driving the backend, read by the test.
class CallLog {
public:
    void add(CallRecord record, std::vector<std::optional<DeviceSampling>> sampling = {}) {
        std::lock_guard lock(mutex_);
        records_.push_back(std::move(record));
        sampling_.push_back(std::move(sampling));
    }
    std::vector<CallRecord> records() const {
        std::lock_guard lock(mutex_);
        return records_;
    }
    std::vector<std::vector<std::optional<DeviceSampling>>> sampling() const {
        std::lock_guard lock(mutex_);
        return sampling_;
    }

private:
    mutable std::mutex mutex_;
    std::vector<CallRecord> records_;
    std::vector<std::vector<std::optional<DeviceSampling>>> sampling_;  // per call
};

// A Backend that records every call changing what the wrapped backend holds. With
// `device_sample_capacity` > 0 it also claims to sample on the device (the wrapped one returns
// its rows as usual), which is how the leader's limits and the parameters' trip are tested.
class RecordingBackend final : public Backend {
public:
    RecordingBackend(std::unique_ptr<Backend> inner, std::shared_ptr<CallLog> calls,
                     int64_t device_sample_capacity = 0)
        : inner_(std::move(inner)), log_(std::move(calls)), capacity_(device_sample_capacity) {}

    std::string name() const override { return inner_->name(); }
    const ModelConfig& config() const override { return inner_->config(); }
    BackendMemory memory() const override { return inner_->memory(); }
    int64_t active_weight_bytes() const override { return inner_->active_weight_bytes(); }
    KvCacheSpec kv_cache_spec() const override { return inner_->kv_cache_spec(); }
    bool samples_on_device() const override { return capacity_ > 0; }
    int64_t device_sample_capacity() const override { return capacity_; }
    Status health() const override { return inner_->health(); }

    Status configure_kv_cache(const KvCacheSpec& spec) override {
        Status status = inner_->configure_kv_cache(spec);
        log_->add({encode_configure_kv_cache(spec), status.code()});
        return status;
    }
    Result<ForwardOutput> forward(const ForwardBatch& batch) override {
        auto out = inner_->forward(batch);
        CallRecord record{encode_forward(batch), out.status().code()};
        if (out.ok()) {
            record.output = digest(*out);
            record.output_floats = static_cast<int64_t>(out->logits.size() + out->hidden.size());
        }
        log_->add(std::move(record), batch.device_sample);
        return out;
    }
    Status copy_kv_block(int32_t src, int32_t dst) override {
        Status status = inner_->copy_kv_block(src, dst);
        log_->add({encode_copy_kv_block(src, dst), status.code()});
        return status;
    }

private:
    std::unique_ptr<Backend> inner_;
    std::shared_ptr<CallLog> log_;
    int64_t capacity_;
};

struct Group {
    std::shared_ptr<detail::BootstrapSession> root;
    std::shared_ptr<detail::BootstrapSession> member;
};

Group join_two_nodes() {
    const int port = testing::free_port();
    auto member = std::async(std::launch::async, [port] {
        return detail::join_bootstrap(testing::node_options(port, 1, 2, 1), "");
    });
    auto root = detail::join_bootstrap(testing::node_options(port, 0, 2, 1), "id");
    auto joined = member.get();
    REQUIRE_MESSAGE(root.ok(), root.status().to_string());
    REQUIRE_MESSAGE(joined.ok(), joined.status().to_string());
    return {std::move(*root), std::move(*joined)};
}

// A StepFollower on its own thread. Stopped and joined on destruction, so a failed REQUIRE in a
// test does not leave it waiting.
class FollowerThread {
public:
    FollowerThread(std::unique_ptr<Backend> local, std::shared_ptr<StepChannel> channel)
        : follower_(std::move(local), std::move(channel)),
          done_(std::async(std::launch::async, [this] { return follower_.run(); })) {}
    ~FollowerThread() {
        if (done_.valid()) {
            follower_.stop();
            done_.wait();
        }
    }
    FollowerThread(const FollowerThread&) = delete;
    FollowerThread& operator=(const FollowerThread&) = delete;

    StepFollower& follower() { return follower_; }
    // run()'s result; waits for it.
    Status result() {
        REQUIRE_MESSAGE(done_.wait_for(60s) == std::future_status::ready,
                        "the follower did not end");
        return done_.get();
    }

private:
    StepFollower follower_;
    std::future<Status> done_;
};

// Waits (generously) for something another thread does; false if it never happens.
bool eventually(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) {
            return false;
        }
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

// Waits for a node's abort callback.
class AbortLatch {
public:
    explicit AbortLatch(detail::BootstrapSession& session) {
        session.on_abort([this](const std::string& reason) {
            std::lock_guard lock(mutex_);
            reason_ = reason;
            changed_.notify_all();
        });
    }
    std::string wait() {
        std::unique_lock lock(mutex_);
        changed_.wait_for(lock, 60s, [&] { return !reason_.empty(); });
        return reason_;
    }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    std::string reason_;
};

std::vector<std::string> kinds(const std::vector<CallRecord>& records) {
    std::vector<std::string> out;
    for (const CallRecord& r : records) {
        out.push_back(r.input.size() > 1 ? std::to_string(static_cast<int>(r.input[1])) : "?");
    }
    return out;
}

Status drain(RequestHandle& handle) {
    StreamEvent event;
    while (handle.next(&event, 1s) != RequestHandle::Poll::kFinished) {
    }
    return handle.status();
}

}  // namespace

TEST_CASE("step relay: the follower runs the leader's calls in order with the same results") {
    Group group = join_two_nodes();
    auto leader_log = std::make_shared<CallLog>();
    auto follower_log = std::make_shared<CallLog>();
    FollowerThread follower(std::make_unique<RecordingBackend>(tiny_backend(), follower_log),
                            group.member);
    auto leader = make_leader_backend(
        std::make_unique<RecordingBackend>(tiny_backend(), leader_log), group.root, 0);
    CHECK(leader->name().find("leading 2 nodes") != std::string::npos);

    REQUIRE(leader->configure_kv_cache({16, 32}).ok());
    std::vector<int32_t> long_prompt;
    for (int32_t i = 0; i < 20; ++i) {
        long_prompt.push_back(100 + 37 * i);
    }
    const std::vector<int32_t> short_prompt = {5, 6, 7, 8, 9};
    const std::vector<int32_t> table_long = {0, 1};
    const std::vector<int32_t> table_short = {2};
    ForwardBatch prefill;
    prefill.sequences.push_back({long_prompt, 0, table_long, LogitsRows::kAll, true});
    prefill.sequences.push_back({short_prompt, 0, table_short, LogitsRows::kLast, false});
    auto first = leader->forward(prefill);
    REQUIRE_MESSAGE(first.ok(), first.status().to_string());
    CHECK(first->n_rows == std::vector<int64_t>{20, 1});
    CHECK(first->hidden_n_rows == std::vector<int64_t>{20, 0});

    const std::vector<int32_t> next_long = {42};
    const std::vector<int32_t> next_short = {43, 44};
    ForwardBatch decode;
    decode.sequences.push_back({next_long, 20, table_long, LogitsRows::kLast, false});
    decode.sequences.push_back({next_short, 5, table_short, LogitsRows::kNone, true});
    REQUIRE(leader->forward(decode).ok());

    // Copy-on-write of the short sequence's partial block, then a branch continues in the copy.
    REQUIRE(leader->copy_kv_block(2, 3).ok());
    const std::vector<int32_t> table_branch = {3};
    const std::vector<int32_t> branch = {50, 51, 52};
    ForwardBatch fork;
    fork.sequences.push_back({branch, 7, table_branch, LogitsRows::kAll, true});
    REQUIRE(leader->forward(fork).ok());
    CHECK(leader->health().ok());

    // Ending node 0's side (the leader holds the root's session) ends the follower in order,
    // after the calls already sent.
    leader.reset();
    group.root.reset();
    CHECK(follower.result().ok());
    CHECK(follower.follower().calls() == 5);
    const std::vector<CallRecord> led = leader_log->records();
    const std::vector<CallRecord> followed = follower_log->records();
    CHECK(kinds(led) == std::vector<std::string>{"1", "2", "2", "3", "2"});
    REQUIRE(led.size() == followed.size());
    for (size_t i = 0; i < led.size(); ++i) {
        CHECK_MESSAGE(followed[i] == led[i], "call " << i);
        CHECK(led[i].code == StatusCode::kOk);
    }
    CHECK(led[1].output_floats > 0);
    CHECK(led[1].output != led[2].output);
}

TEST_CASE("step relay: an engine on node 0 drives node 1 through the same steps") {
    Group group = join_two_nodes();
    auto leader_log = std::make_shared<CallLog>();
    auto follower_log = std::make_shared<CallLog>();
    FollowerThread follower(std::make_unique<RecordingBackend>(tiny_backend(), follower_log),
                            group.member);
    auto leader = make_leader_backend(
        std::make_unique<RecordingBackend>(tiny_backend(), leader_log), group.root, 0);
    group.root.reset();  // the engine's backend holds it from here

    EngineOptions options;
    options.kv_cache = {16, 64};
    options.scheduler.max_batch_tokens = 32;
    auto engine = Engine::open(std::move(leader), nullptr, options);
    REQUIRE_MESSAGE(engine.ok(), engine.status().to_string());

    std::vector<int32_t> prompt;
    for (int32_t i = 0; i < 21; ++i) {  // not a whole number of blocks: forks copy the last one
        prompt.push_back(300 + 11 * i);
    }
    std::vector<EngineRequest> requests(5);
    requests[0].prompt = prompt;
    requests[0].sampling.temperature = 0;
    requests[0].max_tokens = 6;
    requests[1].prompt = prompt;  // the same prompt again: a prefix cache hit
    requests[1].sampling.seed = 5;
    requests[1].max_tokens = 5;
    requests[2].prompt = prompt;
    requests[2].n = 3;  // three choices fork from the prompt
    requests[2].sampling.seed = 9;
    requests[2].sampling.top_k = 20;
    requests[2].max_tokens = 4;
    requests[3].prompt = {7, 8, 9, 10};
    requests[3].embed = true;  // hidden rows
    requests[4].prompt = {1000, 2000, 3000};
    requests[4].sampling.temperature = 0.7f;
    requests[4].sampling.seed = 3;
    requests[4].max_tokens = 8;
    for (const EngineRequest& request : requests) {
        auto handle = (*engine)->submit(request);
        REQUIRE_MESSAGE(handle.ok(), handle.status().to_string());
        const Status ended = drain(*handle);
        CHECK_MESSAGE(ended.ok(), ended.to_string());
    }
    engine->reset();  // and with it the leader and node 0's session

    CHECK(follower.result().ok());
    const std::vector<CallRecord> led = leader_log->records();
    const std::vector<CallRecord> followed = follower_log->records();
    CHECK(follower.follower().calls() == static_cast<int64_t>(led.size()));
    REQUIRE(led.size() == followed.size());
    for (size_t i = 0; i < led.size(); ++i) {
        CHECK_MESSAGE(followed[i] == led[i], "call " << i);
    }
    const std::vector<std::string> seen = kinds(led);
    CHECK(std::ranges::count(seen, "1") == 1);
    CHECK(std::ranges::count(seen, "2") > 20);
    CHECK(std::ranges::count(seen, "3") >= 1);
}

TEST_CASE("step relay: device-sampling parameters reach the follower, limits are node 0's") {
    Group group = join_two_nodes();
    auto leader_log = std::make_shared<CallLog>();
    auto follower_log = std::make_shared<CallLog>();
    FollowerThread follower(std::make_unique<RecordingBackend>(
                                std::make_unique<testing::FakeBackend>(), follower_log, 2),
                            group.member);
    auto leader = make_leader_backend(
        std::make_unique<RecordingBackend>(std::make_unique<testing::FakeBackend>(), leader_log, 2),
        group.root, 0);
    REQUIRE(leader->configure_kv_cache({4, 16}).ok());
    const std::vector<int32_t> a = {1, 2, 3};
    const std::vector<int32_t> b = {4};
    const std::vector<int32_t> c = {5, 6};
    const std::vector<int32_t> ta = {0};
    const std::vector<int32_t> tb = {1};
    const std::vector<int32_t> tc = {2};
    ForwardBatch batch;
    batch.sequences.push_back({a, 0, ta, LogitsRows::kLast, false});
    batch.sequences.push_back({b, 0, tb, LogitsRows::kLast, false});
    batch.sequences.push_back({c, 0, tc, LogitsRows::kLast, false});
    batch.device_sample.resize(3);
    batch.device_sample[0] = DeviceSampling{0.7f, 40, 0.95f, 0.05f, 0.123456789012345};
    batch.device_sample[2] = DeviceSampling{0.0f, 0, 1.0f, 0.0f, 0.0};
    REQUIRE(leader->forward(batch).ok());

    // More device-sampled entries than the backend holds: refused on node 0.
    ForwardBatch too_many = batch;
    too_many.device_sample[1] = DeviceSampling{1.0f, 0, 1.0f, 0.0f, 0.5};
    const auto refused = leader->forward(too_many);
    CHECK(refused.status().code() == StatusCode::kInvalidArgument);
    CHECK(refused.status().message() ==
          "forward: 3 entries sampled on the device in one step, the backend samples at most 2");
    // A parameter out of range: refused on node 0 too.
    ForwardBatch bad_u = batch;
    bad_u.device_sample[0]->u = 1.0;
    CHECK(leader->forward(bad_u).status().code() == StatusCode::kInvalidArgument);
    CHECK(leader->health().ok());

    leader.reset();
    group.root.reset();
    CHECK(follower.result().ok());
    CHECK(follower.follower().calls() == 2);
    REQUIRE(follower_log->records().size() == 2);
    CHECK(follower_log->records() == leader_log->records());
    const auto got = follower_log->sampling()[1];
    REQUIRE(got.size() == 3);
    REQUIRE(got[0].has_value());
    CHECK(got[0]->temperature == 0.7f);
    CHECK(got[0]->top_k == 40);
    CHECK(got[0]->top_p == 0.95f);
    CHECK(got[0]->min_p == 0.05f);
    CHECK(got[0]->u == 0.123456789012345);
    CHECK_FALSE(got[1].has_value());
    REQUIRE(got[2].has_value());
    CHECK(got[2]->temperature == 0.0f);
    CHECK(got[2]->u == 0.0);
}

TEST_CASE("step relay: a malformed call is refused on node 0 and never reaches node 1") {
    Group group = join_two_nodes();
    auto leader_log = std::make_shared<CallLog>();
    auto follower_log = std::make_shared<CallLog>();
    FollowerThread follower(
        std::make_unique<RecordingBackend>(std::make_unique<testing::FakeBackend>(), follower_log),
        group.member);
    auto leader = make_leader_backend(
        std::make_unique<RecordingBackend>(std::make_unique<testing::FakeBackend>(), leader_log),
        group.root, /*max_step_tokens=*/8);

    const std::vector<int32_t> tokens = {1, 2, 3};
    const std::vector<int32_t> table = {0};
    ForwardBatch valid;
    valid.sequences.push_back({tokens, 0, table, LogitsRows::kLast, false});
    CHECK(leader->forward(valid).status().code() == StatusCode::kFailedPrecondition);
    CHECK(leader->configure_kv_cache({0, 16}).code() == StatusCode::kInvalidArgument);
    CHECK(leader->configure_kv_cache({4, -1}).code() == StatusCode::kInvalidArgument);
    REQUIRE(leader->configure_kv_cache({4, 16}).ok());

    const std::vector<int32_t> out_of_vocab = {1, 64};
    ForwardBatch bad_token;
    bad_token.sequences.push_back({out_of_vocab, 0, table, LogitsRows::kLast, false});
    const auto refused = leader->forward(bad_token);
    CHECK(refused.status().code() == StatusCode::kInvalidArgument);
    CHECK(refused.status().message() == "forward: sequence 0: token id 64 outside [0, 64)");

    const std::vector<int32_t> nine = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    const std::vector<int32_t> three_blocks = {0, 1, 2};
    ForwardBatch too_long;
    too_long.sequences.push_back({nine, 0, three_blocks, LogitsRows::kLast, false});
    CHECK(leader->forward(too_long).status().message() ==
          "forward: 9 new tokens in one step, the backend holds 8");

    const std::vector<int32_t> outside = {16};
    ForwardBatch bad_block;
    bad_block.sequences.push_back({tokens, 0, outside, LogitsRows::kLast, false});
    CHECK(leader->forward(bad_block).status().code() == StatusCode::kInvalidArgument);
    CHECK(leader->forward(ForwardBatch{}).status().message() == "forward: empty batch");
    // The fake backend cannot sample on the device.
    ForwardBatch sampled = valid;
    sampled.device_sample = {DeviceSampling{}};
    CHECK(leader->forward(sampled).status().code() == StatusCode::kInvalidArgument);
    CHECK(leader->copy_kv_block(0, 16).message() ==
          "copy_kv_block: blocks 0 -> 16 outside [0, 16)");

    REQUIRE(leader->forward(valid).ok());
    REQUIRE(eventually([&] { return follower.follower().calls() == 2; }));
    CHECK(leader->health().ok());
    CHECK(group.member->abort_reason().empty());

    leader.reset();
    group.root.reset();
    CHECK(follower.result().ok());
    CHECK(follower.follower().calls() == 2);
    CHECK(kinds(follower_log->records()) == std::vector<std::string>{"1", "2"});
    CHECK(follower_log->records() == leader_log->records());
}

TEST_CASE("step relay: a call failing on node 1 aborts the group and fails node 0 with why") {
    Group group = join_two_nodes();
    AbortLatch root_aborted(*group.root);
    auto failing = std::make_unique<testing::FakeBackend>();
    failing->fail_after(1, Status(StatusCode::kInternal, "device lost"));
    FollowerThread follower(std::move(failing), group.member);
    auto leader = make_leader_backend(std::make_unique<testing::FakeBackend>(), group.root, 0);

    REQUIRE(leader->configure_kv_cache({4, 16}).ok());
    const std::vector<int32_t> tokens = {1, 2, 3};
    const std::vector<int32_t> table = {0};
    ForwardBatch batch;
    batch.sequences.push_back({tokens, 0, table, LogitsRows::kLast, false});
    REQUIRE(leader->forward(batch).ok());
    // Node 0's own ranks run this one (the fake has no collectives to fail); node 1's fails.
    const std::vector<int32_t> next = {4};
    ForwardBatch second;
    second.sequences.push_back({next, 3, table, LogitsRows::kLast, false});
    (void)leader->forward(second);

    const std::string reason = root_aborted.wait();
    CHECK(reason.starts_with("node 1: relayed forward (call 3) failed: "));
    CHECK(reason.find("device lost") != std::string::npos);
    const Status ran = follower.result();
    CHECK(ran.code() == StatusCode::kAborted);
    CHECK(ran.message() == reason);
    CHECK(follower.follower().calls() == 2);

    const auto after = leader->forward(batch);
    CHECK(after.status().code() == StatusCode::kAborted);
    CHECK(after.status().message() == reason);
    CHECK(leader->copy_kv_block(0, 1).code() == StatusCode::kAborted);
    CHECK(leader->health().code() == StatusCode::kAborted);
    CHECK(leader->health().message() == reason);
}

TEST_CASE("step relay: a call node 1 cannot decode aborts the group") {
    Group group = join_two_nodes();
    AbortLatch root_aborted(*group.root);
    FollowerThread follower(std::make_unique<testing::FakeBackend>(), group.member);
    REQUIRE(group.root->broadcast_step(std::string("\x01\x09", 2)).ok());
    const std::string reason = root_aborted.wait();
    CHECK(reason ==
          "node 1: relayed call 1 did not decode: relayed call: byte 1: unknown kind 9, expected "
          "1 (configure_kv_cache), 2 (forward) or 3 (copy_kv_block)");
    CHECK(follower.result().code() == StatusCode::kAborted);
    CHECK(follower.follower().calls() == 0);
}

TEST_CASE("step relay: node 1's process dying fails node 0's next call") {
    const int port = testing::free_port();
    // Node 1 joins from a child process and dies without a word (no BYE), as a crashed node would.
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        auto session = detail::join_bootstrap(testing::node_options(port, 1, 2, 1), "");
        ::_exit(session.ok() ? 0 : 1);
    }
    auto root = detail::join_bootstrap(testing::node_options(port, 0, 2, 1), "id");
    int child_status = 0;
    REQUIRE(::waitpid(child, &child_status, 0) == child);
    REQUIRE(WIFEXITED(child_status));
    REQUIRE(WEXITSTATUS(child_status) == 0);
    REQUIRE_MESSAGE(root.ok(), root.status().to_string());
    std::shared_ptr<detail::BootstrapSession> session = std::move(*root);
    AbortLatch aborted(*session);
    auto leader = make_leader_backend(std::make_unique<testing::FakeBackend>(), session, 0);
    const std::string reason = aborted.wait();
    CHECK(reason.starts_with("node 1 is gone"));
    const Status refused = leader->configure_kv_cache({4, 16});
    CHECK(refused.code() == StatusCode::kAborted);
    CHECK(refused.message().starts_with("node 1 is gone"));
    CHECK(leader->health().code() == StatusCode::kAborted);
    CHECK(leader->kv_cache_spec().n_blocks == 0);  // nothing ran locally
}

TEST_CASE("step relay: stop() ends a follower in order") {
    Group group = join_two_nodes();
    FollowerThread follower(std::make_unique<testing::FakeBackend>(), group.member);
    follower.follower().stop();
    CHECK(follower.result().ok());
    CHECK(follower.follower().calls() == 0);
    CHECK(group.root->abort_reason().empty());
    CHECK(group.member->abort_reason().empty());
}

}  // namespace sluice::inference
