// Parity of the CUDA int4 pieces with their CPU references (inference/int4_weights.h): the
// device quantiser writes the host quantiser's bytes, and the grouped expert kernels
// (int4_experts.cuh on the CUDA cores, int4_mma.cuh on the tensor cores) compute
// int4_rows_product's sums, on small shapes and on DBRX's (d_model 6144, experts of ffn 10752) at
// batch 1 and with more slots per expert than one chunk or pass holds.
#include "inference/cuda/int4_experts.cuh"

#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <thread>

#include "gpu_test_support.h"
#include "inference/cuda/int4_mma.cuh"
#include "inference/cuda/moe.cuh"
#include "inference/cuda/quantize.cuh"
#include "inference/cuda/step_buffers.h"
#include "inference/cuda/tensor_core.cuh"
#include "inference/dtype.h"
#include "inference/int4_weights.h"

namespace sluice::inference {
namespace {

using cuda::DeviceDType;
using testing::DeviceVec;

// An int4 expert matrix on the host and the device: rows output channels, cols reduction.
struct Int4Matrix {
    int64_t rows = 0;
    int64_t cols = 0;
    std::vector<uint8_t> codes;
    std::vector<uint16_t> scales;
};

// Random codes (every nibble) and fp16 scales around `scale`: the kernels read any bytes.
Int4Matrix random_int4(int64_t rows, int64_t cols, int64_t group, float scale, uint32_t seed) {
    std::mt19937 rng(seed);
    Int4Matrix m{rows, cols, std::vector<uint8_t>(static_cast<size_t>(rows * cols / 2)),
                 std::vector<uint16_t>(static_cast<size_t>(rows * cols / group))};
    for (uint8_t& b : m.codes) {
        b = static_cast<uint8_t>(rng());
    }
    std::uniform_real_distribution<float> spread(0.5f, 1.5f);
    for (uint16_t& s : m.scales) {
        s = f32_to_f16(scale * spread(rng));
    }
    return m;
}

struct Slots {
    std::vector<int32_t> offsets;  // [n_expert + 1]
    int64_t n_slots = 0;
    int64_t max_per_expert = 0;
};

Slots slots_of(const std::vector<int32_t>& counts) {
    Slots s;
    s.offsets.push_back(0);
    for (const int32_t c : counts) {
        s.offsets.push_back(s.offsets.back() + c);
        s.max_per_expert = std::max<int64_t>(s.max_per_expert, c);
    }
    s.n_slots = s.offsets.back();
    return s;
}

// The reference of one expert product: rows [e * rows_per_expert, ...) of `m` times the slots
// of expert e, on a thread per expert.
std::vector<float> reference(const Int4Matrix& m, int64_t group, const Slots& slots,
                             const std::vector<float>& x, int64_t n_out) {
    std::vector<float> y(static_cast<size_t>(slots.n_slots * n_out));
    std::vector<std::jthread> workers;
    for (size_t e = 0; e + 1 < slots.offsets.size(); ++e) {
        const int64_t start = slots.offsets[e];
        const int64_t count = slots.offsets[e + 1] - start;
        if (count == 0) {
            continue;
        }
        workers.emplace_back([&, e, start, count] {
            const auto row0 = static_cast<int64_t>(e) * n_out;
            int4_rows_product(m.codes.data() + row0 * m.cols / 2,
                              m.scales.data() + row0 * (m.cols / group), n_out, m.cols, group,
                              x.data() + start * m.cols, count, y.data() + start * n_out);
        });
    }
    return y;
}

float silu(float g) { return g / (1.0f + std::exp(-g)); }

// Runs grouped_experts_tc (bf16 panels of the widened codes) into act and y.
void run_tensor_cores(const float* x, const int32_t* offsets, const cuda::ExpertWeights& weights,
                      const cuda::ExpertShape& shape, float* act, float* y) {
    const int64_t d = shape.d_model;
    const int64_t n_ff = shape.n_ff;
    const int64_t n_slots = shape.n_slots;
    cublasHandle_t raw = nullptr;
    REQUIRE(cublasCreate(&raw) == CUBLAS_STATUS_SUCCESS);
    cuda::CublasPtr handle(raw);
    cuda::DeviceBuffer x_hi, x_lo, panel, up, act_hi, act_lo;
    cuda::PinnedInts host_offsets;
    const int64_t panel_values = 3 * std::max(d, n_ff) + 64;  // several panels per matrix
    REQUIRE(x_hi.allocate(n_slots * d * 2).ok());
    REQUIRE(x_lo.allocate(n_slots * d * 2).ok());
    REQUIRE(panel.allocate(panel_values * 2).ok());
    REQUIRE(up.allocate(n_slots * n_ff * 4).ok());
    REQUIRE(act_hi.allocate(n_slots * n_ff * 2).ok());
    REQUIRE(act_lo.allocate(n_slots * n_ff * 2).ok());
    REQUIRE(host_offsets.allocate(shape.n_expert + 1).ok());
    const cuda::TensorCoreGemm gemm(
        raw,
        cuda::TensorCoreScratch{x_hi.get(), x_lo.get(), n_slots * d, panel.get(), panel_values});
    const cuda::ExpertTcScratch scratch{up.as<float>(), act_hi.get(), act_lo.get(), n_slots * n_ff,
                                        host_offsets.get()};
    REQUIRE(cuda::grouped_experts_tc(gemm, scratch, x, offsets, weights, shape,
                                     cuda::GluActivation::kSilu, act, y, nullptr)
                .ok());
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
}

// Which kernels check_int4_experts runs.
enum class Path {
    kCudaCores,    // expert_gate_up and expert_down (int4_experts.cuh)
    kPanels,       // grouped_experts_tc: bf16 panels of the widened codes through cuBLAS
    kTensorCores,  // int4_mma_gate_up and int4_mma_down
};

// Runs the products of `path` with int4 weights and checks both against the reference.
void check_int4_experts(int64_t n_expert, int64_t d, int64_t n_ff, int64_t group,
                        const std::vector<int32_t>& counts, Path path = Path::kCudaCores) {
    const Slots slots = slots_of(counts);
    REQUIRE(static_cast<int64_t>(counts.size()) == n_expert);
    const Int4Matrix w1 = random_int4(n_expert * n_ff, d, group, 0.3f / std::sqrt(d * 10.0f), 1);
    const Int4Matrix v1 = random_int4(n_expert * n_ff, d, group, 0.3f / std::sqrt(d * 10.0f), 2);
    const Int4Matrix w2t =
        random_int4(n_expert * d, n_ff, group, 0.3f / std::sqrt(n_ff * 10.0f), 3);
    const auto x = testing::random_floats(static_cast<size_t>(slots.n_slots * d), 4);

    DeviceVec<uint8_t> dw1(w1.codes), dv1(v1.codes), dw2(w2t.codes);
    DeviceVec<uint16_t> sw1(w1.scales), sv1(v1.scales), sw2(w2t.scales);
    DeviceVec<int32_t> offsets(slots.offsets);
    DeviceVec<float> dx(x), act(static_cast<size_t>(slots.n_slots * n_ff)),
        y(static_cast<size_t>(slots.n_slots * d));
    const int64_t staging_words = cuda::int4_mma_staging_words(slots.n_slots, d, n_ff);
    DeviceVec<uint32_t> staging(static_cast<size_t>(staging_words));
    const cuda::Int4MmaStaging mma_staging{staging.get(), staging_words};
    cuda::ExpertWeights weights{dw1.get(), dv1.get(),          dw2.get(), nullptr,   nullptr,
                                nullptr,   DeviceDType::kInt4, sw1.get(), sv1.get(), sw2.get(),
                                group};
    const cuda::ExpertShape shape{n_expert, d, n_ff, slots.n_slots, slots.max_per_expert};
    if (path == Path::kPanels) {
        run_tensor_cores(dx.get(), offsets.get(), weights, shape, act.get(), y.get());
    } else if (path == Path::kTensorCores) {
        REQUIRE(cuda::int4_mma_fits(weights, shape, mma_staging));
        REQUIRE(cuda::int4_mma_gate_up(dx.get(), offsets.get(), weights, shape,
                                       cuda::GluActivation::kSilu, mma_staging, act.get(), nullptr)
                    .ok());
    } else {
        REQUIRE(cuda::expert_gate_up(dx.get(), offsets.get(), weights, shape,
                                     cuda::GluActivation::kSilu, act.get(), nullptr)
                    .ok());
    }
    const auto gate = reference(w1, group, slots, x, n_ff);
    const auto up = reference(v1, group, slots, x, n_ff);
    std::vector<float> want_act(gate.size());
    for (size_t i = 0; i < gate.size(); ++i) {
        want_act[i] = silu(gate[i]) * up[i];
    }
    const auto got_act = act.host();
    INFO(n_expert << " experts, d " << d << ", n_ff " << n_ff << ", group " << group << ", "
                  << slots.n_slots << " slots, path " << static_cast<int>(path));
    // Sums of thousands of fp32 terms in another order: a few 1e-7 of their magnitude; on the
    // tensor cores the activations also enter as two bf16 terms (2^-18 of each). Through the
    // panels each weight is q · scale rounded to bf16 (2^-9 relative), as for fp8 there.
    const double tolerance = path == Path::kPanels ? 5e-3 : 2e-5;
    CHECK(testing::relative_error(got_act, want_act) <= tolerance);

    if (path == Path::kTensorCores) {
        REQUIRE(cuda::int4_mma_down(act.get(), offsets.get(), weights, shape, mma_staging, y.get(),
                                    nullptr)
                    .ok());
    } else if (path == Path::kCudaCores) {
        const cuda::DownSplit no_split{};
        REQUIRE(
            cuda::expert_down(act.get(), offsets.get(), weights, shape, no_split, y.get(), nullptr)
                .ok());
    }
    CHECK(testing::relative_error(y.host(), reference(w2t, group, slots, got_act, d)) <= tolerance);
}

}  // namespace

TEST_CASE("cuda int4: the device quantiser writes the host quantiser's codes and scales") {
    for (const auto type : {DeviceDType::kF32, DeviceDType::kBF16}) {
        for (const bool transposed : {false, true}) {
            const int64_t rows = 96;   // output channels
            const int64_t cols = 512;  // reduction
            const int64_t group = 128;
            auto values = testing::random_bf16_exact(static_cast<size_t>(rows * cols), 21, 0.05f);
            for (size_t i = 0; i < values.size(); i += 7) {
                values[i] -= 0.02f;  // skewed groups, where -8 sets the scale
                values[i] = bf16_to_f32(f32_to_bf16(values[i]));
            }
            for (size_t i = 0; i < 128; ++i) {
                values[i] = 0.0f;  // an all-zero group (scale 1)
            }
            // The device reads the source as stored: [rows, cols], or [cols, rows] transposed.
            std::vector<float> source = values;
            if (transposed) {
                transpose_blocks(values.data(), 1, rows, cols, source.data());
            }
            cuda::DeviceBuffer src;
            REQUIRE(src.allocate(static_cast<int64_t>(source.size()) * 4).ok());
            if (type == DeviceDType::kF32) {
                REQUIRE(cudaMemcpy(src.get(), source.data(), source.size() * 4,
                                   cudaMemcpyHostToDevice) == cudaSuccess);
            } else {
                const auto bf16 = testing::to_bf16(source);
                REQUIRE(cudaMemcpy(src.get(), bf16.data(), bf16.size() * 2,
                                   cudaMemcpyHostToDevice) == cudaSuccess);
            }
            DeviceVec<uint8_t> codes(static_cast<size_t>(rows * cols / 2));
            DeviceVec<uint16_t> scales(static_cast<size_t>(rows * cols / group));
            REQUIRE(cuda::quantize_int4(src.get(), type, rows, cols, group, transposed, codes.get(),
                                        scales.get(), nullptr)
                        .ok());
            std::vector<uint8_t> want_codes(static_cast<size_t>(rows * cols / 2));
            std::vector<uint16_t> want_scales(static_cast<size_t>(rows * cols / group));
            REQUIRE(quantize_int4_rows(values.data(), rows, cols, group, want_codes.data(),
                                       want_scales.data())
                        .ok());
            INFO("f32 source " << (type == DeviceDType::kF32) << ", transposed " << transposed);
            CHECK(codes.host() == want_codes);
            CHECK(scales.host() == want_scales);
        }
    }
    CHECK(cuda::quantize_int4(nullptr, DeviceDType::kBF16, 4, 200, 128, false, nullptr, nullptr,
                              nullptr)
              .code() == StatusCode::kInvalidArgument);
}

TEST_CASE("cuda int4: grouped expert kernels equal the cpu reference on small shapes") {
    // Experts without slots, one slot, and more than one chunk of 8 slots.
    check_int4_experts(4, 256, 384, 128, {3, 0, 1, 11});
    check_int4_experts(3, 64, 96, 32, {2, 2, 0});
    check_int4_experts(2, 128, 160, 32, {40, 1});
}

TEST_CASE("cuda int4: grouped expert kernels equal the cpu reference at DBRX's shape") {
    // d_model 6144, ffn 10752, group 128: a decode step's top-4 (one slot on each of four
    // experts), then ten slots on one expert (a chunk of 8 and one of 2).
    check_int4_experts(4, 6144, 10752, 128, {1, 1, 1, 1});
    check_int4_experts(4, 6144, 10752, 128, {10, 0, 2, 0});
}

TEST_CASE("cuda int4: the tensor-core path (bf16 panels) equals the cpu reference to bf16") {
    check_int4_experts(4, 256, 384, 128, {30, 0, 5, 11}, Path::kPanels);
    check_int4_experts(3, 128, 160, 32, {12, 20, 1}, Path::kPanels);
}

TEST_CASE("cuda int4: the mma kernels equal the cpu reference") {
    // Passes of 8, 16 and 32 slots (one, two and four mma tiles), an expert with more slots
    // than one pass holds, experts without slots, groups of one and of two 128-value chunks,
    // and fewer groups than the block has warps.
    check_int4_experts(4, 256, 384, 128, {3, 0, 1, 8}, Path::kTensorCores);
    check_int4_experts(3, 512, 768, 256, {12, 0, 5}, Path::kTensorCores);
    check_int4_experts(2, 128, 256, 128, {32, 17}, Path::kTensorCores);
    check_int4_experts(4, 256, 384, 128, {70, 3, 0, 41}, Path::kTensorCores);  // 3 passes
    check_int4_experts(5, 1024, 640, 128, {0, 0, 2, 0, 0}, Path::kTensorCores);
    // DBRX's shape: a decode step's top-4, and eight tokens' 32 slots spread unevenly.
    check_int4_experts(4, 6144, 10752, 128, {1, 1, 1, 1}, Path::kTensorCores);
    check_int4_experts(4, 6144, 10752, 128, {14, 3, 8, 7}, Path::kTensorCores);
}

TEST_CASE("cuda int4: the mma kernels refuse what they cannot take") {
    DeviceVec<uint8_t> codes(64 * 64);
    DeviceVec<uint16_t> scales(64);
    DeviceVec<float> x(64 * 64);
    DeviceVec<uint32_t> words(64 * 64);
    DeviceVec<int32_t> offsets(std::vector<int32_t>{0, 1});
    cuda::ExpertWeights weights{
        codes.get(),        codes.get(),  codes.get(),  nullptr,      nullptr, nullptr,
        DeviceDType::kInt4, scales.get(), scales.get(), scales.get(), 32};
    cuda::ExpertShape shape{1, 128, 128, 1, 1};
    const cuda::Int4MmaStaging staging{words.get(), 64 * 64};
    // Groups of 32: the CUDA-core kernels' business.
    CHECK_FALSE(cuda::int4_mma_fits(weights, shape, staging));
    CHECK(cuda::int4_mma_gate_up(x.get(), offsets.get(), weights, shape, cuda::GluActivation::kSilu,
                                 staging, x.get(), nullptr)
              .code() == StatusCode::kInvalidArgument);
    weights.group_size = 128;
    CHECK(cuda::int4_mma_fits(weights, shape, staging));
    // Too little staging, too many tokens, a missing scale.
    CHECK_FALSE(cuda::int4_mma_fits(weights, shape, {words.get(), 127}));
    shape.n_tokens = cuda::kInt4MmaMaxTokens + 1;
    CHECK_FALSE(cuda::int4_mma_fits(weights, shape, staging));
    shape.n_tokens = 1;
    weights.w2_groups = nullptr;
    CHECK(cuda::int4_mma_down(x.get(), offsets.get(), weights, shape, staging, x.get(), nullptr)
              .code() == StatusCode::kInvalidArgument);
}

TEST_CASE("cuda int4: kernels refuse missing scales and group sizes that do not fit") {
    DeviceVec<uint8_t> codes(64);
    DeviceVec<uint16_t> scales(4);
    DeviceVec<float> x(256);
    DeviceVec<int32_t> offsets(std::vector<int32_t>{0, 1});
    const cuda::ExpertShape shape{1, 64, 64, 1, 1};
    cuda::ExpertWeights weights{
        codes.get(),        codes.get(),  codes.get(), nullptr,      nullptr, nullptr,
        DeviceDType::kInt4, scales.get(), nullptr,     scales.get(), 32};
    CHECK(cuda::expert_gate_up(x.get(), offsets.get(), weights, shape, cuda::GluActivation::kSilu,
                               x.get(), nullptr)
              .code() == StatusCode::kInvalidArgument);
    weights.v1_groups = scales.get();
    weights.group_size = 48;
    CHECK(cuda::expert_down(x.get(), offsets.get(), weights, shape, {}, x.get(), nullptr).code() ==
          StatusCode::kInvalidArgument);
}

}  // namespace sluice::inference
