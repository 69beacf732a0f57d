#include "inference/cpu/expert_dispatch.h"

#include <algorithm>

namespace sluice::inference::cpu {

void pack_dispatch_rows(const float* x_sorted, const int32_t* offsets, int64_t n_expert,
                        int64_t n_slots, int64_t d, float* send) {
    int64_t e = 0;
    for (int64_t s = 0; s < n_slots; ++s) {
        while (e + 1 < n_expert && offsets[e + 1] <= s) {
            ++e;
        }
        std::copy_n(x_sorted + s * d, d, send + s * (d + 1));
        send[s * (d + 1) + d] = static_cast<float>(e);
    }
}

void unpack_dispatch_rows(const float* recv, int64_t n_rows, int64_t d, int64_t expert_begin,
                          float* x, int32_t* local_expert) {
    for (int64_t i = 0; i < n_rows; ++i) {
        std::copy_n(recv + i * (d + 1), d, x + i * d);
        local_expert[i] =
            static_cast<int32_t>(static_cast<int64_t>(recv[i * (d + 1) + d]) - expert_begin);
    }
}

void gather_rows(const float* src, const int32_t* index, int64_t n_rows, int64_t d, float* dst) {
    for (int64_t i = 0; i < n_rows; ++i) {
        std::copy_n(src + static_cast<int64_t>(index[i]) * d, d, dst + i * d);
    }
}

}  // namespace sluice::inference::cpu
