#include <cub/device/device_segmented_radix_sort.cuh>

#include <climits>
#include <cmath>

#include "inference/cuda/sample.cuh"

namespace sluice::inference::cuda {

namespace {

constexpr int kPrepareThreads = 1024;

__device__ __forceinline__ bool is_greedy(const DeviceSampleRequest& r) {
    return r.temperature == 0.0f || r.top_k == 1;
}

__device__ __forceinline__ bool is_sorted(const DeviceSampleRequest& r) {
    return r.top_k > 0 || r.top_p < 1.0f;
}

size_t align_up(size_t bytes) { return (bytes + 255) / 256 * 256; }

// The workspace, carved in this order.
struct Workspace {
    float* probs;         // [n, n_vocab]
    float* sorted_probs;  // [n, n_vocab]
    int32_t* ids;         // [n, n_vocab]
    int32_t* sorted_ids;  // [n, n_vocab]
    int32_t* offsets;     // [n + 1] segment starts for the sort
    double* lse;          // [n]
    void* sort_temp;
    size_t sort_temp_bytes;
};

size_t fixed_bytes(int64_t n, int64_t n_vocab) {
    const auto cells = static_cast<size_t>(n * n_vocab);
    return 4 * align_up(cells * 4) + align_up(static_cast<size_t>(n + 1) * 4) +
           align_up(static_cast<size_t>(n) * 8);
}

Workspace carve(void* base, int64_t n, int64_t n_vocab, size_t total) {
    const auto cells = static_cast<size_t>(n * n_vocab);
    auto* p = static_cast<char*>(base);
    Workspace w{};
    w.probs = reinterpret_cast<float*>(p);
    p += align_up(cells * 4);
    w.sorted_probs = reinterpret_cast<float*>(p);
    p += align_up(cells * 4);
    w.ids = reinterpret_cast<int32_t*>(p);
    p += align_up(cells * 4);
    w.sorted_ids = reinterpret_cast<int32_t*>(p);
    p += align_up(cells * 4);
    w.offsets = reinterpret_cast<int32_t*>(p);
    p += align_up(static_cast<size_t>(n + 1) * 4);
    w.lse = reinterpret_cast<double*>(p);
    p += align_up(static_cast<size_t>(n) * 8);
    w.sort_temp = p;
    w.sort_temp_bytes = total - fixed_bytes(n, n_vocab);
    return w;
}

// One block per request: the greedy choice (largest logit, ties to the lower id), the row's
// log-sum-exp, and for a drawn choice the probabilities exp((l - max) / T) with their ids.
__global__ void prepare_kernel(const float* __restrict__ logits, int64_t n_vocab,
                               const DeviceSampleRequest* __restrict__ requests, int64_t n,
                               Workspace w, DeviceSampleResult* __restrict__ results) {
    __shared__ float best_value[kPrepareThreads];
    __shared__ int32_t best_id[kPrepareThreads];
    __shared__ double partial[kPrepareThreads];
    const int64_t b = blockIdx.x;
    const DeviceSampleRequest r = requests[b];
    const float* row = logits + static_cast<int64_t>(r.row) * n_vocab;
    const int t = threadIdx.x;

    float value = -INFINITY;
    int32_t id = INT_MAX;
    for (int64_t j = t; j < n_vocab; j += blockDim.x) {
        const float v = row[j];
        if (v > value || (v == value && j < id)) {
            value = v;
            id = static_cast<int32_t>(j);
        }
    }
    best_value[t] = value;
    best_id[t] = id;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if (t < stride) {
            const float v = best_value[t + stride];
            const int32_t i = best_id[t + stride];
            if (v > best_value[t] || (v == best_value[t] && i < best_id[t])) {
                best_value[t] = v;
                best_id[t] = i;
            }
        }
        __syncthreads();
    }
    const float max_logit = best_value[0];
    const int32_t argmax = best_id[0];

    // As log_sum_exp in sampling.cpp: exp in double of (value - max).
    double sum = 0;
    for (int64_t j = t; j < n_vocab; j += blockDim.x) {
        sum += exp(static_cast<double>(row[j]) - static_cast<double>(max_logit));
    }
    partial[t] = sum;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if (t < stride) {
            partial[t] += partial[t + stride];
        }
        __syncthreads();
    }
    const double lse = static_cast<double>(max_logit) + log(partial[0]);

    if (t == 0) {
        w.lse[b] = lse;
        w.offsets[b] = static_cast<int32_t>(b * n_vocab);
        if (b == n - 1) {
            w.offsets[n] = static_cast<int32_t>(n * n_vocab);
        }
        if (is_greedy(r)) {
            results[b] = {argmax, static_cast<float>(static_cast<double>(row[argmax]) - lse)};
        }
    }
    if (is_greedy(r)) {
        return;
    }
    float* probs = w.probs + b * n_vocab;
    int32_t* ids = w.ids + b * n_vocab;
    for (int64_t j = t; j < n_vocab; j += blockDim.x) {
        // fp32 subtraction and division as the host; exp rounded once from double.
        const float scaled = (row[j] - max_logit) / r.temperature;
        probs[j] = static_cast<float>(exp(static_cast<double>(scaled)));
        ids[j] = static_cast<int32_t>(j);
    }
}

// One thread per request: the Sampler's truncations and draw, serially in its order, so that
// every double sum is the host's bit for bit.
__global__ void choose_kernel(const float* __restrict__ logits, int64_t n_vocab,
                              const DeviceSampleRequest* __restrict__ requests, Workspace w,
                              DeviceSampleResult* __restrict__ results) {
    if (threadIdx.x != 0) {
        return;
    }
    const int64_t b = blockIdx.x;
    const DeviceSampleRequest r = requests[b];
    if (is_greedy(r)) {
        return;
    }
    const bool sorted = is_sorted(r);
    const float* p = (sorted ? w.sorted_probs : w.probs) + b * n_vocab;
    const int32_t* ids = sorted ? w.sorted_ids + b * n_vocab : nullptr;
    auto id_at = [&](int64_t i) { return ids != nullptr ? ids[i] : static_cast<int32_t>(i); };

    int64_t keep = n_vocab;
    if (r.top_k > 0) {
        keep = r.top_k < n_vocab ? r.top_k : n_vocab;
    }
    if (r.top_p < 1.0f) {
        double total = 0;
        for (int64_t i = 0; i < keep; ++i) {
            total += p[i];
        }
        const double limit = static_cast<double>(r.top_p) * total;
        double cumulative = 0;
        int64_t cut = 0;
        while (cut < keep && cumulative < limit) {
            cumulative += p[cut];
            ++cut;
        }
        keep = cut > 1 ? cut : 1;
    }
    // min-p drops candidates below the floor; a floor of 0 drops none (probabilities are >= 0).
    const float floor = r.min_p;
    double mass = 0;
    int32_t last_candidate = 0;
    for (int64_t i = 0; i < keep; ++i) {
        if (!(p[i] < floor)) {
            mass += p[i];
            last_candidate = id_at(i);
        }
    }
    double target = r.u * mass;
    int32_t chosen = last_candidate;
    for (int64_t i = 0; i < keep; ++i) {
        const float pi = p[i];
        if (pi < floor) {
            continue;
        }
        target -= pi;
        if (target < 0) {
            chosen = id_at(i);
            break;
        }
        if (pi > 0) {
            chosen = id_at(i);
        }
    }
    const float* row = logits + static_cast<int64_t>(r.row) * n_vocab;
    results[b] = {chosen, static_cast<float>(static_cast<double>(row[chosen]) - w.lse[b])};
}

}  // namespace

Result<size_t> sample_rows_workspace_bytes(int64_t n, int64_t n_vocab) {
    if (n <= 0 || n_vocab <= 0 || n * n_vocab > INT_MAX) {
        return invalid_argument("sample_rows: " + std::to_string(n) + " rows of " +
                                std::to_string(n_vocab) + " logits do not fit one sort");
    }
    size_t sort_bytes = 0;
    SLUICE_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
        nullptr, sort_bytes, static_cast<const float*>(nullptr), static_cast<float*>(nullptr),
        static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr),
        static_cast<int>(n * n_vocab), static_cast<int>(n), static_cast<const int32_t*>(nullptr),
        static_cast<const int32_t*>(nullptr)));
    return fixed_bytes(n, n_vocab) + align_up(sort_bytes);
}

Status sample_rows(const float* logits, int64_t n_vocab, const DeviceSampleRequest* requests,
                   int64_t n, bool any_sorted, void* workspace, size_t workspace_bytes,
                   DeviceSampleResult* results, cudaStream_t stream) {
    if (n == 0) {
        return Status::ok_status();
    }
    SLUICE_ASSIGN_OR_RETURN(const size_t needed, sample_rows_workspace_bytes(n, n_vocab));
    if (workspace_bytes < needed) {
        return invalid_argument("sample_rows: workspace of " + std::to_string(workspace_bytes) +
                                " bytes, " + std::to_string(needed) + " needed");
    }
    const Workspace w = carve(workspace, n, n_vocab, workspace_bytes);
    prepare_kernel<<<static_cast<unsigned>(n), kPrepareThreads, 0, stream>>>(
        logits, n_vocab, requests, n, w, results);
    SLUICE_CUDA_CHECK(cudaGetLastError());
    if (any_sorted) {
        // Radix sort is stable and the ids go in ascending, so equal probabilities stay in id
        // order: the host's "decreasing probability, ties to the lower id".
        size_t temp_bytes = w.sort_temp_bytes;
        SLUICE_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
            w.sort_temp, temp_bytes, w.probs, w.sorted_probs, w.ids, w.sorted_ids,
            static_cast<int>(n * n_vocab), static_cast<int>(n), w.offsets, w.offsets + 1, 0,
            static_cast<int>(sizeof(float) * 8), stream));
    }
    choose_kernel<<<static_cast<unsigned>(n), 32, 0, stream>>>(logits, n_vocab, requests, w,
                                                               results);
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

}  // namespace sluice::inference::cuda
