// The GPU memory plan (pure arithmetic, checked without a GPU) and the backend choice with its
// fallback to the CPU where no GPU is visible.
#include "inference/gpu_memory_plan.h"

#include <doctest/doctest.h>

#include "inference/backend_factory.h"
#include "inference/devices.h"
#include "inference_test_support.h"

namespace sluice::inference {

TEST_CASE("gpu memory plan: kv cache, activations and the refusal message") {
    ModelConfig config;  // DBRX-shaped numbers
    config.d_model = 6144;
    config.n_head = 48;
    config.n_head_kv = 8;
    config.n_layer = 40;
    config.n_expert = 16;
    config.n_expert_used = 4;
    config.n_ff = 10752;
    config.n_vocab = 100352;
    // K and V, 40 layers, 1000 blocks of 16 positions, 8 x 128 values, fp32.
    CHECK(gpu_kv_cache_bytes(config, {16, 1000}) == 2LL * 40 * 1000 * 16 * 1024 * 4);
    CHECK(gpu_kv_cache_bytes(config, {16, 0}) == 0);
    CHECK(gpu_activation_bytes(config, 2) == 2 * gpu_activation_bytes(config, 1));
    // The split down product's partial sums serve decode steps only (up to 32 tokens), so past
    // them a token costs only its own buffers.
    CHECK(gpu_activation_bytes(config, 64) - gpu_activation_bytes(config, 63) <
          gpu_activation_bytes(config, 2) - gpu_activation_bytes(config, 1));

    const GpuMemoryPlan plan =
        plan_gpu_memory(config, 263LL << 30, 512, {16, 1000}, /*sampling_bytes=*/98LL << 20);
    CHECK(plan.weight_bytes == 263LL << 30);
    CHECK(plan.sampling_bytes == 98LL << 20);
    CHECK(plan.total() == plan.weight_bytes + plan.activation_bytes + plan.workspace_bytes +
                              plan.sampling_bytes + plan.kv_cache_bytes);
    CHECK(plan.describe().find("sampling 98.0 MiB") != std::string::npos);
    CHECK(check_gpu_memory_plan(plan, plan.total(), "cuda device 0").ok());
    const Status refused = check_gpu_memory_plan(plan, 139LL << 30, "cuda device 0");
    CHECK(refused.code() == StatusCode::kResourceExhausted);
    CHECK(refused.message().find("cuda device 0: needs") == 0);
    CHECK(refused.message().find("weights 263.0 GiB") != std::string::npos);
    CHECK(refused.message().find("139.0 GiB available") != std::string::npos);
}

TEST_CASE("gpu memory plan: split-K attention's workspace covers max_seq_len for decode steps") {
    ModelConfig config;
    config.d_model = 6144;
    config.n_head = 48;
    config.n_head_kv = 8;
    config.max_seq_len = 32768;
    // 64 partitions of 512 positions; per (token, head, partition) 128 values, a max and a sum.
    CHECK(gpu_split_k_floats(config, 1) == 48LL * 64 * 130);
    // Steps of more than 32 tokens never split, so the workspace stops growing there.
    CHECK(gpu_split_k_floats(config, 32) == 32 * gpu_split_k_floats(config, 1));
    CHECK(gpu_split_k_floats(config, 2048) == gpu_split_k_floats(config, 32));
    config.max_seq_len = 32769;  // a partial last partition counts
    CHECK(gpu_split_k_floats(config, 1) == 48LL * 65 * 130);
}

TEST_CASE("format_bytes picks the unit") {
    CHECK(format_bytes(512) == "512 B");
    CHECK(format_bytes(1536) == "1.5 KiB");
    CHECK(format_bytes(3LL << 30) == "3.0 GiB");
}

TEST_CASE("backend kinds parse, and cuda falls back to the cpu without a GPU") {
    CHECK(parse_backend_kind("auto") == BackendKind::kAuto);
    CHECK(parse_backend_kind("cpu") == BackendKind::kCpu);
    CHECK(parse_backend_kind("cuda") == BackendKind::kCuda);
    CHECK_FALSE(parse_backend_kind("gpu").has_value());
    CHECK(resolve_backend_kind(BackendKind::kCpu) == BackendKind::kCpu);

    auto gpus = visible_gpus();
    const bool have_gpu = gpus.ok() && !gpus->empty();
    const BackendKind expected = have_gpu ? BackendKind::kCuda : BackendKind::kCpu;
    CHECK(resolve_backend_kind(BackendKind::kCuda) == expected);
    CHECK(resolve_backend_kind(BackendKind::kAuto) == expected);

    const std::string dir = testing::golden_dir("a_d64_gqa");
    for (const BackendKind kind : {BackendKind::kCuda, BackendKind::kAuto, BackendKind::kCpu}) {
        BackendOptions options;
        options.kind = kind;
        options.n_threads = 1;
        auto backend = open_backend(dir, options);
        REQUIRE_MESSAGE(backend.ok(), backend.status().to_string());
        const bool cuda = kind != BackendKind::kCpu && have_gpu;
        CHECK((*backend)->name() == (cuda ? "cuda" : "cpu"));
    }
}

}  // namespace sluice::inference
