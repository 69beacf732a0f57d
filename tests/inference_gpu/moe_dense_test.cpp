// Parity of the CUDA router, permutation, grouped expert products, un-permutation and the cuBLAS
// dense products with their CPU references, on small shapes and DBRX's (d_model 6144, 16
// experts of ffn 10752, top-4) at a few tokens.
#include <doctest/doctest.h>

#include <functional>
#include <map>
#include <thread>

#include "gpu_test_support.h"
#include "inference/cpu/ops.h"
#include "inference/cuda/dense.cuh"
#include "inference/cuda/moe.cuh"
#include "inference/cuda/quantize.cuh"
#include "inference/cuda/skinny.cuh"
#include "inference/cuda/step_buffers.h"
#include "inference/cuda/tensor_core.cuh"
#include "inference/dtype.h"

namespace sluice::inference {
namespace {

using cuda::DeviceDType;
using testing::DeviceVec;
using testing::hashed_value;
using testing::random_floats;
using testing::relative_error;

}  // namespace

TEST_CASE("cuda route_top_k equals the cpu router, with and without renormalisation") {
    const int64_t n_tokens = 37;
    const int64_t n_expert = 16;
    const int64_t k = 4;
    auto logits = random_floats(static_cast<size_t>(n_tokens * n_expert), 21, 3.0f);
    // A tie: the lower index must win, as on the CPU.
    logits[3] = logits[5] = 10.0f;
    for (const std::optional<double> p :
         {std::optional<double>(1.0), std::optional<double>(2.0), std::optional<double>()}) {
        ModelConfig config;
        config.expert_weights_norm_p = p;
        std::vector<int32_t> ref_experts(static_cast<size_t>(n_tokens * k));
        std::vector<float> ref_weights(ref_experts.size());
        for (int64_t t = 0; t < n_tokens; ++t) {
            cpu::route_top_k(logits.data() + t * n_expert, n_expert, k, config,
                             ref_experts.data() + t * k, ref_weights.data() + t * k);
        }
        DeviceVec<float> dlogits(logits), dweights(ref_weights.size());
        DeviceVec<int32_t> dexperts(ref_experts.size());
        REQUIRE(cuda::route_top_k(dlogits.get(), n_tokens, n_expert, k, p, dexperts.get(),
                                  dweights.get(), nullptr)
                    .ok());
        INFO("norm p " << (p ? *p : 0.0));
        CHECK(dexperts.host() == ref_experts);
        CHECK(relative_error(dweights.host(), ref_weights) <= 1e-6);
    }
}

namespace {

struct MoeShape {
    int64_t n_tokens;
    int64_t n_expert;
    int64_t k;
    int64_t d;
    int64_t n_ff;
};

constexpr uint64_t kSeedW1 = 101;
constexpr uint64_t kSeedV1 = 102;
constexpr uint64_t kSeedW2 = 103;

double act_ref(double g, cuda::GluActivation activation) {
    if (activation == cuda::GluActivation::kSilu) {
        return g / (1.0 + std::exp(-g));
    }
    return 0.5 * g * (1.0 + std::erf(g / std::sqrt(2.0)));
}

// The three expert matrices as the reference reads them: value(which, index) with which 0 = w1,
// 1 = v1, 2 = w2 and index into the fused [n_expert * n_ff, d] tensor.
using WeightReader = std::function<double(int which, uint64_t index)>;

WeightReader hashed_reader(float w_scale, float w2_scale) {
    return [w_scale, w2_scale](int which, uint64_t index) -> double {
        const uint64_t seed = which == 0 ? kSeedW1 : which == 1 ? kSeedV1 : kSeedW2;
        return hashed_value(seed, index, which == 2 ? w2_scale : w_scale);
    };
}

// One expert's output for one token row, in double: (act(h·w1_eᵀ) ⊙ (h·v1_eᵀ)) · w2_e.
std::vector<double> expert_ref(const MoeShape& s, const float* ht, int64_t e,
                               cuda::GluActivation activation, const WeightReader& weight) {
    std::vector<double> a(static_cast<size_t>(s.n_ff));
    for (int64_t f = 0; f < s.n_ff; ++f) {
        double g = 0;
        double u = 0;
        const auto row = static_cast<uint64_t>((e * s.n_ff + f) * s.d);
        for (int64_t j = 0; j < s.d; ++j) {
            const auto at = row + static_cast<uint64_t>(j);
            g += ht[j] * weight(0, at);
            u += ht[j] * weight(1, at);
        }
        a[static_cast<size_t>(f)] = act_ref(g, activation) * u;
    }
    std::vector<double> out(static_cast<size_t>(s.d), 0.0);
    for (int64_t f = 0; f < s.n_ff; ++f) {
        const auto row = static_cast<uint64_t>((e * s.n_ff + f) * s.d);
        for (int64_t j = 0; j < s.d; ++j) {
            out[static_cast<size_t>(j)] +=
                a[static_cast<size_t>(f)] * weight(2, row + static_cast<uint64_t>(j));
        }
    }
    return out;
}

// The grouped products' three paths: weight streaming (decode-sized steps, split down product),
// tiled, and the tensor cores (bf16 and fp8 weights only). A step may name a larger upper bound
// of slots per expert than it has, which sends it down the tiled path.
enum class ExpertPath { kStreamed, kTiled, kTensorCore };

// The tensor-core path's scratch for `n_slots` slots, with a widening panel of a few rows.
struct TcHarness {
    cuda::CublasPtr handle;
    cuda::DeviceBuffer x_hi, x_lo, panel, up, act_hi, act_lo;
    cuda::PinnedInts offsets;
    std::unique_ptr<cuda::TensorCoreGemm> gemm;
    cuda::ExpertTcScratch expert;

    TcHarness(int64_t n_slots, int64_t d, int64_t n_ff, int64_t n_expert) {
        cublasHandle_t raw = nullptr;
        REQUIRE(cublasCreate(&raw) == CUBLAS_STATUS_SUCCESS);
        handle.reset(raw);
        const int64_t panel_values = 3 * std::max(d, n_ff) + 5;  // several panels per matrix
        REQUIRE(x_hi.allocate(n_slots * d * 2).ok());
        REQUIRE(x_lo.allocate(n_slots * d * 2).ok());
        REQUIRE(panel.allocate(panel_values * 2).ok());
        REQUIRE(up.allocate(n_slots * n_ff * 4).ok());
        REQUIRE(act_hi.allocate(n_slots * n_ff * 2).ok());
        REQUIRE(act_lo.allocate(n_slots * n_ff * 2).ok());
        REQUIRE(offsets.allocate(n_expert + 1).ok());
        gemm = std::make_unique<cuda::TensorCoreGemm>(
            raw, cuda::TensorCoreScratch{x_hi.get(), x_lo.get(), n_slots * d, panel.get(),
                                         panel_values});
        expert = {up.as<float>(), act_hi.get(), act_lo.get(), n_slots * n_ff, offsets.get()};
    }
};

// Runs permute → gate/up → down → un-permute on the GPU and compares x with a double-precision
// CPU evaluation of the reference formula, x += Σ_e w_e · ((act(h·w1_eᵀ) ⊙ (h·v1_eᵀ)) · w2_e),
// with w2_e applied without a transpose, reading the weights through `reference`.
void run_moe_check(const MoeShape& s, const cuda::ExpertWeights& device_weights,
                   const WeightReader& reference, cuda::GluActivation activation, ExpertPath path,
                   double tolerance) {
    const auto h = random_floats(static_cast<size_t>(s.n_tokens * s.d), 31);
    const auto x0 = random_floats(h.size(), 32);
    // Routing from the CPU router on random logits.
    ModelConfig config;
    std::vector<int32_t> experts(static_cast<size_t>(s.n_tokens * s.k));
    std::vector<float> weights(experts.size());
    const auto logits = random_floats(static_cast<size_t>(s.n_tokens * s.n_expert), 33, 2.0f);
    for (int64_t t = 0; t < s.n_tokens; ++t) {
        cpu::route_top_k(logits.data() + t * s.n_expert, s.n_expert, s.k, config,
                         experts.data() + t * s.k, weights.data() + t * s.k);
    }

    const int64_t n_pairs = s.n_tokens * s.k;
    DeviceVec<float> dh(h), dx(x0), dweights(weights);
    DeviceVec<int32_t> dexperts(experts), offsets(static_cast<size_t>(s.n_expert + 1)),
        pair_slot(static_cast<size_t>(n_pairs)), slot_token(static_cast<size_t>(n_pairs));
    DeviceVec<float> sorted(static_cast<size_t>(n_pairs * s.d)),
        act(static_cast<size_t>(n_pairs * s.n_ff)), y(static_cast<size_t>(n_pairs * s.d));
    const cuda::Permutation perm{offsets.get(), pair_slot.get(), slot_token.get()};
    const bool streamed = path == ExpertPath::kStreamed;
    std::unique_ptr<TcHarness> tc;
    if (path == ExpertPath::kTensorCore) {
        tc = std::make_unique<TcHarness>(n_pairs, s.d, s.n_ff, s.n_expert);
    }
    const cuda::ExpertShape shape{s.n_expert, s.d, s.n_ff, n_pairs,
                                  streamed ? s.n_tokens : cuda::kSkinnyExpertMaxTokens + 1};
    DeviceVec<float> partial(
        static_cast<size_t>(streamed ? cuda::down_split_floats(n_pairs, s.d, s.n_ff) : 1));
    const cuda::DownSplit split{streamed ? partial.get() : nullptr, streamed ? n_pairs : 0};
    REQUIRE(cuda::permute_by_expert(dexperts.get(), s.n_tokens, s.k, s.n_expert, perm, dh.get(),
                                    s.d, sorted.get(), nullptr)
                .ok());
    if (tc != nullptr) {
        REQUIRE(cuda::grouped_experts_tc(*tc->gemm, tc->expert, sorted.get(), offsets.get(),
                                         device_weights, shape, activation, act.get(), y.get(),
                                         nullptr)
                    .ok());
    } else {
        REQUIRE(cuda::expert_gate_up(sorted.get(), offsets.get(), device_weights, shape,
                                     activation, act.get(), nullptr)
                    .ok());
        REQUIRE(cuda::expert_down(act.get(), offsets.get(), device_weights, shape, split, y.get(),
                                  nullptr)
                    .ok());
    }
    REQUIRE(cuda::unpermute_add(y.get(), pair_slot.get(), dexperts.get(), dweights.get(),
                                s.n_tokens, s.k, s.d, dx.get(), nullptr)
                .ok());

    // The permutation groups pairs by expert, in token order within an expert.
    std::vector<int32_t> want_offsets(static_cast<size_t>(s.n_expert + 1), 0);
    std::vector<int32_t> want_tokens;
    for (int64_t e = 0; e < s.n_expert; ++e) {
        for (int64_t p = 0; p < n_pairs; ++p) {
            if (experts[static_cast<size_t>(p)] == e) {
                want_tokens.push_back(static_cast<int32_t>(p / s.k));
            }
        }
        want_offsets[static_cast<size_t>(e + 1)] = static_cast<int32_t>(want_tokens.size());
    }
    CHECK(offsets.host() == want_offsets);
    CHECK(slot_token.host() == want_tokens);

    // Reference, per (token, expert) pair, in double; pairs on every hardware thread.
    std::vector<std::vector<double>> outs(static_cast<size_t>(n_pairs));
    {
        const int64_t n_threads = std::max(1u, std::thread::hardware_concurrency());
        std::vector<std::jthread> workers;
        for (int64_t w = 0; w < n_threads; ++w) {
            workers.emplace_back([&, w] {
                for (int64_t p = w; p < n_pairs; p += n_threads) {
                    outs[static_cast<size_t>(p)] =
                        expert_ref(s, h.data() + p / s.k * s.d, experts[static_cast<size_t>(p)],
                                   activation, reference);
                }
            });
        }
    }
    std::vector<float> ref = x0;
    for (int64_t p = 0; p < n_pairs; ++p) {
        const int64_t t = p / s.k;
        for (int64_t j = 0; j < s.d; ++j) {
            ref[static_cast<size_t>(t * s.d + j)] +=
                static_cast<float>(weights[static_cast<size_t>(p)] *
                                   outs[static_cast<size_t>(p)][static_cast<size_t>(j)]);
        }
    }
    INFO("moe " << s.n_tokens << " tokens, " << s.n_expert << " experts top " << s.k << ", d "
                << s.d << ", ffn " << s.n_ff << ", type " << static_cast<int>(device_weights.type)
                << (streamed ? ", streamed" : tc != nullptr ? ", tensor cores" : ", tiled"));
    CHECK(relative_error(dx.host(), ref) <= tolerance);
}

// Hashed f32 or bf16 weights, both paths.
void check_moe(const MoeShape& s, DeviceDType type, cuda::GluActivation activation) {
    const float w_scale = 1.0f / std::sqrt(static_cast<float>(s.d));
    const float w2_scale = 1.0f / std::sqrt(static_cast<float>(s.n_ff));
    const int64_t n_w = s.n_expert * s.n_ff * s.d;
    auto w1 = testing::upload_hashed(kSeedW1, n_w, w_scale, type);
    auto v1 = testing::upload_hashed(kSeedV1, n_w, w_scale, type);
    auto w2 = testing::upload_hashed(kSeedW2, n_w, w2_scale, type);
    const cuda::ExpertWeights weights{w1.get(), v1.get(), w2.get(), nullptr, nullptr, nullptr,
                                      type};
    for (const ExpertPath path : {ExpertPath::kStreamed, ExpertPath::kTiled}) {
        run_moe_check(s, weights, hashed_reader(w_scale, w2_scale), activation, path, 2e-5);
    }
    if (type == DeviceDType::kBF16) {
        // Activations as two bf16 terms: within a few 1e-6 of fp32 (tensor_core.cuh).
        run_moe_check(s, weights, hashed_reader(w_scale, w2_scale), activation,
                      ExpertPath::kTensorCore, 3e-5);
    }
}

// Downloads fp8 values and their scales and widens them as the kernels do.
std::vector<double> dequantized(const cuda::DeviceBuffer& q, const DeviceVec<float>& scales,
                                int64_t rows, int64_t cols, int64_t group_rows) {
    std::vector<uint8_t> bits(static_cast<size_t>(rows * cols));
    REQUIRE(cudaMemcpy(bits.data(), q.get(), bits.size(), cudaMemcpyDeviceToHost) == cudaSuccess);
    const auto s = scales.host();
    std::vector<double> out(bits.size());
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) {
            const float scale = group_rows > 0 ? s[static_cast<size_t>(r / group_rows * cols + c)]
                                               : s[static_cast<size_t>(r)];
            const auto i = static_cast<size_t>(r * cols + c);
            out[i] = static_cast<double>(fp8_e4m3_to_f32(bits[i])) * scale;
        }
    }
    return out;
}

}  // namespace

TEST_CASE("cuda grouped experts equal the reference formula on small shapes") {
    check_moe({1, 4, 1, 64, 96}, DeviceDType::kF32, cuda::GluActivation::kSilu);
    check_moe({9, 16, 4, 64, 96}, DeviceDType::kF32, cuda::GluActivation::kSilu);
    check_moe({40, 16, 4, 100, 70}, DeviceDType::kBF16, cuda::GluActivation::kSilu);
    check_moe({70, 16, 4, 128, 256}, DeviceDType::kBF16, cuda::GluActivation::kGelu);
    check_moe({13, 8, 2, 128, 160}, DeviceDType::kF32, cuda::GluActivation::kGelu);
    // 32 tokens on all 4 experts: 4 chunks of 8 slots per expert; 1100 rows of w2 make three
    // parts of the split down product, the last one short.
    check_moe({32, 4, 4, 128, 1100}, DeviceDType::kBF16, cuda::GluActivation::kSilu);
}

TEST_CASE("cuda fp8 quantisation: scales per row and per column, values within E4M3 rounding") {
    const int64_t rows = 96;
    const int64_t cols = 160;
    const auto w = testing::random_bf16_exact(static_cast<size_t>(rows * cols), 61, 3.0f);
    DeviceVec<uint16_t> src(testing::to_bf16(w));
    for (const int64_t group_rows : {int64_t{0}, int64_t{32}}) {
        cuda::DeviceBuffer q;
        REQUIRE(q.allocate(rows * cols).ok());
        DeviceVec<float> scales(static_cast<size_t>(group_rows > 0 ? rows / group_rows * cols : rows));
        if (group_rows > 0) {
            for (int64_t g = 0; g < rows / group_rows; ++g) {
                REQUIRE(cuda::quantize_cols_fp8(src.get() + g * group_rows * cols,
                                                DeviceDType::kBF16, group_rows, cols,
                                                q.as<uint8_t>() + g * group_rows * cols,
                                                scales.get() + g * cols, nullptr)
                            .ok());
            }
        } else {
            REQUIRE(cuda::quantize_rows_fp8(src.get(), DeviceDType::kBF16, rows, cols, q.get(),
                                            scales.get(), nullptr)
                        .ok());
        }
        const auto got = dequantized(q, scales, rows, cols, group_rows);
        const auto s = scales.host();
        double worst = 0;
        bool max_hit = false;
        for (int64_t r = 0; r < rows; ++r) {
            for (int64_t c = 0; c < cols; ++c) {
                const auto i = static_cast<size_t>(r * cols + c);
                const float scale = group_rows > 0 ? s[static_cast<size_t>(r / group_rows * cols + c)]
                                                   : s[static_cast<size_t>(r)];
                // 3 mantissa bits: half a unit in the last place is 1/16 of the value; values
                // below E4M3's smallest normal (2^-6) round to a grid of 2^-9 (in units of scale).
                // (1.001: the fp32 product value · (1 / scale) may land a hair past a tie.)
                const double bound =
                    1.001 * (std::fabs(w[i]) / 16.0 + scale * std::ldexp(1.0, -10));
                worst = std::max(worst, std::fabs(got[i] - w[i]) / bound);
                max_hit = max_hit || std::fabs(std::fabs(got[i]) / scale - 448.0) < 1e-3;
            }
        }
        INFO("group rows " << group_rows);
        CHECK(worst <= 1.0);
        CHECK(max_hit);  // each channel's largest magnitude maps to E4M3's largest value
    }
}

TEST_CASE("cuda grouped experts with fp8 weights equal the reference on the dequantised weights") {
    const MoeShape s{11, 8, 2, 128, 600};
    const int64_t n_w = s.n_expert * s.n_ff * s.d;
    const float w_scale = 1.0f / std::sqrt(static_cast<float>(s.d));
    const float w2_scale = 1.0f / std::sqrt(static_cast<float>(s.n_ff));
    std::vector<cuda::DeviceBuffer> q(3);
    std::vector<DeviceVec<float>> scales;
    std::vector<std::vector<double>> host(3);
    for (int which = 0; which < 3; ++which) {
        const uint64_t seed = which == 0 ? kSeedW1 : which == 1 ? kSeedV1 : kSeedW2;
        auto bf16 = testing::upload_hashed(seed, n_w, which == 2 ? w2_scale : w_scale,
                                           DeviceDType::kBF16);
        REQUIRE(q[static_cast<size_t>(which)].allocate(n_w).ok());
        auto* out = q[static_cast<size_t>(which)].as<uint8_t>();
        if (which < 2) {
            scales.emplace_back(static_cast<size_t>(s.n_expert * s.n_ff));
            REQUIRE(cuda::quantize_rows_fp8(bf16.get(), DeviceDType::kBF16, s.n_expert * s.n_ff,
                                            s.d, out, scales.back().get(), nullptr)
                        .ok());
        } else {
            scales.emplace_back(static_cast<size_t>(s.n_expert * s.d));
            for (int64_t e = 0; e < s.n_expert; ++e) {
                REQUIRE(cuda::quantize_cols_fp8(bf16.as<uint16_t>() + e * s.n_ff * s.d,
                                                DeviceDType::kBF16, s.n_ff, s.d,
                                                out + e * s.n_ff * s.d,
                                                scales.back().get() + e * s.d, nullptr)
                            .ok());
            }
        }
        host[static_cast<size_t>(which)] =
            dequantized(q[static_cast<size_t>(which)], scales.back(), s.n_expert * s.n_ff, s.d,
                        which == 2 ? s.n_ff : 0);
    }
    const cuda::ExpertWeights weights{q[0].get(),       q[1].get(),       q[2].get(),
                                      scales[0].get(),  scales[1].get(),  scales[2].get(),
                                      DeviceDType::kF8E4M3};
    const WeightReader reference = [&host](int which, uint64_t index) {
        return host[static_cast<size_t>(which)][index];
    };
    for (const ExpertPath path : {ExpertPath::kStreamed, ExpertPath::kTiled}) {
        run_moe_check(s, weights, reference, cuda::GluActivation::kSilu, path, 2e-5);
    }
    // On the tensor cores an fp8 weight is widened to bf16 with its scale folded in: one rounding
    // of 2^-9 relative per weight (measured 2.5e-4 here on an H200), far below fp8's own.
    run_moe_check(s, weights, reference, cuda::GluActivation::kSilu, ExpertPath::kTensorCore,
                  5e-3);
    // Scales are required with fp8, refused with other types.
    cuda::ExpertWeights unscaled = weights;
    unscaled.w2_scales = nullptr;
    const cuda::ExpertShape shape{s.n_expert, s.d, s.n_ff, s.n_tokens * s.k, s.n_tokens};
    CHECK(cuda::expert_down(nullptr, nullptr, unscaled, shape, {}, nullptr, nullptr).code() ==
          StatusCode::kInvalidArgument);
}

TEST_CASE("cuda grouped experts equal the reference formula at DBRX's shape (bf16)") {
    check_moe({4, 16, 4, 6144, 10752}, DeviceDType::kBF16, cuda::GluActivation::kSilu);
}

namespace {

// y = x · W[rows]ᵀ + beta · y0 in double.
std::vector<float> dense_ref(const std::vector<float>& w, int64_t k, int64_t row_begin,
                             int64_t n_rows, const std::vector<float>& x, int64_t m,
                             const std::vector<float>& y0, int64_t ldy, float beta) {
    std::vector<float> y = y0;
    for (int64_t i = 0; i < m; ++i) {
        for (int64_t r = 0; r < n_rows; ++r) {
            double sum = 0;
            for (int64_t j = 0; j < k; ++j) {
                sum += static_cast<double>(x[static_cast<size_t>(i * k + j)]) *
                       w[static_cast<size_t>((row_begin + r) * k + j)];
            }
            float& out = y[static_cast<size_t>(i * ldy + r)];
            out = static_cast<float>(sum + beta * out);
        }
    }
    return y;
}

void check_dense(int64_t rows, int64_t k, int64_t row_begin, int64_t n_rows, int64_t m, float beta,
                 int64_t panel_floats) {
    const auto w = testing::random_bf16_exact(static_cast<size_t>(rows * k), 41);
    const auto x = random_floats(static_cast<size_t>(m * k), 42);
    const int64_t ldy = n_rows + 3;
    const auto y0 = random_floats(static_cast<size_t>(m * ldy), 43);
    const auto ref = dense_ref(w, k, row_begin, n_rows, x, m, y0, ldy, beta);
    cublasHandle_t handle = nullptr;
    REQUIRE(cublasCreate(&handle) == CUBLAS_STATUS_SUCCESS);
    cuda::CublasPtr owned(handle);
    REQUIRE(cublasSetMathMode(handle, CUBLAS_PEDANTIC_MATH) == CUBLAS_STATUS_SUCCESS);
    DeviceVec<float> panel(static_cast<size_t>(panel_floats)), dx(x), wf(w);
    DeviceVec<uint16_t> wb(testing::to_bf16(w)), x_hi(static_cast<size_t>(m * k)),
        x_lo(static_cast<size_t>(m * k));
    const cuda::TensorCoreGemm tensor_cores(
        handle, {x_hi.get(), x_lo.get(), m * k, panel.get(), panel_floats * 2});
    for (const auto type : {DeviceDType::kF32, DeviceDType::kBF16}) {
        for (const bool with_tensor_cores : {false, true}) {
            DeviceVec<float> dy(y0);
            cuda::DenseMatmul dense(handle, panel.get(), panel_floats,
                                    with_tensor_cores ? &tensor_cores : nullptr);
            const void* data =
                type == DeviceDType::kF32 ? static_cast<const void*>(wf.get()) : wb.get();
            REQUIRE(dense
                        .run({{data, type, rows, k}, row_begin, n_rows, dx.get(), m, dy.get(),
                              ldy, beta},
                             nullptr)
                        .ok());
            INFO("dense " << m << " x " << k << " -> " << n_rows << ", bf16 "
                          << (type == DeviceDType::kBF16) << ", panel " << panel_floats
                          << ", tensor cores " << with_tensor_cores);
            // The tensor cores take bf16 weights of more than kSkinnyMaxTokens tokens, with the
            // activations as two bf16 terms (tensor_core.cuh): a few 1e-6 from fp32.
            CHECK(relative_error(dy.host(), ref) <= (with_tensor_cores ? 3e-5 : 1e-5));
        }
    }
}

}  // namespace

TEST_CASE("cuda dense products equal the reference, panels and residual included") {
    // Up to kSkinnyMaxTokens tokens stream the weights; more go to cuBLAS.
    check_dense(300, 64, 0, 300, 5, 0.0f, 64 * 7);      // streamed
    check_dense(300, 64, 0, 300, 12, 0.0f, 64 * 7);     // cuBLAS, many widening panels
    check_dense(300, 64, 17, 100, 3, 1.0f, 64 * 300);   // a row range, added to y
    check_dense(300, 64, 17, 101, 9, 1.0f, 64 * 300);   // the same through cuBLAS
    check_dense(301, 64, 0, 301, 8, 0.0f, 64 * 300);    // 8 tokens; a last warp of 1 row
    check_dense(16, 6144, 0, 16, 1, 0.0f, 1 << 24);     // router of DBRX
    check_dense(40, 100, 0, 40, 2, 0.0f, 100 * 40);     // rows of 100: not 16-byte multiples
}

TEST_CASE("cuda dense products with fp8 weights equal the reference on the dequantised weights") {
    const int64_t rows = 200;
    const int64_t k = 256;
    const auto w = testing::random_bf16_exact(static_cast<size_t>(rows * k), 71);
    DeviceVec<uint16_t> src(testing::to_bf16(w));
    cuda::DeviceBuffer q;
    REQUIRE(q.allocate(rows * k).ok());
    DeviceVec<float> scales(static_cast<size_t>(rows));
    REQUIRE(cuda::quantize_rows_fp8(src.get(), DeviceDType::kBF16, rows, k, q.get(), scales.get(),
                                    nullptr)
                .ok());
    const auto deq = dequantized(q, scales, rows, k, 0);
    const std::vector<float> wf(deq.begin(), deq.end());
    cublasHandle_t handle = nullptr;
    REQUIRE(cublasCreate(&handle) == CUBLAS_STATUS_SUCCESS);
    cuda::CublasPtr owned(handle);
    REQUIRE(cublasSetMathMode(handle, CUBLAS_PEDANTIC_MATH) == CUBLAS_STATUS_SUCCESS);
    const int64_t panel_floats = k * 64;
    DeviceVec<float> panel(static_cast<size_t>(panel_floats));
    DeviceVec<uint16_t> x_hi(static_cast<size_t>(40 * k)), x_lo(static_cast<size_t>(40 * k));
    // A panel of 70 bf16 rows: the 150 rows take three.
    const cuda::TensorCoreGemm tensor_cores(handle,
                                            {x_hi.get(), x_lo.get(), 40 * k, panel.get(), 70 * k});
    // 20 tokens stream the weights in passes of 8, 8 and 4 (below fp8's tensor-core threshold,
    // with or without tensor cores); -40: 40 tokens on the tensor cores.
    for (const int64_t m : {int64_t{1}, int64_t{6}, int64_t{20}, int64_t{-20}, int64_t{-40}}) {
        const bool with_tensor_cores = m < 0;
        const int64_t n = std::abs(m);
        const bool on_tensor_cores =
            with_tensor_cores && n >= cuda::tensor_core_min_tokens(DeviceDType::kF8E4M3);
        const auto x = random_floats(static_cast<size_t>(n * k), 72);
        const int64_t ldy = 150;
        const auto y0 = random_floats(static_cast<size_t>(n * ldy), 73);
        const auto ref = dense_ref(wf, k, 30, 150, x, n, y0, ldy, 1.0f);
        DeviceVec<float> dx(x), dy(y0);
        cuda::DenseMatmul dense(handle, panel.get(), panel_floats,
                                with_tensor_cores ? &tensor_cores : nullptr);
        REQUIRE(dense
                    .run({{q.get(), DeviceDType::kF8E4M3, rows, k, scales.get()}, 30, 150,
                          dx.get(), n, dy.get(), ldy, 1.0f},
                         nullptr)
                    .ok());
        INFO("fp8 dense, " << n << " tokens, tensor cores " << with_tensor_cores);
        // On the tensor cores the widened weight is rounded to bf16 once with its scale.
        CHECK(relative_error(dy.host(), ref) <= (on_tensor_cores ? 5e-3 : 1e-5));
    }
}

TEST_CASE("cuda dense product at DBRX's Wqkv shape (8192 x 6144, bf16)") {
    check_dense(8192, 6144, 0, 8192, 3, 0.0f, (64 << 20) / 4);
}

}  // namespace sluice::inference
