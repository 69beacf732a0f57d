#include "inference/cpu_gemv_bench.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <vector>

#include "inference/cpu/matmul.h"
#include "inference/cpu/thread_pool.h"
#include "inference/cpu/weights.h"

namespace sluice::inference {

namespace {

double process_cpu_seconds() {
    timespec now{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
    return static_cast<double>(now.tv_sec) + 1e-9 * static_cast<double>(now.tv_nsec);
}

}  // namespace

Result<GemvTiming> time_cpu_decode_gemv(int64_t rows, int64_t cols, int n_threads,
                                        GemvLayout layout, int repeats) {
    if (rows < 1 || cols < 1 || n_threads < 1 || repeats < 1) {
        return invalid_argument("gemv bench: rows, cols, threads and repeats must be >= 1, found " +
                                std::to_string(rows) + ", " + std::to_string(cols) + ", " +
                                std::to_string(n_threads) + ", " + std::to_string(repeats));
    }
    if (rows * cols > (int64_t{8} << 30)) {
        return invalid_argument("gemv bench: " + std::to_string(rows) + " x " +
                                std::to_string(cols) + " bf16 weights exceed 16 GiB");
    }
    if (layout == GemvLayout::kPanels &&
        !cpu::WeightMatrix::panels_fit(rows, cols, cpu::MatrixFormat::kBF16)) {
        return invalid_argument("gemv bench: panels need rows a multiple of 4 and cols of 16, found " +
                                std::to_string(rows) + " x " + std::to_string(cols));
    }
    // Values in [1, 2): ordinary numbers, no denormals to slow anything down.
    std::vector<uint16_t> bits(static_cast<size_t>(rows * cols));
    std::mt19937 rng(1);
    for (uint16_t& b : bits) {
        b = static_cast<uint16_t>(0x3f80 | (rng() & 0x7f));
    }
    cpu::WeightMatrix matrix =
        cpu::WeightMatrix::borrow(bits.data(), rows, cols, cpu::MatrixFormat::kBF16);
    if (layout == GemvLayout::kPanels) {
        matrix = cpu::pack_panels(std::move(matrix));  // owns a copy
        bits = {};
    }
    std::vector<float> x(static_cast<size_t>(cols), 0.5f);
    std::vector<float> y(static_cast<size_t>(rows));
    cpu::ThreadPool pool(n_threads);
    cpu::Matmul matmul(&pool);
    const cpu::MatmulJob job{&matrix, 0, rows, x.data(), 1, y.data()};
    matmul.run(job);
    std::vector<double> seconds;
    const double cpu_start = process_cpu_seconds();
    for (int i = 0; i < repeats; ++i) {
        const auto start = std::chrono::steady_clock::now();
        matmul.run(job);
        seconds.push_back(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    const double cpu = (process_cpu_seconds() - cpu_start) / repeats;
    std::sort(seconds.begin(), seconds.end());
    return GemvTiming{seconds[seconds.size() / 2], seconds.front(), matrix.bytes(), cpu};
}

}  // namespace sluice::inference
