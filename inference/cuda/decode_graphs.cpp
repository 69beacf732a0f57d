#include "inference/cuda/decode_graphs.h"

namespace sluice::inference::cuda {

namespace {

// Captures `launch` on `stream` into an executable graph.
Status capture(cudaStream_t stream, const std::function<Status()>& launch, GraphExecPtr* out) {
    // Thread-local mode: a call this thread makes that capture forbids fails (and is reported)
    // instead of being silently left out of the graph; other threads are not affected.
    SLUICE_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    const Status launched = launch();
    cudaGraph_t raw = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(stream, &raw);
    const GraphPtr graph(raw);
    if (!launched.ok() || ended != cudaSuccess) {
        // A call refused during capture sets the last error; clear it so that the next step's
        // launch checks do not report it again.
        (void)cudaGetLastError();
    }
    SLUICE_RETURN_IF_ERROR(launched);
    SLUICE_CUDA_CHECK(ended);
    cudaGraphExec_t exec = nullptr;
    SLUICE_CUDA_CHECK(cudaGraphInstantiate(&exec, graph.get(), 0));
    out->reset(exec);
    return Status::ok_status();
}

}  // namespace

Status DecodeGraphs::run(const DecodeGraphKey& key, cudaStream_t stream,
                         const std::function<Status()>& launch) {
    auto found = graphs_.find(key);
    if (found == graphs_.end() && warmed_.insert(key).second) {
        return launch();
    }
    if (found == graphs_.end()) {
        GraphExecPtr exec;
        SLUICE_RETURN_IF_ERROR(capture(stream, launch, &exec));
        found = graphs_.emplace(key, std::move(exec)).first;
        ++captures_;
    }
    // Capturing ran nothing, so a fresh graph is launched too.
    SLUICE_CUDA_CHECK(cudaGraphLaunch(found->second.get(), stream));
    ++steps_;
    return Status::ok_status();
}

}  // namespace sluice::inference::cuda
