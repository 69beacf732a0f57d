// The CPU kernels: AVX2 and portable row-dot kernels agree with a double-precision reference for
// every weight format and ragged sizes, and Matmul's BLAS and row paths agree with each other.
#include "inference/cpu/kernels.h"

#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <vector>

#include "inference/cpu/matmul.h"
#include "inference/cpu_gemv_bench.h"
#include "inference/cpu/ops.h"
#include "inference/cpu/panel_layout.h"
#include "inference/dtype.h"

namespace sluice::inference::cpu {
namespace {

std::vector<float> random_values(size_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> values(n);
    for (float& v : values) {
        v = dist(rng);
    }
    return values;
}

void check_table(const RowKernels& kernels) {
    // 200 spans several cache lines of every format plus a ragged tail; 13 rows are three
    // blocks of the four-row decode loop and one row alone.
    for (int64_t k : {1, 7, 8, 16, 33, 100, 200}) {
        for (int64_t m : {1, 2, 3, 4, 5, 9, 16, 18}) {
            for (int64_t n_rows : {7, 13}) {
                const auto w = random_values(static_cast<size_t>(n_rows * k), 1);
                const auto x = random_values(static_cast<size_t>(m * k), 2);
                for (MatrixFormat format :
                     {MatrixFormat::kF32, MatrixFormat::kBF16, MatrixFormat::kInt8}) {
                    const WeightMatrix matrix = WeightMatrix::from_f32(w, n_rows, k, format);
                    std::vector<float> y(static_cast<size_t>(m * n_rows), -1.0f);
                    if (format == MatrixFormat::kF32) {
                        kernels.f32(static_cast<const float*>(matrix.data()), n_rows, k, x.data(),
                                    m, y.data(), n_rows);
                    } else if (format == MatrixFormat::kBF16) {
                        kernels.bf16(static_cast<const uint16_t*>(matrix.data()), n_rows, k,
                                     x.data(), m, y.data(), n_rows);
                    } else {
                        kernels.i8(static_cast<const int8_t*>(matrix.data()), matrix.scales(),
                                   n_rows, k, x.data(), m, y.data(), n_rows);
                    }
                    std::vector<float> row(static_cast<size_t>(k));
                    for (int64_t r = 0; r < n_rows; ++r) {
                        matrix.row_to_f32(r, row.data());  // the dequantised weights
                        for (int64_t t = 0; t < m; ++t) {
                            double want = 0;
                            for (int64_t j = 0; j < k; ++j) {
                                want += static_cast<double>(row[static_cast<size_t>(j)]) *
                                        x[static_cast<size_t>(t * k + j)];
                            }
                            INFO(kernels.name << " k " << k << " m " << m << " format "
                                              << static_cast<int>(format));
                            CHECK(y[static_cast<size_t>(t * n_rows + r)] ==
                                  doctest::Approx(want).epsilon(1e-5).scale(1.0));
                        }
                    }
                }
            }
        }
    }
}

// Panel matrices: every kernel table against the double reference, for row ranges that start
// and end inside panels; and for several tokens bit for bit the row-major kernel's results,
// since a panel matrix must sum each (row, token) in the same order.
void check_panels(const RowKernels& kernels) {
    const int64_t n_rows = 12;  // three panels
    for (int64_t k : {16, 32, 48, 208}) {
        const auto w = random_values(static_cast<size_t>(n_rows * k), 7);
        const WeightMatrix rows = WeightMatrix::from_f32(w, n_rows, k, MatrixFormat::kBF16);
        const WeightMatrix panels =
            pack_panels(WeightMatrix::from_f32(w, n_rows, k, MatrixFormat::kBF16));
        REQUIRE(panels.layout() == MatrixLayout::kPanels);
        const auto* row_bits = static_cast<const uint16_t*>(rows.data());
        const auto* panel_bits = static_cast<const uint16_t*>(panels.data());
        for (int64_t m : {1, 2, 3, 4, 5, 9}) {
            const auto x = random_values(static_cast<size_t>(m * k), 8);
            for (auto [first, count] :
                 {std::pair<int64_t, int64_t>{0, 12}, {1, 10}, {4, 8}, {2, 3}, {5, 7}, {11, 1}}) {
                INFO(kernels.name << " k " << k << " m " << m << " rows " << first << "+" << count);
                std::vector<float> y(static_cast<size_t>(m * count), -1.0f);
                kernels.bf16_panels(panel_bits, first, count, k, x.data(), m, y.data(), count);
                std::vector<float> want_rows(static_cast<size_t>(m * count), -2.0f);
                kernels.bf16(row_bits + first * k, count, k, x.data(), m, want_rows.data(), count);
                std::vector<float> row(static_cast<size_t>(k));
                for (int64_t r = 0; r < count; ++r) {
                    rows.row_to_f32(first + r, row.data());
                    for (int64_t t = 0; t < m; ++t) {
                        double want = 0;
                        for (int64_t j = 0; j < k; ++j) {
                            want += static_cast<double>(row[static_cast<size_t>(j)]) *
                                    x[static_cast<size_t>(t * k + j)];
                        }
                        const float got = y[static_cast<size_t>(t * count + r)];
                        CHECK(got == doctest::Approx(want).epsilon(1e-5).scale(1.0));
                        if (m > 1) {
                            CHECK(got == want_rows[static_cast<size_t>(t * count + r)]);
                        }
                    }
                }
            }
        }
    }
}

}  // namespace

TEST_CASE("weights: pack_panels keeps every row's values and packs only what fits") {
    const int64_t k = 48;
    const auto w = random_values(static_cast<size_t>(8 * k), 9);
    const WeightMatrix rows = WeightMatrix::from_f32(w, 8, k, MatrixFormat::kBF16);
    const WeightMatrix panels = pack_panels(WeightMatrix::from_f32(w, 8, k, MatrixFormat::kBF16));
    CHECK(panels.layout() == MatrixLayout::kPanels);
    CHECK(panels.bytes() == rows.bytes());
    std::vector<float> want(static_cast<size_t>(k));
    std::vector<float> got(static_cast<size_t>(k));
    for (int64_t r = 0; r < 8; ++r) {
        rows.row_to_f32(r, want.data());
        panels.row_to_f32(r, got.data());
        CHECK(got == want);
    }
    // Row 5, column 20 sits in panel 1, column group 1, as the second row of its panel.
    const auto* bits = static_cast<const uint16_t*>(panels.data());
    CHECK(bits[panel_row_offset(5, k) + panel_col_offset(20)] ==
          static_cast<const uint16_t*>(rows.data())[5 * k + 20]);
    CHECK(bits[4 * k + 1 * 64 + 1 * 16 + 4] ==
          static_cast<const uint16_t*>(rows.data())[5 * k + 20]);
    // Shapes and formats the panels do not fit stay row-major.
    CHECK(pack_panels(WeightMatrix::from_f32(w, 6, 64, MatrixFormat::kBF16)).layout() ==
          MatrixLayout::kRows);
    CHECK(pack_panels(WeightMatrix::from_f32(w, 16, 24, MatrixFormat::kBF16)).layout() ==
          MatrixLayout::kRows);
    CHECK(pack_panels(WeightMatrix::from_f32(w, 8, k, MatrixFormat::kF32)).layout() ==
          MatrixLayout::kRows);
    CHECK(pack_panels(WeightMatrix::from_f32(w, 8, k, MatrixFormat::kInt8)).layout() ==
          MatrixLayout::kRows);
}

TEST_CASE("kernels: panel matrices give the row-major results in every kernel table") {
    check_panels(portable_row_kernels());
    if (const RowKernels* avx2 = avx2_row_kernels()) {
        check_panels(*avx2);
    } else {
        MESSAGE("AVX2+FMA not available on this CPU; only the portable table checked");
    }
}

TEST_CASE("kernels: the portable row-dot kernels match a double-precision reference") {
    check_table(portable_row_kernels());
}

TEST_CASE("kernels: the AVX2 row-dot kernels match a double-precision reference") {
    const RowKernels* avx2 = avx2_row_kernels();
    if (avx2 == nullptr) {
        MESSAGE("AVX2+FMA not available on this CPU; skipped");
        return;
    }
    check_table(*avx2);
}

TEST_CASE("kernels: a token's result does not depend on the batch of several it is in") {
    // The scheduler batches whatever is running; a request's numbers must not change with it.
    // (One token alone takes the decode loop, which adds in its own order.)
    const RowKernels* avx2 = avx2_row_kernels();
    for (const RowKernels* kernels : {&portable_row_kernels(), avx2}) {
        if (kernels == nullptr) {
            continue;
        }
        const int64_t k = 100;
        const int64_t n_rows = 8;
        const int64_t m = 11;
        const auto w = random_values(static_cast<size_t>(n_rows * k), 5);
        const auto x = random_values(static_cast<size_t>(m * k), 6);
        const WeightMatrix matrix = WeightMatrix::from_f32(w, n_rows, k, MatrixFormat::kBF16);
        const auto* bits = static_cast<const uint16_t*>(matrix.data());
        std::vector<float> batched(static_cast<size_t>(m * n_rows));
        kernels->bf16(bits, n_rows, k, x.data(), m, batched.data(), n_rows);
        for (int64_t smaller : {2, 3, 5, 7}) {
            std::vector<float> part(static_cast<size_t>(smaller * n_rows));
            kernels->bf16(bits, n_rows, k, x.data(), smaller, part.data(), n_rows);
            for (int64_t i = 0; i < smaller * n_rows; ++i) {
                INFO(kernels->name << " batch " << smaller << " entry " << i);
                CHECK(part[static_cast<size_t>(i)] == batched[static_cast<size_t>(i)]);
            }
        }
    }
}

// Rows [10, n) of `matrix` [n, k] through Matmul: the sgemm path, the row path for one token
// and for a batch just below the sgemm threshold, all agreeing.
static void check_matmul_paths(Matmul& matmul, const WeightMatrix& matrix,
                               const std::vector<float>& x, int64_t m) {
    const int64_t n = matrix.rows();
    const int64_t k = matrix.cols();
    std::vector<float> blas(static_cast<size_t>(m * (n - 10)));
    matmul.run({&matrix, 10, n - 10, x.data(), m, blas.data()});  // the sgemm path
    std::vector<float> batch(static_cast<size_t>((m - 5) * (n - 10)));
    matmul.run({&matrix, 10, n - 10, x.data(), m - 5, batch.data()});
    for (int64_t t = 0; t < m; ++t) {
        std::vector<float> rows(static_cast<size_t>(n - 10));
        matmul.run({&matrix, 10, n - 10, x.data() + t * k, 1, rows.data()});
        for (int64_t r = 0; r < n - 10; ++r) {
            const float want = blas[static_cast<size_t>(t * (n - 10) + r)];
            CHECK(rows[static_cast<size_t>(r)] == doctest::Approx(want).epsilon(1e-5));
            if (t < m - 5) {
                CHECK(batch[static_cast<size_t>(t * (n - 10) + r)] ==
                      doctest::Approx(want).epsilon(1e-5));
            }
        }
    }
}

TEST_CASE("matmul: the sgemm path and the row path agree for every weight format") {
    ThreadPool pool(2);
    Matmul matmul(&pool);
    const int64_t k = 72;
    const int64_t n = 600;  // more than one sgemm panel per pool thread
    const int64_t m = Matmul::kBlasMinTokens + 4;
    const auto w = random_values(static_cast<size_t>(n * k), 3);
    const auto x = random_values(static_cast<size_t>(m * k), 4);
    for (MatrixFormat format : {MatrixFormat::kF32, MatrixFormat::kBF16, MatrixFormat::kInt8}) {
        INFO("format " << static_cast<int>(format));
        check_matmul_paths(matmul, WeightMatrix::from_f32(w, n, k, format), x, m);
    }
    // bf16 in panels: 80 columns (a multiple of the panels' 16); rows from 10, inside a panel.
    const auto w80 = random_values(static_cast<size_t>(n * 80), 3);
    const auto x80 = random_values(static_cast<size_t>(m * 80), 4);
    const WeightMatrix panels =
        pack_panels(WeightMatrix::from_f32(w80, n, 80, MatrixFormat::kBF16));
    REQUIRE(panels.layout() == MatrixLayout::kPanels);
    check_matmul_paths(matmul, panels, x80, m);
}

TEST_CASE("ops: router top-k renormalises by the p-norm and breaks ties to the lower id") {
    ModelConfig config;
    const std::vector<float> logits = {0.0f, 2.0f, 1.0f, 2.0f, -1.0f};
    int32_t experts[2];
    float weights[2];
    config.expert_weights_norm_p = 1.0;
    route_top_k(logits.data(), 5, 2, config, experts, weights);
    CHECK(experts[0] == 1);
    CHECK(experts[1] == 3);
    CHECK(weights[0] == doctest::Approx(0.5));
    config.expert_weights_norm_p = 2.0;
    route_top_k(logits.data(), 5, 2, config, experts, weights);
    CHECK(weights[0] == doctest::Approx(1.0 / std::sqrt(2.0)));
    config.expert_weights_norm_p.reset();
    route_top_k(logits.data(), 5, 2, config, experts, weights);
    double z = 0;
    for (float l : logits) {
        z += std::exp(l);
    }
    CHECK(weights[0] == doctest::Approx(std::exp(2.0) / z));
}

}  // namespace sluice::inference::cpu

namespace sluice::inference {

TEST_CASE("gemv bench: times both layouts and refuses shapes it cannot run") {
    auto rows = time_cpu_decode_gemv(64, 48, 2, GemvLayout::kRows, 3);
    REQUIRE(rows.ok());
    CHECK(rows->weight_bytes == 64 * 48 * 2);
    CHECK(rows->best_seconds <= rows->median_seconds);
    CHECK(rows->cpu_seconds > 0);
    auto panels = time_cpu_decode_gemv(64, 48, 2, GemvLayout::kPanels, 3);
    REQUIRE(panels.ok());
    CHECK(panels->weight_bytes == 64 * 48 * 2);
    auto unfit = time_cpu_decode_gemv(66, 48, 2, GemvLayout::kPanels, 3);
    REQUIRE_FALSE(unfit.ok());
    CHECK(unfit.status().message().find("66 x 48") != std::string::npos);
    CHECK_FALSE(time_cpu_decode_gemv(0, 48, 2, GemvLayout::kRows, 3).ok());
    CHECK_FALSE(time_cpu_decode_gemv(64, 48, 2, GemvLayout::kRows, 0).ok());
}

}  // namespace sluice::inference
