#pragma once
// CUDA graphs of decode steps: the launches of a step (embedding, every layer, the final norm
// and lm_head) captured once per shape and replayed, so that a decode step of a few tokens costs
// one graph launch instead of some fifteen kernel launches per layer.
//
// A graph replays the launches exactly as captured: the same kernels, grids and pointers. The
// backend keeps that true by capturing only steps whose launches depend on nothing but the key
// (the token count and the attention kernel): every step's index arrays are uploaded into the
// same device buffer before the replay, attention reads positions and block tables from there,
// and split-K attention launches a fixed number of partitions (attention_split_k.cuh). Whatever
// a graph captured (the KV cache, the index buffer, weights) must outlive it: the owner calls
// clear() before reallocating any of it.
//
// Thread safety: owned by the backend's thread.

#include <compare>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>

#include "common/status.h"
#include "inference/cuda/attention_split_k.cuh"
#include "inference/cuda/cuda_check.h"

namespace sluice::inference::cuda {

struct GraphExecDeleter {
    void operator()(CUgraphExec_st* exec) const { (void)cudaGraphExecDestroy(exec); }
};
using GraphExecPtr = std::unique_ptr<CUgraphExec_st, GraphExecDeleter>;

struct GraphDeleter {
    void operator()(CUgraph_st* graph) const { (void)cudaGraphDestroy(graph); }
};
using GraphPtr = std::unique_ptr<CUgraph_st, GraphDeleter>;

struct DecodeGraphKey {
    int64_t n_tokens = 0;
    AttentionKernel attention = AttentionKernel::kOnePass;

    auto operator<=>(const DecodeGraphKey&) const = default;
};

struct DecodeGraphCounts {
    int64_t captures = 0;  // graphs captured and instantiated since the backend opened
    int64_t steps = 0;     // steps run through a graph, those that captured it included
    int64_t held = 0;      // graphs held now
};

class DecodeGraphs {
public:
    // Runs a step of shape `key` on `stream` with `launch`, which issues the step's launches on
    // `stream` and nothing else. The first step of a shape calls it directly: that loads the
    // kernels it uses (CUDA loads modules lazily, on first launch) and lets cuBLAS settle its
    // choices outside a capture. The second captures it into a graph and launches that; later
    // ones replay the graph. A launch that fails, or that does something a capture forbids (a
    // synchronisation, a copy to pageable memory), returns its error and leaves no graph; the
    // stream is usable again.
    Status run(const DecodeGraphKey& key, cudaStream_t stream,
               const std::function<Status()>& launch);

    // Drops every graph (their pointers are about to go stale); each shape starts over with an
    // eager step.
    void clear() {
        graphs_.clear();
        warmed_.clear();
    }

    DecodeGraphCounts counts() const {
        return {captures_, steps_, static_cast<int64_t>(graphs_.size())};
    }

private:
    std::map<DecodeGraphKey, GraphExecPtr> graphs_;
    std::set<DecodeGraphKey> warmed_;  // shapes run once eagerly, not captured yet
    int64_t captures_ = 0;
    int64_t steps_ = 0;
};

}  // namespace sluice::inference::cuda
