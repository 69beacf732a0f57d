#include "inference/engine.h"

#include <algorithm>
#include <optional>

#include "common/log.h"

namespace sluice::inference {

namespace detail {

// One request's results: written by the engine thread, read by the handle's owner.
class RequestChannel final : public RequestSink {
public:
    void on_event(StreamEvent event) override {
        std::lock_guard lock(mutex);
        events.push_back(std::move(event));
        cv.notify_all();
    }
    void on_prompt_logprobs(std::vector<SampledToken> scores) override {
        std::lock_guard lock(mutex);
        prompt_scores = std::move(scores);
    }
    void on_finish(const Status& final_status, const Usage& final_usage,
                   std::vector<float> final_embedding) override {
        std::lock_guard lock(mutex);
        finished = true;
        status = final_status;
        usage = final_usage;
        embedding = std::move(final_embedding);
        cv.notify_all();
    }

    mutable std::mutex mutex;
    std::condition_variable cv;
    std::deque<StreamEvent> events;     // guarded by mutex
    bool finished = false;              // guarded by mutex
    Status status;                      // guarded by mutex
    Usage usage;                        // guarded by mutex
    std::vector<float> embedding;       // guarded by mutex
    std::optional<std::vector<SampledToken>> prompt_scores;  // guarded by mutex
};

// What callers hand the engine thread, and the statistics it hands back.
struct EngineInbox {
    struct Pending {
        uint64_t id = 0;
        EngineRequest request;
        std::shared_ptr<RequestChannel> channel;
    };

    void cancel(uint64_t id) {
        std::lock_guard lock(mutex);
        cancels.push_back(id);
        cv.notify_one();
    }

    std::mutex mutex;
    std::condition_variable cv;
    std::vector<Pending> adds;      // guarded by mutex
    std::vector<uint64_t> cancels;  // guarded by mutex
    bool stopped = false;           // guarded by mutex
    Status failed;                  // guarded by mutex; set when the backend stopped for good
    EngineStats stats;              // guarded by mutex; queued counts requests not yet running
};

}  // namespace detail

RequestHandle::RequestHandle(uint64_t id, std::shared_ptr<detail::RequestChannel> channel,
                             std::shared_ptr<detail::EngineInbox> inbox)
    : id_(id), channel_(std::move(channel)), inbox_(std::move(inbox)) {}

RequestHandle::RequestHandle(RequestHandle&& other) noexcept = default;

RequestHandle& RequestHandle::operator=(RequestHandle&& other) noexcept {
    if (this != &other) {
        cancel();
        id_ = other.id_;
        channel_ = std::move(other.channel_);
        inbox_ = std::move(other.inbox_);
    }
    return *this;
}

RequestHandle::~RequestHandle() { cancel(); }

void RequestHandle::cancel() {
    if (!channel_) {
        return;
    }
    {
        std::lock_guard lock(channel_->mutex);
        if (channel_->finished) {
            return;
        }
    }
    inbox_->cancel(id_);
}

RequestHandle::Poll RequestHandle::next(StreamEvent* event, std::chrono::milliseconds wait) {
    std::unique_lock lock(channel_->mutex);
    channel_->cv.wait_for(lock, wait,
                          [&] { return !channel_->events.empty() || channel_->finished; });
    if (!channel_->events.empty()) {
        *event = std::move(channel_->events.front());
        channel_->events.pop_front();
        return Poll::kEvent;
    }
    return channel_->finished ? Poll::kFinished : Poll::kPending;
}

Status RequestHandle::status() const {
    std::lock_guard lock(channel_->mutex);
    return channel_->status;
}

Usage RequestHandle::usage() const {
    std::lock_guard lock(channel_->mutex);
    return channel_->usage;
}

std::vector<float> RequestHandle::embedding() const {
    std::lock_guard lock(channel_->mutex);
    return channel_->embedding;
}

std::optional<std::vector<SampledToken>> RequestHandle::prompt_logprobs() const {
    std::lock_guard lock(channel_->mutex);
    return channel_->prompt_scores;
}

Engine::Engine(Private, std::unique_ptr<Backend> backend, std::shared_ptr<const Tokenizer> tokenizer,
               EngineOptions options)
    : backend_(std::move(backend)),
      tokenizer_(std::move(tokenizer)),
      options_(options),
      config_(backend_->config()),
      scheduler_(std::make_unique<Scheduler>(*backend_, tokenizer_.get(), options.scheduler)),
      inbox_(std::make_shared<detail::EngineInbox>()) {}

Result<std::unique_ptr<Engine>> Engine::open(std::unique_ptr<Backend> backend,
                                             std::shared_ptr<const Tokenizer> tokenizer,
                                             EngineOptions options) {
    SLUICE_RETURN_IF_ERROR(backend->configure_kv_cache(options.kv_cache));
    auto engine =
        std::make_unique<Engine>(Private{}, std::move(backend), std::move(tokenizer), options);
    Engine* raw = engine.get();
    engine->thread_ = std::jthread([raw](std::stop_token stop) { raw->run(stop); });
    return engine;
}

Engine::~Engine() {
    {
        std::lock_guard lock(inbox_->mutex);
        inbox_->stopped = true;
        inbox_->cv.notify_all();
    }
    if (thread_.joinable()) {
        thread_.join();
    }
}

Result<RequestHandle> Engine::submit(EngineRequest request) {
    // validate() reads only what never changes after construction (config, cache size).
    SLUICE_RETURN_IF_ERROR(scheduler_->validate(request));
    std::lock_guard lock(inbox_->mutex);
    if (!inbox_->failed.ok()) {
        return inbox_->failed;
    }
    if (inbox_->stopped) {
        return unavailable("the engine is stopped");
    }
    const int64_t queued = static_cast<int64_t>(inbox_->adds.size()) + inbox_->stats.queued;
    if (queued >= options_.max_queued) {
        ++inbox_->stats.requests_rejected;
        return Status(StatusCode::kResourceExhausted,
                      "the engine is at capacity: " + std::to_string(queued) +
                          " requests are waiting; retry later");
    }
    const uint64_t id = next_id_.fetch_add(1);
    auto channel = std::make_shared<detail::RequestChannel>();
    inbox_->adds.push_back({id, std::move(request), channel});
    ++inbox_->stats.requests_submitted;
    inbox_->cv.notify_one();
    return RequestHandle(id, std::move(channel), inbox_);
}

Status Engine::check_capacity() {
    std::lock_guard lock(inbox_->mutex);
    if (!inbox_->failed.ok()) {
        return inbox_->failed;
    }
    const int64_t queued = static_cast<int64_t>(inbox_->adds.size()) + inbox_->stats.queued;
    if (queued >= options_.max_queued) {
        ++inbox_->stats.requests_rejected;
        return Status(StatusCode::kResourceExhausted,
                      "the engine is at capacity: " + std::to_string(queued) +
                          " requests are waiting; retry later");
    }
    return Status();
}

EngineStats Engine::stats() const {
    std::lock_guard lock(inbox_->mutex);
    EngineStats stats = inbox_->stats;
    stats.queued += static_cast<int32_t>(inbox_->adds.size());
    return stats;
}

// How often an idle engine asks its backend whether it can still run steps.
constexpr std::chrono::milliseconds kIdleHealthTick{250};

void Engine::run(std::stop_token stop) {
    bool blocked = false;  // the last step could run nothing: wait for a change or a tick
    while (!stop.stop_requested()) {
        std::vector<detail::EngineInbox::Pending> adds;
        std::vector<uint64_t> cancels;
        const bool idle = scheduler_->idle();
        {
            std::unique_lock lock(inbox_->mutex);
            auto woken = [&] {
                return inbox_->stopped || !inbox_->adds.empty() || !inbox_->cancels.empty();
            };
            if (idle) {
                // Idle, the backend is still watched: a parallel group can fail with no step
                // running (a node of an engine spanning nodes died), and the engine's failure
                // (and /readyz) should not wait for the next request to find it out.
                if (!inbox_->cv.wait_for(lock, kIdleHealthTick, woken)) {
                    lock.unlock();
                    if (const Status health = backend_->health(); !health.ok()) {
                        stop_serving(health);
                        return;
                    }
                    continue;
                }
            } else if (blocked) {
                // Deadlines still need checking while every waiting request is blocked.
                inbox_->cv.wait_for(lock, std::chrono::milliseconds(5), woken);
            }
            if (inbox_->stopped) {
                break;
            }
            adds.swap(inbox_->adds);
            cancels.swap(inbox_->cancels);
            // Until the next statistics update these are waiting in the scheduler.
            inbox_->stats.queued += static_cast<int32_t>(adds.size());
        }
        for (auto& pending : adds) {
            scheduler_->add(pending.id, std::move(pending.request), std::move(pending.channel));
        }
        for (uint64_t id : cancels) {
            scheduler_->cancel(id);
        }
        Result<bool> progressed = scheduler_->step();
        if (!progressed.ok()) {
            log::error("engine", "forward step failed",
                       {{"error", progressed.status().message()}});
            const Status health = backend_->health();
            if (!health.ok()) {
                stop_serving(health);
                return;
            }
        }
        blocked = progressed.ok() && !*progressed;
        SchedulerStats stats = scheduler_->stats();
        std::lock_guard lock(inbox_->mutex);
        inbox_->stats.scheduler = stats;
        inbox_->stats.queued = stats.waiting_requests;
    }
    scheduler_->fail_all(unavailable("the engine stopped"));
    std::lock_guard lock(inbox_->mutex);
    for (auto& pending : inbox_->adds) {
        pending.channel->on_finish(unavailable("the engine stopped"), {}, {});
    }
    inbox_->adds.clear();
}

void Engine::stop_serving(const Status& health) {
    const Status why = unavailable("the model stopped serving: " + health.message());
    log::error("engine", "the backend cannot run steps any more; the engine stops serving",
               {{"error", health.message()}});
    scheduler_->fail_all(why);
    std::vector<detail::EngineInbox::Pending> adds;
    {
        std::lock_guard lock(inbox_->mutex);
        inbox_->failed = why;
        adds.swap(inbox_->adds);
        inbox_->stats.queued = 0;
    }
    for (auto& pending : adds) {
        pending.channel->on_finish(why, {}, {});
    }
    if (options_.on_failure) {
        options_.on_failure(why);
    }
}

Result<std::vector<std::vector<float>>> Engine::embed(std::span<const std::string> texts,
                                                      Usage* usage) {
    if (tokenizer_ == nullptr) {
        return failed_precondition("embeddings need a tokenizer; this model has none");
    }
    std::vector<std::vector<int32_t>> prompts;
    for (size_t i = 0; i < texts.size(); ++i) {
        Result<std::vector<TokenId>> ids = tokenizer_->encode(texts[i]);
        if (!ids.ok()) {
            return Status(ids.status().code(),
                          "input[" + std::to_string(i) + "]: " + ids.status().message());
        }
        prompts.push_back(std::move(*ids));
    }
    return embed_ids(prompts, usage);
}

Result<std::vector<std::vector<float>>> Engine::embed_ids(
    std::span<const std::vector<int32_t>> prompts, Usage* usage) {
    // A call keeps at most a quarter of the queue's places, so that a batch of any size fits
    // beside other callers: its inputs go in as earlier ones finish. Only when none of its
    // inputs is in the engine does a full queue refuse the call (kResourceExhausted).
    const size_t window = std::max<size_t>(1, static_cast<size_t>(options_.max_queued) / 4);
    std::vector<std::optional<RequestHandle>> handles(prompts.size());
    std::vector<std::vector<float>> vectors(prompts.size());
    Usage total;
    auto report_usage = [&] {
        if (usage != nullptr) {
            *usage = total;  // what was computed is counted, also when the call fails
        }
    };
    size_t submitted = 0;
    size_t finished = 0;
    while (finished < prompts.size()) {
        while (submitted < prompts.size() && submitted - finished < window) {
            EngineRequest request;
            request.prompt = prompts[submitted];
            request.embed = true;
            Result<RequestHandle> handle = submit(std::move(request));
            if (!handle.ok()) {
                const bool wait_for_own =
                    handle.status().code() == StatusCode::kResourceExhausted &&
                    submitted > finished;
                if (wait_for_own) {
                    break;  // a place frees when the oldest of ours finishes
                }
                report_usage();  // the handles still in flight cancel as they are dropped
                return Status(handle.status().code(), "input[" + std::to_string(submitted) +
                                                          "]: " + handle.status().message());
            }
            handles[submitted++].emplace(std::move(*handle));
        }
        RequestHandle& oldest = *handles[finished];
        StreamEvent ignored;
        while (oldest.next(&ignored, std::chrono::seconds(1)) != RequestHandle::Poll::kFinished) {
        }
        total.prompt_tokens += oldest.usage().prompt_tokens;
        if (Status status = oldest.status(); !status.ok()) {
            report_usage();
            return Status(status.code(),
                          "input[" + std::to_string(finished) + "]: " + status.message());
        }
        vectors[finished] = oldest.embedding();
        handles[finished++].reset();
    }
    report_usage();
    return vectors;
}

}  // namespace sluice::inference
