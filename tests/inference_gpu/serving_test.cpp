// Serving on the CUDA backend through the scheduler: chunked prefills and decodes share steps,
// prompts share prefix blocks, and every request still gets the reference's greedy continuation.
#include <doctest/doctest.h>

#include <map>

#include "inference/cuda_backend.h"
#include "inference/scheduler.h"
#include "inference_test_support.h"

namespace sluice::inference {
namespace {

struct CollectingSink final : RequestSink {
    void on_event(StreamEvent event) override {
        for (const auto& token : event.tokens) {
            ids.push_back(token.id);
        }
    }
    void on_finish(const Status& final_status, const Usage&, std::vector<float>) override {
        status = final_status;
        finished = true;
    }
    std::vector<int32_t> ids;
    Status status;
    bool finished = false;
};

// Forwards to the CUDA backend and records, per step, whether it mixed a multi-token prefill
// chunk with single-token decodes.
class RecordingBackend final : public Backend {
public:
    explicit RecordingBackend(std::unique_ptr<Backend> inner) : inner_(std::move(inner)) {}
    std::string name() const override { return inner_->name(); }
    const ModelConfig& config() const override { return inner_->config(); }
    BackendMemory memory() const override { return inner_->memory(); }
    int64_t active_weight_bytes() const override { return inner_->active_weight_bytes(); }
    Status configure_kv_cache(const KvCacheSpec& spec) override {
        return inner_->configure_kv_cache(spec);
    }
    KvCacheSpec kv_cache_spec() const override { return inner_->kv_cache_spec(); }
    Result<ForwardOutput> forward(const ForwardBatch& batch) override {
        bool prefill = false;
        bool decode = false;
        for (const SequenceStep& seq : batch.sequences) {
            prefill = prefill || seq.tokens.size() > 1;
            decode = decode || (seq.tokens.size() == 1 && seq.n_past > 0);
        }
        mixed_steps += prefill && decode ? 1 : 0;
        return inner_->forward(batch);
    }
    Status copy_kv_block(int32_t src, int32_t dst) override {
        ++copies;
        return inner_->copy_kv_block(src, dst);
    }
    int mixed_steps = 0;
    int copies = 0;

private:
    std::unique_ptr<Backend> inner_;
};

}  // namespace

TEST_CASE("cuda serving: mixed prefill and decode batches give the reference's greedy ids") {
    for (const char* name : {"a_d64_gqa", "b_d128_clip8"}) {
        const auto golden = testing::load_json(testing::golden_dir(name) + "/golden.json");
        auto opened =
            open_cuda_backend(testing::golden_dir(name), {WeightFormat::kAsStored, 0, 64});
        REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
        RecordingBackend backend(std::move(*opened));
        REQUIRE(backend.configure_kv_cache({4, 256}).ok());
        SchedulerOptions options;
        options.max_batch_tokens = 12;  // prompts arrive in chunks beside running decodes
        Scheduler scheduler(backend, nullptr, options);
        std::vector<std::pair<std::vector<int32_t>, std::shared_ptr<CollectingSink>>> runs;
        uint64_t id = 0;
        // Every golden case twice (the second shares the first's prefix blocks), in reverse
        // order so that short prompts decode while long ones are still prefilling.
        for (int round = 0; round < 2; ++round) {
            for (auto it = golden["cases"].rbegin(); it != golden["cases"].rend(); ++it) {
                EngineRequest request;
                request.prompt = testing::to_ids((*it)["ids"]);
                request.sampling.temperature = 0;
                request.max_tokens = 16;
                REQUIRE(scheduler.validate(request).ok());
                auto sink = std::make_shared<CollectingSink>();
                scheduler.add(id++, std::move(request), sink);
                runs.emplace_back(testing::to_ids((*it)["greedy"]), sink);
            }
        }
        for (int guard = 0; !scheduler.idle(); ++guard) {
            REQUIRE(guard < 10000);
            auto stepped = scheduler.step();
            REQUIRE_MESSAGE(stepped.ok(), stepped.status().to_string());
        }
        for (const auto& [expected, sink] : runs) {
            CHECK(sink->finished);
            CHECK(sink->status.ok());
            CHECK(sink->ids == expected);
        }
        INFO(name);
        CHECK(backend.mixed_steps > 0);
        MESSAGE(std::string(name) << ": " << backend.mixed_steps << " mixed prefill+decode steps, "
                                  << backend.copies << " block copies");
    }
}

}  // namespace sluice::inference
