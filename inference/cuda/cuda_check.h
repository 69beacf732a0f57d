#pragma once
// SLUICE_CUDA_CHECK and the RAII handles of the CUDA backend. Host code only, so that the parity
// tests (compiled as C++) include it too.
//
// SLUICE_CUDA_CHECK(expr) evaluates a CUDA runtime or cuBLAS call and returns kInternal from the
// enclosing function (which returns Status or Result<T>) when it fails, keeping the failing
// statement's text, file and line: `cudaMalloc(&p, n) failed at attention.cu:41: out of memory`.
//
// Thread safety: the handles are owned by one thread.

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"

namespace sluice::inference::cuda {

inline Status cuda_status(cudaError_t err, const char* text, const char* file, int line) {
    if (err == cudaSuccess) {
        return Status::ok_status();
    }
    // Out of memory is a recoverable condition a caller may report as such.
    const StatusCode code =
        err == cudaErrorMemoryAllocation ? StatusCode::kResourceExhausted : StatusCode::kInternal;
    return Status(code, std::string(text) + " failed at " + file + ":" + std::to_string(line) +
                            ": " + cudaGetErrorString(err));
}

inline Status cuda_status(cublasStatus_t err, const char* text, const char* file, int line) {
    if (err == CUBLAS_STATUS_SUCCESS) {
        return Status::ok_status();
    }
    return internal_error(std::string(text) + " failed at " + file + ":" + std::to_string(line) +
                          ": " + cublasGetStatusString(err));
}

}  // namespace sluice::inference::cuda

#define SLUICE_CUDA_CHECK(expr)                                                        \
    do {                                                                               \
        ::sluice::Status sluice_cuda_status_ =                                         \
            ::sluice::inference::cuda::cuda_status((expr), #expr, __FILE__, __LINE__); \
        if (!sluice_cuda_status_.ok()) {                                               \
            return sluice_cuda_status_;                                                \
        }                                                                              \
    } while (0)

namespace sluice::inference::cuda {

struct StreamDeleter {
    void operator()(CUstream_st* stream) const { (void)cudaStreamDestroy(stream); }
};
using StreamPtr = std::unique_ptr<CUstream_st, StreamDeleter>;

struct CublasDeleter {
    void operator()(cublasContext* handle) const { (void)cublasDestroy(handle); }
};
using CublasPtr = std::unique_ptr<cublasContext, CublasDeleter>;

// Device memory of a fixed size, freed on destruction. Move-only.
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    DeviceBuffer(DeviceBuffer&& other) noexcept : ptr_(other.ptr_), bytes_(other.bytes_) {
        other.ptr_ = nullptr;
        other.bytes_ = 0;
    }
    DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
        if (this != &other) {
            reset();
            ptr_ = other.ptr_;
            bytes_ = other.bytes_;
            other.ptr_ = nullptr;
            other.bytes_ = 0;
        }
        return *this;
    }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    ~DeviceBuffer() { reset(); }

    // Replaces the contents with `bytes` of uninitialised device memory.
    Status allocate(int64_t bytes) {
        reset();
        if (bytes <= 0) {
            return Status::ok_status();
        }
        SLUICE_CUDA_CHECK(cudaMalloc(&ptr_, static_cast<size_t>(bytes)));
        bytes_ = bytes;
        return Status::ok_status();
    }
    void reset() {
        if (ptr_ != nullptr) {
            (void)cudaFree(ptr_);
        }
        ptr_ = nullptr;
        bytes_ = 0;
    }

    template <typename T>
    T* as() const {
        return static_cast<T*>(ptr_);
    }
    void* get() const { return ptr_; }
    int64_t bytes() const { return bytes_; }

private:
    void* ptr_ = nullptr;
    int64_t bytes_ = 0;
};

// The element type of a weight on the device. kF8E4M3 weights carry one fp32 scale per output
// channel beside them (DenseWeight::scales, device_weights.h). kInt4 (the experts only) packs
// two codes per byte with fp16 scales per group (inference/int4_weights.h); its own kernels
// (int4_experts.cuh) take it, never the dense or tensor-core paths.
enum class DeviceDType { kF32, kBF16, kF8E4M3, kInt4 };

inline int64_t device_dtype_size(DeviceDType type) {
    switch (type) {
        case DeviceDType::kF32: return 4;
        case DeviceDType::kBF16: return 2;
        case DeviceDType::kF8E4M3: return 1;
        case DeviceDType::kInt4: return 1;  // a byte holds two codes; sized as rows · cols / 2
    }
    return 4;
}

}  // namespace sluice::inference::cuda
