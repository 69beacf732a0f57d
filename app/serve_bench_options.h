#pragma once
// The options of `sluice bench serve` (bench_serve.h), the model settings its in-process server
// gets from them, and the check of what it will run on.
//
// The backend is chosen the way `sluice serve --backend` chooses it: the bench fills a
// ModelSettings and ModelHost opens it through inference::open_backend. One difference is on
// purpose: the server falls back to the CPU when `cuda` is asked for and no GPU is visible, which
// keeps a service up but would make a benchmark report CPU figures under a cuda label. The bench
// therefore refuses that case before it measures anything (serve_bench_device).
//
// Thread safety: value types and free functions, safe from any thread.

#include <string>
#include <vector>

#include "app/cli.h"
#include "app/config.h"
#include "common/result.h"
#include "inference/devices.h"

namespace sluice::app {

struct ServeBenchOptions {
    std::string model;             // empty: the `small` preset, written to a temporary folder
    std::string backend = "cpu";   // cpu | cuda
    std::string weights = "auto";  // /model/weights: auto | f32 | bf16 | int8 | fp8 | int4
    int clients = 16;
    int requests = 2;  // per client
    int prefix_tokens = 2000;
    int max_batch_tokens = ModelSettings{}.max_batch_tokens;
    bool overlap_output = ModelSettings{}.overlap_output;
    int host_sampling_threads = ModelSettings{}.host_sampling_threads;
    bool json = false;
};

// Registers every option of `sluice bench serve` on `command`, writing into `options` (which must
// outlive the parse). --backend takes cpu or cuda; --weights the values /model/weights allows
// (read from the configuration's schema, so that the two lists cannot drift apart).
void add_serve_bench_options(CLI::App& command, ServeBenchOptions& options);

// What a run measures: the backend's name and the device it computes on.
struct ServeBenchDevice {
    std::string backend;  // "cpu" or "cuda"
    std::string device;   // the CPU (describe_machine) or the GPU's name and memory
};

// The device `options.backend` will run on, given what this build has (`features`) and which
// GPUs the process sees (`gpus`, as inference::visible_gpus() answers). For cuda:
// kUnavailable when the build has no CUDA backend, when the GPUs cannot be listed, or when none
// is visible; the message says so and names the cpu alternative. kInvalidArgument for a backend
// other than cpu or cuda.
Result<ServeBenchDevice> serve_bench_device(const std::string& backend,
                                            const inference::BuildFeatures& features,
                                            const Result<std::vector<inference::GpuInfo>>& gpus);

// The settings the bench's ModelHost opens `model_dir` with.
ModelSettings serve_bench_settings(const ServeBenchOptions& options, const std::string& model_dir);

// The batch-1 phase (one client, requests one after another): how many requests and the index in
// the prompt/output mix of its first one; and the untimed requests run before it (each with the
// mix's prompt at its index and 4 output tokens).
struct ServeBenchBatch1 {
    int requests = 3;
    int first_index = 0;
    int warm_up_requests = 0;
    int warm_up_first_index = 0;
};
ServeBenchBatch1 serve_bench_batch1(const std::string& backend);

}  // namespace sluice::app
