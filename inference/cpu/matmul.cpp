#include "inference/cpu/matmul.h"

#include <cblas.h>

#include <algorithm>
#include <vector>

#include "inference/cpu/kernels.h"

namespace sluice::inference::cpu {

namespace {

// Weight rows per task: enough work to amortise the task hand-out, small enough to balance; a
// multiple of the kernels' tiles (4 rows for one token, 3 for several), so that only a matrix's
// last task has rows outside a tile.
constexpr int64_t kRowsPerTask = 24;
// Weight rows widened per sgemm panel (panel bytes = rows * cols * 4).
constexpr int64_t kPanelRows = 256;

// Rows [begin, end) of the job's output channels, for all of its tokens.
void run_rows(const MatmulJob& job, int64_t begin, int64_t end) {
    const RowKernels& kernels = row_kernels();
    const WeightMatrix& w = *job.weights;
    const int64_t k = w.cols();
    const int64_t row = job.row_begin + begin;
    float* y = job.y + begin;
    switch (w.format()) {
        case MatrixFormat::kF32:
            kernels.f32(static_cast<const float*>(w.data()) + row * k, end - begin, k, job.x,
                        job.m, y, job.n_rows);
            return;
        case MatrixFormat::kBF16:
            if (w.layout() == MatrixLayout::kPanels) {
                kernels.bf16_panels(static_cast<const uint16_t*>(w.data()), row, end - begin, k,
                                    job.x, job.m, y, job.n_rows);
                return;
            }
            kernels.bf16(static_cast<const uint16_t*>(w.data()) + row * k, end - begin, k, job.x,
                         job.m, y, job.n_rows);
            return;
        case MatrixFormat::kInt8:
            kernels.i8(static_cast<const int8_t*>(w.data()) + row * k, w.scales() + row,
                       end - begin, k, job.x, job.m, y, job.n_rows);
            return;
    }
}

}  // namespace

void Matmul::run_blas(const MatmulJob& job) {
    const WeightMatrix& w = *job.weights;
    const int64_t k = w.cols();
    // One task per panel of weight rows, each a single-threaded sgemm on its own output columns:
    // the pool is the only parallelism, so OpenBLAS runs no threads of its own (Matmul's
    // constructor), which would otherwise compete with the pool's for the same cores and spin
    // (sched_yield) between calls.
    const int64_t n_panels = (job.n_rows + kPanelRows - 1) / kPanelRows;
    pool_->parallel_for(n_panels, [&](int64_t panel) {
        const int64_t p = panel * kPanelRows;
        const int64_t n = std::min(kPanelRows, job.n_rows - p);
        const float* rows = nullptr;
        if (w.format() == MatrixFormat::kF32) {
            rows = static_cast<const float*>(w.data()) + (job.row_begin + p) * k;
        } else {
            // Widened rows of this panel; kept per thread across calls (kPanelRows * k floats).
            thread_local std::vector<float> widened;
            widened.resize(static_cast<size_t>(kPanelRows * k));
            for (int64_t r = 0; r < n; ++r) {
                w.row_to_f32(job.row_begin + p + r, widened.data() + r * k);
            }
            rows = widened.data();
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(job.m),
                    static_cast<int>(n), static_cast<int>(k), 1.0f, job.x, static_cast<int>(k),
                    rows, static_cast<int>(k), 0.0f, job.y + p, static_cast<int>(job.n_rows));
    });
}

Matmul::Matmul(ThreadPool* pool) : pool_(pool) {
    // Process-wide: every sgemm of the process then runs on its caller's thread only.
    static const bool single = [] {
        openblas_set_num_threads(1);
        return true;
    }();
    (void)single;
}

void Matmul::run(const MatmulJob& job) { run_grouped(std::span<const MatmulJob>(&job, 1)); }

void Matmul::run_grouped(std::span<const MatmulJob> jobs) {
    // Tasks of the small jobs, as (job, first row) pairs, run in one parallel loop.
    struct Task {
        const MatmulJob* job;
        int64_t begin;
    };
    std::vector<Task> tasks;
    for (const MatmulJob& job : jobs) {
        if (job.m == 0 || job.n_rows == 0) {
            continue;
        }
        if (job.m >= kBlasMinTokens) {
            run_blas(job);
            continue;
        }
        for (int64_t begin = 0; begin < job.n_rows; begin += kRowsPerTask) {
            tasks.push_back({&job, begin});
        }
    }
    pool_->parallel_for(static_cast<int64_t>(tasks.size()), [&](int64_t i) {
        const Task& task = tasks[static_cast<size_t>(i)];
        run_rows(*task.job, task.begin, std::min(task.begin + kRowsPerTask, task.job->n_rows));
    });
}

}  // namespace sluice::inference::cpu
