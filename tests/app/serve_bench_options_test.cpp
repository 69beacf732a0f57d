#include "app/serve_bench_options.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "app/bench_report.h"
#include "app/cli.h"

using namespace sluice;
using namespace sluice::app;

namespace {

// Parses `args` as `sluice bench serve` would; the CLI11 exit code (0 when they parse).
int parse(std::vector<std::string> args, ServeBenchOptions& options) {
    CLI::App command("serve");
    add_serve_bench_options(command, options);
    args.insert(args.begin(), "serve");
    std::vector<const char*> argv;
    for (const auto& arg : args) {
        argv.push_back(arg.c_str());
    }
    try {
        command.parse(static_cast<int>(argv.size()), argv.data());
    } catch (const CLI::ParseError& e) {
        return e.get_exit_code();
    }
    return 0;
}

int run_cli(std::vector<std::string> args) {
    args.insert(args.begin(), "sluice");
    std::vector<const char*> argv;
    for (const auto& arg : args) {
        argv.push_back(arg.c_str());
    }
    Cli cli;
    return cli.run(static_cast<int>(argv.size()), argv.data());
}

inference::GpuInfo h200() {
    return {.index = 0,
            .name = "NVIDIA H200",
            .total_memory_bytes = 150754820096ULL,
            .compute_capability_major = 9,
            .compute_capability_minor = 0};
}

std::string refusal(const inference::BuildFeatures& features,
                    const Result<std::vector<inference::GpuInfo>>& gpus) {
    auto device = serve_bench_device("cuda", features, gpus);
    REQUIRE_FALSE(device.ok());
    CHECK(device.status().code() == StatusCode::kUnavailable);
    const std::string message(device.status().message());
    CHECK(message.find("--backend cuda") != std::string::npos);
    CHECK(message.find("--backend cpu") != std::string::npos);
    return message;
}

}  // namespace

TEST_CASE("bench serve options: cpu and the stored weights by default; cuda and fp8 parse") {
    ServeBenchOptions options;
    REQUIRE(parse({}, options) == 0);
    CHECK(options.backend == "cpu");
    CHECK(options.weights == "auto");
    CHECK(options.clients == 16);
    CHECK(options.max_batch_tokens == ModelSettings{}.max_batch_tokens);

    REQUIRE(parse({"--backend", "cuda", "--weights", "fp8", "--clients", "4", "--json"}, options) ==
            0);
    CHECK(options.backend == "cuda");
    CHECK(options.weights == "fp8");
    CHECK(options.clients == 4);
    CHECK(options.json);

    for (const std::string weights : {"f32", "bf16", "int8", "int4"}) {
        CAPTURE(weights);
        ServeBenchOptions each;
        CHECK(parse({"--weights", weights}, each) == 0);
        CHECK(each.weights == weights);
    }
}

TEST_CASE("bench serve options: an unknown backend or weight format is a usage error") {
    ServeBenchOptions options;
    CHECK(parse({"--backend", "auto"}, options) != 0);
    CHECK(parse({"--backend", "gpu"}, options) != 0);
    CHECK(parse({"--weights", "fp16"}, options) != 0);
    CHECK(parse({"--weights", "stored"}, options) != 0);
    CHECK(parse({"--clients", "0"}, options) != 0);
    CHECK(options.backend == "cpu");
    CHECK(options.weights == "auto");
}

TEST_CASE("bench serve options: the server's settings carry the backend, weights and sizes") {
    ServeBenchOptions options;
    options.backend = "cuda";
    options.weights = "int4";
    options.clients = 8;
    options.max_batch_tokens = 1024;
    const ModelSettings settings = serve_bench_settings(options, "/models/small");
    CHECK(settings.path == "/models/small");
    CHECK(settings.backend == "cuda");
    CHECK(settings.weights == "int4");
    CHECK(settings.max_running == 8);
    CHECK(settings.max_queued_requests == 8);
    CHECK(settings.max_batch_tokens == 1024);
    CHECK(serve_bench_settings(ServeBenchOptions{}, "m").backend == "cpu");
    CHECK(serve_bench_settings(ServeBenchOptions{}, "m").max_batch_tokens == 512);
}

TEST_CASE("bench serve options: the cpu phases stay as they were; cuda warms up, runs the mix") {
    const ServeBenchBatch1 cpu = serve_bench_batch1("cpu");
    CHECK(cpu.requests == 3);
    CHECK(cpu.first_index == 0);
    CHECK(cpu.warm_up_requests == 0);
    const ServeBenchBatch1 cuda = serve_bench_batch1("cuda");
    CHECK(cuda.requests == 9);
    CHECK(cuda.warm_up_requests == 3);
    // The same mix (prompt length i % 3, output length (i / 3) % 3), none of the concurrent
    // phase's prompts (indices below 256 clients × 1,000 requests).
    CHECK(cuda.first_index % 9 == 0);
    CHECK(cuda.first_index >= 256 * 1000);
    // Warm-up prompts of their own: past both phases' indices.
    CHECK(cuda.warm_up_first_index >= cuda.first_index + cuda.requests);
}

TEST_CASE("bench serve device: cuda is refused without a CUDA build, a GPU list or a GPU") {
    const std::vector<inference::GpuInfo> one = {h200()};
    CHECK(refusal({.cuda = false}, one).find("no CUDA backend") != std::string::npos);
    CHECK(refusal({.cuda = true}, std::vector<inference::GpuInfo>{}).find("no GPU is visible") !=
          std::string::npos);
    CHECK(refusal({.cuda = true}, unavailable("cudaGetDeviceCount: no CUDA-capable device"))
              .find("cannot list the GPUs: cudaGetDeviceCount") != std::string::npos);

    auto bad = serve_bench_device("auto", {.cuda = true}, one);
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("bench serve device: cuda names the first visible GPU, cpu the machine") {
    auto gpu =
        serve_bench_device("cuda", {.cuda = true}, std::vector<inference::GpuInfo>{h200(), h200()});
    REQUIRE(gpu.ok());
    CHECK(gpu->backend == "cuda");
    CHECK(gpu->device.find("NVIDIA H200") == 0);
    CHECK(gpu->device.find("140.4 GiB") != std::string::npos);
    CHECK(gpu->device.find("compute capability 9.0 (device 0)") != std::string::npos);

    // The CPU does not depend on what the build or the GPUs are.
    auto cpu = serve_bench_device("cpu", {.cuda = false}, not_supported("no cuda"));
    REQUIRE(cpu.ok());
    CHECK(cpu->backend == "cpu");
    CHECK(cpu->device == describe_machine());
}

TEST_CASE("bench serve --backend cuda here: exit 2 before anything is measured") {
    // This machine's answer decides what the command must do; on a GPU machine the command would
    // run the whole benchmark, which is not a unit test's business.
    auto gpus = inference::visible_gpus();
    if (gpus.ok() && !gpus->empty()) {
        MESSAGE("a GPU is visible: the refusal is covered by the cases above only");
        return;
    }
    CHECK(run_cli({"bench", "serve", "--backend", "cuda", "--clients", "1"}) == 2);
    CHECK(run_cli({"bench", "serve", "--backend", "cuda", "--weights", "fp8", "--json"}) == 2);
}
