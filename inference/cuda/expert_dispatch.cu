#include <string>

#include "inference/cuda/expert_dispatch.cuh"

namespace sluice::inference::cuda {

namespace {

constexpr int kThreads = 256;

// One thread per group; group g holds experts [n_expert * g / n_groups, n_expert * (g + 1) /
// n_groups), as split_evenly.
__global__ void rows_per_group_kernel(const int32_t* __restrict__ offsets, int64_t n_expert,
                                      int64_t n_slots, int n_groups, float* __restrict__ rows) {
    const int g = static_cast<int>(threadIdx.x);
    if (g >= n_groups) {
        return;
    }
    if (n_slots == 0) {
        rows[g] = 0.0f;
        return;
    }
    const int64_t begin = n_expert * g / n_groups;
    const int64_t end = n_expert * (g + 1) / n_groups;
    rows[g] = static_cast<float>(offsets[end] - offsets[begin]);
}

// One block per slot. The expert is found by a scan of the offsets (at most kMaxRouterExperts).
__global__ void pack_kernel(const float* __restrict__ x_sorted, const int32_t* __restrict__ offsets,
                            int64_t n_expert, int64_t d, float* __restrict__ send) {
    const int64_t s = blockIdx.x;
    int64_t e = 0;
    while (e + 1 < n_expert && offsets[e + 1] <= s) {
        ++e;
    }
    float* row = send + s * (d + 1);
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
        row[j] = x_sorted[s * d + j];
    }
    if (threadIdx.x == 0) {
        row[d] = static_cast<float>(e);
    }
}

__global__ void unpack_kernel(const float* __restrict__ recv, int64_t d, int64_t expert_begin,
                              float* __restrict__ x, int32_t* __restrict__ local_expert) {
    const int64_t i = blockIdx.x;
    const float* row = recv + i * (d + 1);
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
        x[i * d + j] = row[j];
    }
    if (threadIdx.x == 0) {
        local_expert[i] = static_cast<int32_t>(static_cast<int64_t>(row[d]) - expert_begin);
    }
}

__global__ void gather_kernel(const float* __restrict__ src, const int32_t* __restrict__ index,
                              int64_t d, float* __restrict__ dst) {
    const int64_t i = blockIdx.x;
    const float* row = src + static_cast<int64_t>(index[i]) * d;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
        dst[i * d + j] = row[j];
    }
}

Status check_rows(const char* what, int64_t n_rows, int64_t d) {
    if (n_rows < 0 || n_rows > 0x7fffffff || d <= 0) {
        return invalid_argument(std::string(what) + ": " + std::to_string(n_rows) + " rows of " +
                                std::to_string(d));
    }
    return Status::ok_status();
}

}  // namespace

Status rows_per_group(const int32_t* offsets, int64_t n_expert, int64_t n_slots, int n_groups,
                      float* rows, cudaStream_t stream) {
    if (n_groups <= 0 || n_groups > kThreads || n_expert < n_groups || n_slots < 0) {
        return invalid_argument("rows_per_group: " + std::to_string(n_expert) + " experts over " +
                                std::to_string(n_groups) + " groups");
    }
    rows_per_group_kernel<<<1, kThreads, 0, stream>>>(offsets, n_expert, n_slots, n_groups, rows);
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

Status pack_dispatch_rows(const float* x_sorted, const int32_t* offsets, int64_t n_expert,
                          int64_t n_slots, int64_t d, float* send, cudaStream_t stream) {
    SLUICE_RETURN_IF_ERROR(check_rows("pack_dispatch_rows", n_slots, d));
    if (n_slots == 0) {
        return Status::ok_status();
    }
    if (n_expert <= 0) {
        return invalid_argument("pack_dispatch_rows: " + std::to_string(n_expert) + " experts");
    }
    pack_kernel<<<static_cast<unsigned>(n_slots), kThreads, 0, stream>>>(x_sorted, offsets,
                                                                         n_expert, d, send);
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

Status unpack_dispatch_rows(const float* recv, int64_t n_rows, int64_t d, int64_t expert_begin,
                            float* x, int32_t* local_expert, cudaStream_t stream) {
    SLUICE_RETURN_IF_ERROR(check_rows("unpack_dispatch_rows", n_rows, d));
    if (n_rows == 0) {
        return Status::ok_status();
    }
    unpack_kernel<<<static_cast<unsigned>(n_rows), kThreads, 0, stream>>>(recv, d, expert_begin, x,
                                                                          local_expert);
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

Status gather_rows(const float* src, const int32_t* index, int64_t n_rows, int64_t d, float* dst,
                   cudaStream_t stream) {
    SLUICE_RETURN_IF_ERROR(check_rows("gather_rows", n_rows, d));
    if (n_rows == 0) {
        return Status::ok_status();
    }
    gather_kernel<<<static_cast<unsigned>(n_rows), kThreads, 0, stream>>>(src, index, d, dst);
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

}  // namespace sluice::inference::cuda
