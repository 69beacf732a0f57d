// Decode steps replayed from CUDA graphs (cuda/decode_graphs.h) against the same steps launched
// kernel by kernel, on the tiny preset's shapes (d_model 256, 8 heads over 2 KV heads, 2 layers,
// 16 experts) with random weights made on the device, bf16 and f32.
//
// Tolerance: none. A replay runs the launches the eager path makes, with the same kernels, grids
// and summation orders (split-K's extra partitions return at once), so the logits are compared
// bit for bit, and the greedy ids with them. The graph counters are compared with the steps the
// test expects to be captured and replayed, so that a silent fall-back to eager launches fails.
#include <doctest/doctest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <set>
#include <utility>

#include "gpu_test_support.h"
#include "inference/cuda/attention_split_k.cuh"
#include "inference/cuda/tensor_core.cuh"
#include "inference/cuda_backend.h"
#include "inference/tiny_model.h"
#include "inference_test_support.h"

namespace sluice::inference {
namespace {

constexpr int32_t kBlockSize = 16;
constexpr int32_t kBlocks = 1400;
const std::set<int64_t> kGraphBatches = {1, 2, 4, 8, 16, 32};  // CudaBackendOptions' default

std::unique_ptr<Backend> open_random(WeightFormat format, bool graphs) {
    CudaBackendOptions options;
    options.weights = format;
    options.max_batch_tokens = 1024;
    options.decode_graphs = graphs;
    auto backend = open_cuda_backend_random(tiny_model_config(TinyPreset::kTiny), options, 17);
    REQUIRE_MESSAGE(backend.ok(), backend.status().to_string());
    REQUIRE((*backend)->configure_kv_cache({kBlockSize, kBlocks}).ok());
    return std::move(*backend);
}

CudaGraphCounts counts_of(const Backend& backend) {
    auto counts = cuda_decode_graph_counts(backend);
    REQUIRE_MESSAGE(counts.ok(), counts.status().to_string());
    return *counts;
}

int multiprocessors() {
    int count = 0;
    REQUIRE(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, 0) == cudaSuccess);
    return count;
}

struct Sequence {
    std::vector<int32_t> tokens;  // the prompt, then each generated id
    std::vector<int32_t> table;
    int32_t n_past = 0;  // positions in the cache
};

// A graph's shape: the token count and the attention kernel.
using Key = std::pair<int64_t, cuda::AttentionKernel>;

// Two backends over the same weights, graphs on and off, fed the same steps.
class Twins {
public:
    explicit Twins(WeightFormat format)
        : on_(open_random(format, true)),
          off_(open_random(format, false)),
          tc_min_(cuda::tensor_core_min_tokens(
              format == WeightFormat::kF32 ? cuda::DeviceDType::kF32 : cuda::DeviceDType::kBF16)),
          n_sm_(multiprocessors()) {
        free_.resize(kBlocks);
        std::iota(free_.begin(), free_.end(), 0);
        std::shuffle(free_.begin(), free_.end(), rng_);
    }

    Backend& on() { return *on_; }
    Backend& off() { return *off_; }
    // What the graphs-on backend should count: a shape's first step runs eagerly, its second
    // captures a graph and runs it, later ones replay it.
    int64_t expected_captures() const { return expected_captures_; }
    int64_t expected_steps() const { return expected_steps_; }
    const std::set<Key>& captured_keys() const { return captured_; }
    // After the backend dropped its graphs: every shape starts over.
    void forget_graphs() {
        seen_.clear();
        captured_.clear();
    }

    // A new sequence: its prompt's prefill on both backends, whose last rows must be equal.
    void join(int32_t prompt_tokens, int32_t room) {
        Sequence seq;
        for (int32_t i = 0; i < prompt_tokens; ++i) {
            seq.tokens.push_back(static_cast<int32_t>(rng_() % 100352));
        }
        const int32_t blocks = (prompt_tokens + room + kBlockSize - 1) / kBlockSize;
        REQUIRE(static_cast<int32_t>(free_.size()) >= blocks);
        seq.table.assign(free_.end() - blocks, free_.end());
        free_.resize(free_.size() - static_cast<size_t>(blocks));
        ForwardBatch batch;
        batch.sequences.push_back({seq.tokens, 0, seq.table, LogitsRows::kLast});
        const int32_t id = run_both(batch)[0];
        seq.n_past = prompt_tokens;
        seq.tokens.push_back(id);
        active_.push_back(std::move(seq));
    }

    // Sequence `i` ends; its blocks go back to the pool for later sequences.
    void end(size_t i) {
        free_.insert(free_.end(), active_[i].table.begin(), active_[i].table.end());
        active_.erase(active_.begin() + static_cast<int64_t>(i));
    }

    size_t size() const { return active_.size(); }

    // One decode step of every active sequence.
    void decode() {
        ForwardBatch batch;
        int64_t longest = 0;
        for (const Sequence& seq : active_) {
            batch.sequences.push_back({std::span<const int32_t>(&seq.tokens.back(), 1), seq.n_past,
                                       seq.table, LogitsRows::kLast});
            longest = std::max<int64_t>(longest, seq.n_past + 1);
        }
        const auto n = static_cast<int64_t>(active_.size());
        if (kGraphBatches.contains(n) && n <= cuda::kSkinnyExpertMaxTokens && n < tc_min_) {
            const Key key{n, cuda::choose_attention_kernel(n, 8, longest, n_sm_)};
            if (!seen_.insert(key).second) {
                expected_steps_ += 1;
                expected_captures_ += captured_.insert(key).second ? 1 : 0;
            }
        }
        const std::vector<int32_t> ids = run_both(batch);
        for (size_t s = 0; s < active_.size(); ++s) {
            ++active_[s].n_past;
            active_[s].tokens.push_back(ids[s]);
        }
    }

private:
    // The step on both backends: equal logits, bit for bit; returns the greedy ids.
    std::vector<int32_t> run_both(const ForwardBatch& batch) {
        auto with = on_->forward(batch);
        auto without = off_->forward(batch);
        REQUIRE_MESSAGE(with.ok(), with.status().to_string());
        REQUIRE_MESSAGE(without.ok(), without.status().to_string());
        CHECK(with->logits == without->logits);
        std::vector<int32_t> ids;
        for (size_t s = 0; s < batch.sequences.size(); ++s) {
            const int32_t id = testing::argmax(with->row(s));
            CHECK(id == testing::argmax(without->row(s)));
            ids.push_back(id);
        }
        return ids;
    }

    std::unique_ptr<Backend> on_;
    std::unique_ptr<Backend> off_;
    int64_t tc_min_;
    int n_sm_;
    std::mt19937 rng_{7};
    std::vector<int32_t> free_;
    std::vector<Sequence> active_;
    std::set<Key> seen_;
    std::set<Key> captured_;
    int64_t expected_captures_ = 0;
    int64_t expected_steps_ = 0;
};

// Batch sizes of the successive decode steps: sizes with a graph and without (3, 5, 7, 9, 12;
// 32 with bf16 weights, whose experts go to the tensor cores from 17 tokens), growing and
// shrinking, so that sequences end and others join between steps.
const std::vector<size_t> kSchedule = {1,  1,  2,  2, 3,  4,  4,  4, 5, 8, 8, 2,
                                       16, 16, 16, 7, 32, 32, 12, 1, 1, 4, 9, 2};
constexpr int32_t kRoom = 40;  // decode positions each sequence's table leaves room for

void run_schedule(WeightFormat format) {
    Twins twins(format);
    std::mt19937 rng(11);
    size_t joined = 0;
    size_t victim = 0;
    for (const size_t target : kSchedule) {
        while (twins.size() > target) {
            victim = (victim + 3) % twins.size();
            twins.end(victim);
        }
        while (twins.size() < target) {
            // Every other sequence starts just under a partition (512 positions), so that
            // contexts cross it during the run and steps take both attention kernels.
            const bool long_prompt = joined++ % 2 == 0;
            const auto prompt =
                static_cast<int32_t>(long_prompt ? 500 + rng() % 12 : 4 + rng() % 40);
            twins.join(prompt, kRoom);
        }
        twins.decode();
    }
    const CudaGraphCounts on = counts_of(twins.on());
    const CudaGraphCounts off = counts_of(twins.off());
    const auto& keys = twins.captured_keys();
    MESSAGE("decode graphs: " << on.captures << " captured, " << on.steps << " of "
                              << kSchedule.size() << " decode steps run through a graph");
    CHECK(on.captures == twins.expected_captures());
    CHECK(on.held == static_cast<int64_t>(keys.size()));
    CHECK(on.steps == twins.expected_steps());
    CHECK(off.captures == 0);
    CHECK(off.steps == 0);
    // The schedule exercises both attention kernels inside graphs.
    const auto uses = [&](cuda::AttentionKernel kernel) {
        return std::ranges::any_of(keys, [&](const auto& key) { return key.second == kernel; });
    };
    CHECK(uses(cuda::AttentionKernel::kOnePass));
    CHECK(uses(cuda::AttentionKernel::kSplitK));

    // A new KV cache frees what the graphs point into: they are dropped, and the next steps
    // capture anew over the new cache and still equal the eager ones.
    REQUIRE(twins.on().configure_kv_cache({kBlockSize, kBlocks + 64}).ok());
    REQUIRE(twins.off().configure_kv_cache({kBlockSize, kBlocks + 64}).ok());
    CHECK(counts_of(twins.on()).held == 0);
    twins.forget_graphs();
    while (twins.size() > 0) {
        twins.end(0);
    }
    twins.join(600, kRoom);
    for (int i = 0; i < 3; ++i) {  // eager, capture, replay
        twins.decode();
    }
    const CudaGraphCounts fresh = counts_of(twins.on());
    CHECK(fresh.captures == on.captures + 1);
    CHECK(fresh.steps == on.steps + 2);
    CHECK(fresh.captures == twins.expected_captures());
    CHECK(fresh.steps == twins.expected_steps());

    // Turned off, no graph is held or replayed, and the results stay equal.
    REQUIRE(set_cuda_decode_graphs(twins.on(), false).ok());
    CHECK(counts_of(twins.on()).held == 0);
    twins.decode();
    CHECK(counts_of(twins.on()).steps == fresh.steps);
}

}  // namespace

TEST_CASE("cuda decode graphs: the same logits and greedy ids as eager steps, bf16 weights") {
    run_schedule(WeightFormat::kBF16);
}

TEST_CASE("cuda decode graphs: the same logits and greedy ids as eager steps, f32 weights") {
    // f32 weights keep the experts on the streaming path up to 32 tokens and multiply the dense
    // weights of 9 to 32 tokens with cuBLAS sgemm inside the graph.
    run_schedule(WeightFormat::kF32);
}

TEST_CASE("cuda decode graphs: batch sizes outside 1 .. 32 are refused") {
    for (const int64_t bad : {int64_t{0}, int64_t{33}}) {
        CudaBackendOptions options;
        options.decode_graph_batches = {1, bad};
        const auto opened =
            open_cuda_backend_random(tiny_model_config(TinyPreset::kTiny), options, 1);
        CHECK(opened.status().code() == StatusCode::kInvalidArgument);
    }
}

}  // namespace sluice::inference
