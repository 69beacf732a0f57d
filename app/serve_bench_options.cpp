#include "app/serve_bench_options.h"

#include <cstdlib>

#include "app/bench_report.h"

namespace sluice::app {
namespace {

// The values /model/weights allows, as the configuration's schema lists them.
std::vector<std::string> allowed_weights() {
    const nlohmann::json schema = config_schema();
    return schema.at("properties")
        .at("model")
        .at("properties")
        .at("weights")
        .at("enum")
        .get<std::vector<std::string>>();
}

std::string describe_gpu(const inference::GpuInfo& gpu) {
    return gpu.name + ", " +
           format_fixed(static_cast<double>(gpu.total_memory_bytes) / (1024.0 * 1024 * 1024), 1) +
           " GiB, compute capability " + std::to_string(gpu.compute_capability_major) + "." +
           std::to_string(gpu.compute_capability_minor) + " (device " + std::to_string(gpu.index) +
           ")";
}

}  // namespace

void add_serve_bench_options(CLI::App& command, ServeBenchOptions& options) {
    command.add_option("--model", options.model, "DBRX checkpoint folder (default: small preset)");
    command
        .add_option("--backend", options.backend,
                    "Compute backend: cpu (default) or cuda; cuda without a GPU is refused")
        ->check(CLI::IsMember({"cpu", "cuda"}));
    command
        .add_option("--weights", options.weights,
                    "Weight format in memory (/model/weights): auto keeps the stored one; "
                    "int8 is the cpu backend's, fp8 and int4 the cuda backend's")
        ->check(CLI::IsMember(allowed_weights()));
    command.add_option("--clients", options.clients, "Concurrent streaming clients")
        ->check(CLI::Range(1, 256));
    command.add_option("--requests", options.requests, "Requests per client")
        ->check(CLI::Range(1, 1000));
    command
        .add_option("--prefix-tokens", options.prefix_tokens, "Words in the shared-prefix document")
        ->check(CLI::Range(16, 100000));
    command
        .add_option("--max-batch-tokens", options.max_batch_tokens,
                    "Tokens per forward step (/model/max_batch_tokens): the prompt-chunk "
                    "budget beside the decodes")
        ->check(CLI::Range(16, 65535));
    command.add_option("--overlap-output", options.overlap_output,
                       "Release each step's text during the next forward pass "
                       "(/model/overlap_output): true or false");
    command
        .add_option("--host-sampling-threads", options.host_sampling_threads,
                    "Threads making a step's host-side choices (/model/host_sampling_threads)")
        ->check(CLI::Range(0, 2));
    command.add_flag("--json", options.json, "Print the figures as one JSON object last");
}

Result<ServeBenchDevice> serve_bench_device(const std::string& backend,
                                            const inference::BuildFeatures& features,
                                            const Result<std::vector<inference::GpuInfo>>& gpus) {
    if (backend == "cpu") {
        return ServeBenchDevice{"cpu", describe_machine()};
    }
    if (backend != "cuda") {
        return invalid_argument("--backend: '" + backend + "', expected cpu or cuda");
    }
    const std::string instead = "; `sluice bench serve --backend cpu` measures the CPU";
    if (!features.cuda) {
        return unavailable("--backend cuda: this build has no CUDA backend (configure with "
                           "SLUICE_CUDA=ON)" + instead);
    }
    if (!gpus.ok()) {
        return unavailable("--backend cuda: cannot list the GPUs: " + gpus.status().message() +
                           instead);
    }
    if (gpus->empty()) {
        const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
        return unavailable("--backend cuda: no GPU is visible to this process" +
                           (visible != nullptr
                                ? " (CUDA_VISIBLE_DEVICES='" + std::string(visible) + "')"
                                : std::string()) +
                           instead);
    }
    // The backend factory opens the first visible GPU (inference::open_backend, device 0), and
    // the CUDA backend does not name its device itself: the runtime's name for that GPU is it.
    return ServeBenchDevice{"cuda", describe_gpu(gpus->front())};
}

ModelSettings serve_bench_settings(const ServeBenchOptions& options, const std::string& model_dir) {
    ModelSettings settings;
    settings.path = model_dir;
    settings.backend = options.backend;
    settings.weights = options.weights;
    // A queue and a running set of N: every client runs at once, and the overload burst of 4N
    // finds the queue full. On cuda max_running also sizes the rows sampled on the device.
    settings.max_queued_requests = options.clients;
    settings.max_running = options.clients;
    // The serve default (512) on both backends: the bench measures the server as `sluice serve`
    // runs it. A GPU could take larger prompt chunks per step; --max-batch-tokens measures that.
    settings.max_batch_tokens = options.max_batch_tokens;
    settings.overlap_output = options.overlap_output;
    settings.host_sampling_threads = options.host_sampling_threads;
    // settings.threads stays 0 (every hardware thread): the CPU backend's pool on cpu, unused on
    // cuda.
    return settings;
}

ServeBenchBatch1 serve_bench_batch1(const std::string& backend) {
    if (backend != "cuda") {
        // cpu: as the CPU figures in docs/benchmarks.md were measured. On 2 cores a batch-1
        // request takes seconds, so 3: the mix's first three (three prompt lengths, each with 16
        // output tokens), which the concurrent phase then repeats from the prefix cache.
        return {.requests = 3, .first_index = 0, .warm_up_requests = 0, .warm_up_first_index = 0};
    }
    // cuda: a request takes milliseconds, so the whole mix (3 prompt × 3 output lengths), which
    // compares like with like against the concurrent phase. Its prompts start past every index
    // the concurrent phase can use (at most 256 clients × 1,000 requests) and at a multiple of 9,
    // so that it has the same mix but none of its prompts is in the prefix cache for the other
    // phase. Three untimed requests first, one per prompt length (prompts of their own): the
    // kernels' module loading (CUDA's lazy loading) and cuBLAS's set-up for each step shape would
    // otherwise land in the first measured requests.
    return {.requests = 9,
            .first_index = 9 * 30000,
            .warm_up_requests = 3,
            .warm_up_first_index = 9 * 40000};
}

}  // namespace sluice::app
