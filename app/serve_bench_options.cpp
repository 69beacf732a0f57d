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
           std::to_string(gpu.compute_capability_minor) + " (device " +
           std::to_string(gpu.index) + ")";
}

}  // namespace

void add_serve_bench_options(CLI::App& command, ServeBenchOptions& options) {
    command.add_option("--model", options.model, "DBRX checkpoint folder (default: small preset)");
    command.add_option("--backend", options.backend,
                       "Compute backend: cpu (default) or cuda; cuda without a GPU is refused")
        ->check(CLI::IsMember({"cpu", "cuda"}));
    command.add_option("--weights", options.weights,
                       "Weight format in memory (/model/weights): auto keeps the stored one; "
                       "int8 is the cpu backend's, fp8 and int4 the cuda backend's")
        ->check(CLI::IsMember(allowed_weights()));
    command.add_option("--clients", options.clients, "Concurrent streaming clients")
        ->check(CLI::Range(1, 256));
    command.add_option("--requests", options.requests, "Requests per client")
        ->check(CLI::Range(1, 1000));
    command.add_option("--prefix-tokens", options.prefix_tokens,
                       "Words in the shared-prefix document")
        ->check(CLI::Range(16, 100000));
    command.add_option("--max-batch-tokens", options.max_batch_tokens,
                       "Tokens per forward step (/model/max_batch_tokens): the prompt-chunk "
                       "budget beside the decodes")
        ->check(CLI::Range(16, 65535));
    command.add_flag("--json", options.json, "Print the figures as one JSON object last");
}

Result<ServeBenchDevice> serve_bench_device(
    const std::string& backend, const inference::BuildFeatures& features,
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
                           (visible != nullptr ? " (CUDA_VISIBLE_DEVICES='" +
                                                     std::string(visible) + "')"
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
    // settings.threads stays 0 (every hardware thread): the CPU backend's pool on cpu, unused on
    // cuda.
    return settings;
}

int serve_bench_batch1_requests(const std::string& backend) {
    // cpu: 3, as the CPU figures in docs/benchmarks.md were measured; on 2 cores each batch-1
    // request takes seconds. Those 3 are the mix's first three (three prompt lengths, all with
    // 16 output tokens), so the baseline leans on prompt time. On a GPU a request takes
    // milliseconds, and the whole mix (3 prompt × 3 output lengths) compares like with like
    // against the concurrent phase.
    return backend == "cuda" ? 9 : 3;
}

bool serve_bench_warms_up(const std::string& backend) {
    // cuda: the first step loads the kernels' modules (CUDA's lazy loading) and sets up cuBLAS,
    // which would land in the first batch-1 request. The CPU backend has no such first-use cost
    // worth a request on a 2-core machine, and its figures stay comparable with earlier runs.
    return backend == "cuda";
}

}  // namespace sluice::app
