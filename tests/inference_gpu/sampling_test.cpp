// Sampling on the device: the CUDA kernels choose what the CPU Sampler chooses for the same
// uniform draw, and a seeded request gives the same tokens whichever side samples.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>

#include "gpu_test_support.h"
#include "inference/cpu_backend.h"
#include "inference/cuda/sample.cuh"
#include "inference/cuda_backend.h"
#include "inference/sampling.h"
#include "inference/scheduler.h"
#include "inference_test_support.h"

namespace sluice::inference {
namespace {

SamplingParams random_params(std::mt19937_64& rng) {
    const float temperatures[] = {0.0f, 0.3f, 0.8f, 1.0f, 1.7f};
    const int32_t top_ks[] = {0, 0, 1, 5, 50, 1000000};
    const float top_ps[] = {1.0f, 1.0f, 0.9f, 0.5f, 0.05f};
    const float min_ps[] = {0.0f, 0.0f, 0.05f, 0.3f};
    SamplingParams p;
    p.temperature = temperatures[rng() % 5];
    p.top_k = top_ks[rng() % 6];
    p.top_p = top_ps[rng() % 5];
    p.min_p = min_ps[rng() % 4];
    return p;
}

// Whether the host's choice moves to `device_id` when the draw moves by at most 1e-9 of the
// mass: the draw then sits on a boundary between candidates, where a last-bit difference in a
// probability decides.
bool boundary_case(const SamplingParams& params, std::span<const float> row, double u,
                   int32_t device_id) {
    Sampler sampler(params);
    for (double du : {-1e-9, 1e-9}) {
        const double nudged = std::clamp(u + du, 0.0, std::nextafter(1.0, 0.0));
        if (sampler.sample_with_uniform(row, {}, {}, {}, nudged).id == device_id) {
            return true;
        }
    }
    return false;
}

void check_rows(int64_t n_vocab, int64_t n_rows, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> logits(static_cast<size_t>(n_rows * n_vocab));
    for (int64_t r = 0; r < n_rows; ++r) {
        const float scale = r % 3 == 0 ? 1.0f : (r % 3 == 1 ? 4.0f : 12.0f);
        for (int64_t j = 0; j < n_vocab; ++j) {
            float v = normal(rng) * scale;
            // Every fourth row in steps of 0.25, so that probabilities tie and order by id.
            if (r % 4 == 3) {
                v = std::round(v * 4.0f) / 4.0f;
            }
            logits[static_cast<size_t>(r * n_vocab + j)] = v;
        }
    }
    std::vector<SamplingParams> params;
    std::vector<cuda::DeviceSampleRequest> requests;
    bool any_sorted = false;
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    for (int64_t r = 0; r < n_rows; ++r) {
        params.push_back(random_params(rng));
        const SamplingParams& p = params.back();
        // Rows out of order, to check that each request reads its own row.
        const auto row = static_cast<int32_t>(n_rows - 1 - r);
        requests.push_back({row, p.temperature, p.top_k, p.top_p, p.min_p, uniform(rng)});
        const bool greedy = p.temperature == 0.0f || p.top_k == 1;
        any_sorted = any_sorted || (!greedy && (p.top_k > 0 || p.top_p < 1.0f));
    }
    auto workspace = cuda::sample_rows_workspace_bytes(n_rows, n_vocab);
    REQUIRE(workspace.ok());
    testing::DeviceVec<float> dev_logits(logits);
    testing::DeviceVec<cuda::DeviceSampleRequest> dev_requests(requests);
    testing::DeviceVec<cuda::DeviceSampleResult> dev_results(static_cast<size_t>(n_rows));
    testing::DeviceVec<char> dev_workspace(*workspace);
    const Status launched =
        cuda::sample_rows(dev_logits.get(), n_vocab, dev_requests.get(), n_rows, any_sorted,
                          dev_workspace.get(), *workspace, dev_results.get(), nullptr);
    REQUIRE_MESSAGE(launched.ok(), launched.to_string());
    const auto results = dev_results.host();
    int boundary = 0;
    double max_logprob_error = 0;
    for (int64_t r = 0; r < n_rows; ++r) {
        const auto& req = requests[static_cast<size_t>(r)];
        std::span<const float> row(logits.data() + static_cast<int64_t>(req.row) * n_vocab,
                                   static_cast<size_t>(n_vocab));
        const SamplingParams& p = params[static_cast<size_t>(r)];
        const SampledToken expected = Sampler(p).sample_with_uniform(row, {}, {}, {}, req.u);
        const auto& got = results[static_cast<size_t>(r)];
        CAPTURE(n_vocab);
        CAPTURE(r);
        CAPTURE(p.temperature);
        CAPTURE(p.top_k);
        CAPTURE(p.top_p);
        CAPTURE(p.min_p);
        CAPTURE(req.u);
        if (got.id != expected.id) {
            REQUIRE(boundary_case(p, row, req.u, got.id));
            ++boundary;
            continue;
        }
        const double error = std::fabs(static_cast<double>(got.logprob) - expected.logprob) /
                              std::max(1.0, std::fabs(static_cast<double>(expected.logprob)));
        max_logprob_error = std::max(max_logprob_error, error);
        CHECK(error <= 1e-5);
    }
    MESSAGE("vocab " << n_vocab << ": " << n_rows << " rows, " << boundary
                     << " boundary draws, max logprob error " << max_logprob_error);
    CHECK(boundary <= 1);
}

struct CollectingSink final : RequestSink {
    void on_event(StreamEvent event) override {
        for (const auto& token : event.tokens) {
            ids.push_back(token.id);
            logprobs.push_back(token.logprob);
        }
    }
    void on_finish(const Status& final_status, const Usage&, std::vector<float>) override {
        status = final_status;
        finished = true;
    }
    std::vector<int32_t> ids;
    std::vector<float> logprobs;
    Status status;
    bool finished = false;
};

// Counts the entries the scheduler asked the backend to sample.
class CountingBackend final : public Backend {
public:
    CountingBackend(std::unique_ptr<Backend> inner, bool device)
        : inner_(std::move(inner)), device_(device) {}
    std::string name() const override { return inner_->name(); }
    const ModelConfig& config() const override { return inner_->config(); }
    BackendMemory memory() const override { return inner_->memory(); }
    int64_t active_weight_bytes() const override { return inner_->active_weight_bytes(); }
    Status configure_kv_cache(const KvCacheSpec& spec) override {
        return inner_->configure_kv_cache(spec);
    }
    KvCacheSpec kv_cache_spec() const override { return inner_->kv_cache_spec(); }
    bool samples_on_device() const override { return device_ && inner_->samples_on_device(); }
    int64_t device_sample_capacity() const override {
        return device_ ? inner_->device_sample_capacity() : 0;
    }
    Result<ForwardOutput> forward(const ForwardBatch& batch) override {
        int step_samples = 0;
        for (size_t s = 0; s < batch.sequences.size(); ++s) {
            step_samples += batch.device_sample_of(s) != nullptr ? 1 : 0;
        }
        device_samples += step_samples;
        most_in_one_step = std::max(most_in_one_step, step_samples);
        return inner_->forward(batch);
    }
    Status copy_kv_block(int32_t src, int32_t dst) override {
        return inner_->copy_kv_block(src, dst);
    }
    int device_samples = 0;
    int most_in_one_step = 0;

private:
    std::unique_ptr<Backend> inner_;
    bool device_;
};

struct Run {
    std::vector<std::vector<int32_t>> ids;
    std::vector<std::vector<float>> logprobs;
};

Run generate(Backend& backend, const nlohmann::json& golden, const SamplingParams& sampling,
             int32_t n) {
    REQUIRE(backend.configure_kv_cache({4, 512}).ok());
    SchedulerOptions options;
    options.max_batch_tokens = 32;
    Scheduler scheduler(backend, nullptr, options);
    std::vector<std::shared_ptr<CollectingSink>> sinks;
    uint64_t id = 0;
    for (const auto& c : golden["cases"]) {
        EngineRequest request;
        request.prompt = testing::to_ids(c["ids"]);
        request.sampling = sampling;
        request.sampling.seed += id;
        request.max_tokens = 24;
        request.n = n;
        REQUIRE(scheduler.validate(request).ok());
        auto sink = std::make_shared<CollectingSink>();
        scheduler.add(id++, std::move(request), sink);
        sinks.push_back(sink);
    }
    for (int guard = 0; !scheduler.idle(); ++guard) {
        REQUIRE(guard < 10000);
        auto stepped = scheduler.step();
        REQUIRE_MESSAGE(stepped.ok(), stepped.status().to_string());
    }
    Run run;
    for (const auto& sink : sinks) {
        CHECK(sink->finished);
        CHECK(sink->status.ok());
        run.ids.push_back(sink->ids);
        run.logprobs.push_back(sink->logprobs);
    }
    return run;
}

}  // namespace

TEST_CASE("cuda sampling: the device chooses what the CPU Sampler chooses for the same draw") {
    check_rows(512, 256, 11);
    check_rows(100352, 48, 12);
}

TEST_CASE("cuda sampling: a seeded request gives the CPU backend's tokens") {
    const std::string name = "a_d64_gqa";
    const auto golden = testing::load_json(testing::golden_dir(name) + "/golden.json");
    const std::vector<SamplingParams> cases = {
        {.temperature = 0.8f, .top_p = 0.9f, .seed = 1234},
        {.temperature = 1.0f, .top_k = 20, .min_p = 0.02f, .seed = 99},
    };
    for (const SamplingParams& sampling : cases) {
        for (int32_t n : {1, 2}) {
            auto cpu = open_cpu_backend(testing::golden_dir(name), {WeightFormat::kF32, 0});
            REQUIRE(cpu.ok());
            auto cuda_device =
                open_cuda_backend(testing::golden_dir(name), {WeightFormat::kF32, 0, 64});
            REQUIRE_MESSAGE(cuda_device.ok(), cuda_device.status().to_string());
            auto cuda_host =
                open_cuda_backend(testing::golden_dir(name), {WeightFormat::kF32, 0, 64});
            REQUIRE(cuda_host.ok());
            CountingBackend on_device(std::move(*cuda_device), true);
            CountingBackend on_host(std::move(*cuda_host), false);
            const Run reference = generate(**cpu, golden, sampling, n);
            const Run device = generate(on_device, golden, sampling, n);
            const Run host = generate(on_host, golden, sampling, n);
            CAPTURE(sampling.top_k);
            CAPTURE(n);
            CHECK(on_device.device_samples > 0);
            CHECK(on_host.device_samples == 0);
            // The CUDA backend's own rows sampled on the host and on the device.
            CHECK(device.ids == host.ids);
            // And against the CPU backend's rows (logits within 1e-4 of each other).
            CHECK(device.ids == reference.ids);
            for (size_t r = 0; r < device.logprobs.size() && device.ids == host.ids; ++r) {
                for (size_t t = 0; t < device.logprobs[r].size(); ++t) {
                    CHECK(device.logprobs[r][t] ==
                          doctest::Approx(host.logprobs[r][t]).epsilon(1e-5));
                }
            }
            MESSAGE(name << " top_k " << sampling.top_k << " n " << n << ": "
                         << on_device.device_samples << " tokens chosen on the device");
        }
    }
}

TEST_CASE("cuda sampling: the start-up workspace bounds the rows sampled on the device") {
    const std::string name = "a_d64_gqa";
    const auto golden = testing::load_json(testing::golden_dir(name) + "/golden.json");
    REQUIRE(golden["cases"].size() >= 3);
    CudaBackendOptions options{.weights = WeightFormat::kF32, .max_batch_tokens = 64,
                               .max_sampled_rows = 2};
    auto bounded = open_cuda_backend(testing::golden_dir(name), options);
    REQUIRE_MESSAGE(bounded.ok(), bounded.status().to_string());
    CHECK((*bounded)->device_sample_capacity() == 2);

    // A step asking for more than the capacity is refused before any work.
    REQUIRE((*bounded)->configure_kv_cache({4, 64}).ok());
    const std::vector<int32_t> token = {1};
    const std::vector<std::vector<int32_t>> tables = {{0}, {1}, {2}};
    ForwardBatch batch;
    for (const auto& table : tables) {
        batch.sequences.push_back({token, 0, table, LogitsRows::kLast, false});
        batch.device_sample.push_back(DeviceSampling{});
    }
    const auto refused = (*bounded)->forward(batch);
    CHECK(refused.status().code() == StatusCode::kInvalidArgument);
    CHECK(refused.status().message().find("at most 2") != std::string::npos);

    // The scheduler samples at most that many rows per step on the device, the rest on the
    // host, and the tokens are those of the CPU backend.
    const SamplingParams sampling{.temperature = 0.8f, .top_p = 0.9f, .seed = 77};
    auto cpu = open_cpu_backend(testing::golden_dir(name), {WeightFormat::kF32, 0});
    REQUIRE(cpu.ok());
    CountingBackend counted(std::move(*bounded), true);
    const Run reference = generate(**cpu, golden, sampling, 1);
    const Run device = generate(counted, golden, sampling, 1);
    CHECK(counted.device_samples > 0);
    CHECK(counted.most_in_one_step == 2);
    CHECK(device.ids == reference.ids);

    // A bound that is not positive is refused.
    options.max_sampled_rows = 0;
    CHECK(open_cuda_backend(testing::golden_dir(name), options).status().code() ==
          StatusCode::kInvalidArgument);
}

}  // namespace sluice::inference
