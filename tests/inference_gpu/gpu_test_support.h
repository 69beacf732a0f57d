#pragma once
// Helpers of the GPU parity tests: device copies of host vectors, random data, comparisons.

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

#include "inference/cuda/cuda_check.h"
#include "inference/dtype.h"

namespace sluice::inference::testing {

// A device copy of a host vector.
template <typename T>
class DeviceVec {
public:
    explicit DeviceVec(const std::vector<T>& host) : size_(host.size()) {
        REQUIRE(
            buffer_.allocate(static_cast<int64_t>(std::max<size_t>(1, size_) * sizeof(T))).ok());
        if (size_ > 0) {
            REQUIRE(cudaMemcpy(buffer_.get(), host.data(), size_ * sizeof(T),
                               cudaMemcpyHostToDevice) == cudaSuccess);
        }
    }
    explicit DeviceVec(size_t n) : DeviceVec(std::vector<T>(n)) {}
    T* get() const { return buffer_.as<T>(); }
    std::vector<T> host() const {
        REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
        std::vector<T> out(size_);
        if (size_ > 0) {
            REQUIRE(cudaMemcpy(out.data(), buffer_.get(), size_ * sizeof(T),
                               cudaMemcpyDeviceToHost) == cudaSuccess);
        }
        return out;
    }

private:
    size_t size_;
    cuda::DeviceBuffer buffer_;
};

inline std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(-scale, scale);
    std::vector<float> out(n);
    for (auto& v : out) {
        v = dist(rng);
    }
    return out;
}

// Values exactly representable in bf16, so that f32 and bf16 copies hold the same numbers.
inline std::vector<float> random_bf16_exact(size_t n, uint32_t seed, float scale = 1.0f) {
    auto out = random_floats(n, seed, scale);
    for (auto& v : out) {
        v = bf16_to_f32(f32_to_bf16(v));
    }
    return out;
}

inline std::vector<uint16_t> to_bf16(const std::vector<float>& values) {
    std::vector<uint16_t> out(values.size());
    convert_f32_to_bf16(values, out.data());
    return out;
}

// max |got - ref| / max |ref|
inline double relative_error(const std::vector<float>& got, const std::vector<float>& ref) {
    REQUIRE(got.size() == ref.size());
    double diff = 0;
    double scale = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        diff = std::max(diff, static_cast<double>(std::fabs(got[i] - ref[i])));
        scale = std::max(scale, static_cast<double>(std::fabs(ref[i])));
    }
    return scale > 0 ? diff / scale : diff;
}

}  // namespace sluice::inference::testing

namespace sluice::inference::testing {

// A deterministic pseudo-random bf16 value per (seed, index), uniform in (-scale, scale): large
// weight tensors are generated chunk by chunk on many threads and the CPU reference recomputes
// any element without storing the tensor.
inline uint16_t hashed_bf16(uint64_t seed, uint64_t index, float scale) {
    uint64_t z = seed * 0x9e3779b97f4a7c15ull + index + 1;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    const float unit = static_cast<float>(z & 0xffffff) / 8388608.0f - 1.0f;  // [-1, 1)
    return f32_to_bf16(unit * scale);
}

inline float hashed_value(uint64_t seed, uint64_t index, float scale) {
    return bf16_to_f32(hashed_bf16(seed, index, scale));
}

// Uploads n hashed values (seed, scale) in `type`, generated in chunks on every hardware thread.
inline cuda::DeviceBuffer upload_hashed(uint64_t seed, int64_t n, float scale,
                                        cuda::DeviceDType type) {
    cuda::DeviceBuffer buffer;
    REQUIRE(buffer.allocate(n * cuda::device_dtype_size(type)).ok());
    const int64_t chunk = int64_t{1} << 26;
    std::vector<uint16_t> bf16(static_cast<size_t>(std::min(chunk, n)));
    std::vector<float> f32(type == cuda::DeviceDType::kF32 ? bf16.size() : 0);
    const int64_t n_threads = std::max(1u, std::thread::hardware_concurrency());
    for (int64_t begin = 0; begin < n; begin += chunk) {
        const int64_t len = std::min(chunk, n - begin);
        std::vector<std::jthread> workers;
        for (int64_t w = 0; w < n_threads; ++w) {
            workers.emplace_back([&, w] {
                for (int64_t i = w * len / n_threads; i < (w + 1) * len / n_threads; ++i) {
                    const uint16_t bits =
                        hashed_bf16(seed, static_cast<uint64_t>(begin + i), scale);
                    if (f32.empty()) {
                        bf16[static_cast<size_t>(i)] = bits;
                    } else {
                        f32[static_cast<size_t>(i)] = bf16_to_f32(bits);
                    }
                }
            });
        }
        workers.clear();
        const int64_t element = cuda::device_dtype_size(type);
        const void* src = f32.empty() ? static_cast<const void*>(bf16.data()) : f32.data();
        REQUIRE(cudaMemcpy(static_cast<char*>(buffer.get()) + begin * element, src,
                           static_cast<size_t>(len * element),
                           cudaMemcpyHostToDevice) == cudaSuccess);
    }
    return buffer;
}

}  // namespace sluice::inference::testing
