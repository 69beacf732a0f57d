#pragma once
// StagedCommunicator: the Communicator contract (communicator.h) on device buffers for ranks that
// share one GPU. NCCL cannot put two ranks on one device, so tests of the parallel plans on a
// one-GPU machine (and CudaBackendOptions::ranks_share_device) join their ranks with this: every
// operation copies its device input to pinned host memory on the rank's stream, waits for the
// stream, runs the same operation on a local communicator (local_communicator.h) over the host
// copies, and enqueues the copy of the result back to the device on the stream. Results are the
// local communicator's: fp32 reductions in rank order, bit-identical on every rank.
//
// Each call waits for the rank's stream, so it cannot be captured in a CUDA graph (the backend
// runs no graphs on parallel ranks). Pinned staging memory grows to the largest call and is kept.
//
// split() splits the local group; the sub-group's communicator shares this one's stream (it is
// borrowed: destroy the sub-group first).
//
// Thread safety: see communicator.h; the object is used by its rank's thread only.

#include <memory>
#include <vector>

#include "common/result.h"
#include "inference/communicator.h"
#include "inference/cuda/cuda_check.h"

namespace sluice::inference::cuda {

// One communicator per rank, index = rank, each with its own non-blocking stream on `device`,
// over one local group. kInvalidArgument when n_ranks < 1; kInternal when CUDA fails.
Result<std::vector<std::unique_ptr<Communicator>>> create_staged_communicators(int n_ranks,
                                                                               int device);

// The stream a device communicator enqueues on (a StagedCommunicator's or an NCCL
// communicator's), which the rank's compute must share so that a collective sees its inputs;
// null for a host communicator.
cudaStream_t communicator_stream(const Communicator& comm);

}  // namespace sluice::inference::cuda
