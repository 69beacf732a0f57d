#include "inference/cuda/qkv_rope.cuh"

namespace sluice::inference::cuda {

namespace {

// One block per token.
__global__ void qkv_rope_kernel(QkvRopeArgs a) {
    const int64_t t = blockIdx.x;
    const int64_t hd = a.head_dim;
    const int64_t half = hd / 2;
    const int64_t d = a.n_head * hd;
    const int64_t n_kv = a.n_head_kv * hd;
    const int64_t n_qkv = d + 2 * n_kv;
    float* row = a.qkv + t * n_qkv;  // [q: d | k: n_kv | v: n_kv]

    if (a.clip) {
        for (int64_t j = threadIdx.x; j < n_qkv; j += blockDim.x) {
            row[j] = fminf(fmaxf(row[j], -a.clip_value), a.clip_value);
        }
        __syncthreads();
    }
    // Query heads then key heads are contiguous, so pair i of head h is (h*hd + i, h*hd + i +
    // half).
    const auto position = static_cast<float>(a.positions[t]);
    const int64_t n_pairs = (a.n_head + a.n_head_kv) * half;
    for (int64_t p = threadIdx.x; p < n_pairs; p += blockDim.x) {
        const int64_t head = p / half;
        const int64_t i = p % half;
        const float angle = position * a.inv_freq[i];
        const float c = cosf(angle);
        const float s = sinf(angle);
        float* x = row + head * hd;
        const float x0 = x[i];
        const float x1 = x[i + half];
        x[i] = x0 * c - x1 * s;
        x[i + half] = x1 * c + x0 * s;
    }
    __syncthreads();
    const int32_t pos = a.positions[t];
    const int32_t block = a.block_tables[a.table_offset[a.token_seq[t]] + pos / a.block_size];
    const int64_t slot = (static_cast<int64_t>(block) * a.block_size + pos % a.block_size) * n_kv;
    for (int64_t j = threadIdx.x; j < n_kv; j += blockDim.x) {
        a.k_cache[slot + j] = row[d + j];
        a.v_cache[slot + j] = row[d + n_kv + j];
    }
}

}  // namespace

Status qkv_clamp_rope_kv_write(const QkvRopeArgs& args, cudaStream_t stream) {
    if (args.n_tokens == 0) {
        return Status::ok_status();
    }
    if (args.n_tokens < 0 || args.head_dim <= 0 || args.head_dim % 2 != 0 || args.n_head <= 0 ||
        args.n_head_kv <= 0 || args.block_size <= 0) {
        return invalid_argument("qkv_clamp_rope_kv_write: bad shape (head_dim " +
                                std::to_string(args.head_dim) + ", tokens " +
                                std::to_string(args.n_tokens) + ")");
    }
    qkv_rope_kernel<<<static_cast<unsigned>(args.n_tokens), 256, 0, stream>>>(args);
    SLUICE_CUDA_CHECK(cudaGetLastError());
    return Status::ok_status();
}

}  // namespace sluice::inference::cuda
