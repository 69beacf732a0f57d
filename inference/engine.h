#pragma once
// Engine: the serving engine. It owns a Backend and runs the Scheduler (scheduler.h) on its own
// thread; callers on any thread submit requests and read their results from a RequestHandle.
// Callers never block the step loop: submit() and cancel() put work in an inbox under a short
// lock, and results come back through a per-request queue.
//
//   auto engine = Engine::open(std::move(backend), tokenizer, options);
//   auto handle = (*engine)->submit(request);        // kResourceExhausted when the queue is full
//   StreamEvent event;
//   while (handle->next(&event, 100ms) != RequestHandle::Poll::kFinished) { ... }
//   handle->status(); handle->usage();
//
// Queueing: at most max_queued requests wait for admission (submitted, not yet running); beyond
// that submit() answers kResourceExhausted at once, so an overloaded server sheds load instead of
// growing its queue. Requests admitted are never dropped for load: they may be preempted and
// recomputed, but they finish.
//
// Cancellation: RequestHandle::cancel() (also on destruction of an unfinished handle) asks the
// engine thread to end the request; its KV blocks are freed at the start of the next step.
//
// Backend failure: when a step fails and the backend then reports it cannot run steps any more
// (Backend::health, e.g. a rank of a parallel engine failed), the engine stops serving: the
// requests of that step end with the backend's error, every other request and every later
// submit() with kUnavailable "the model stopped serving: <why>", and options.on_failure is
// called so that the host can report it (/readyz).
//
// Errors from submit(): kInvalidArgument (Scheduler::validate), kResourceExhausted (queue full),
// kUnavailable (engine stopped, or stopped serving). A request ends with OK, kCancelled,
// kDeadlineExceeded (timeout_s) or a backend error.
//
// Thread safety: Engine is thread-safe; a RequestHandle is owned by one thread. The engine must
// outlive its handles.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "inference/backend.h"
#include "inference/scheduler.h"
#include "inference/tokenizer.h"

namespace sluice::inference {

struct EngineOptions {
    KvCacheSpec kv_cache;  // configured on the backend by open()
    SchedulerOptions scheduler;
    int32_t max_queued = 256;  // requests waiting for admission
    // Called once, on the engine thread, when the backend reports after a failed step that it
    // cannot run steps any more (Backend::health): the engine has then stopped serving. May be
    // empty.
    std::function<void(const Status&)> on_failure;
};

struct EngineStats {
    SchedulerStats scheduler;
    int64_t requests_submitted = 0;
    int64_t requests_rejected = 0;  // queue full
    int32_t queued = 0;             // requests waiting for admission
};

class Engine;

namespace detail {
class RequestChannel;
struct EngineInbox;
}  // namespace detail

class RequestHandle {
public:
    enum class Poll { kEvent, kPending, kFinished };

    RequestHandle(RequestHandle&&) noexcept;
    RequestHandle& operator=(RequestHandle&&) noexcept;
    ~RequestHandle();  // cancels an unfinished request

    // Waits up to `wait` for the next event. kFinished once every event has been read and the
    // request ended; status(), usage() and embedding() are final then.
    Poll next(StreamEvent* event, std::chrono::milliseconds wait);
    void cancel();
    uint64_t id() const { return id_; }
    Status status() const;
    Usage usage() const;
    std::vector<float> embedding() const;
    // The prompt's scores (EngineRequest::prompt_logprobs): set before the first event is
    // queued, so once next() returned an event or kFinished after the prompt was computed.
    std::optional<std::vector<SampledToken>> prompt_logprobs() const;

private:
    friend class Engine;
    RequestHandle(uint64_t id, std::shared_ptr<detail::RequestChannel> channel,
                  std::shared_ptr<detail::EngineInbox> inbox);

    uint64_t id_ = 0;
    std::shared_ptr<detail::RequestChannel> channel_;
    std::shared_ptr<detail::EngineInbox> inbox_;
};

class Engine {
    struct Private {};  // keeps the constructor to open()

public:
    // Configures the backend's KV cache and starts the engine thread. `tokenizer` may be null
    // (token-id prompts only). Errors: those of Backend::configure_kv_cache.
    static Result<std::unique_ptr<Engine>> open(std::unique_ptr<Backend> backend,
                                                std::shared_ptr<const Tokenizer> tokenizer,
                                                EngineOptions options);
    Engine(Private, std::unique_ptr<Backend> backend, std::shared_ptr<const Tokenizer> tokenizer,
           EngineOptions options);
    ~Engine();  // stops the thread; unfinished requests end with kUnavailable
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    Result<RequestHandle> submit(EngineRequest request);
    // kResourceExhausted, counted as a rejected request, when submit() would refuse for a full
    // queue now: a cheap check that lets a caller refuse before preparing a request (tokenizing
    // its prompt). Ok is no promise; submit() decides.
    Status check_capacity();

    // Embeds each text (mean-pooled final hidden states, L2-normalised) through the same
    // batching; blocks the calling thread until all are done. Errors as submit(), and
    // kInvalidArgument naming the index of a text that is not UTF-8 or too long.
    Result<std::vector<std::vector<float>>> embed(std::span<const std::string> texts,
                                                  Usage* usage = nullptr);
    // The same for prompts given as token ids.
    Result<std::vector<std::vector<float>>> embed_ids(std::span<const std::vector<int32_t>> prompts,
                                                      Usage* usage = nullptr);

    // How many requests may wait for admission (EngineOptions::max_queued).
    int32_t max_queued() const { return options_.max_queued; }
    const Tokenizer* tokenizer() const { return tokenizer_.get(); }
    const ModelConfig& model_config() const { return config_; }
    const KvCacheSpec& kv_cache_spec() const { return options_.kv_cache; }
    EngineStats stats() const;

private:
    void run(std::stop_token stop);
    // Fails every request and refuses new ones after the backend reported `health`.
    void stop_serving(const Status& health);

    std::unique_ptr<Backend> backend_;
    std::shared_ptr<const Tokenizer> tokenizer_;
    EngineOptions options_;
    ModelConfig config_;
    std::unique_ptr<Scheduler> scheduler_;  // used by the engine thread only (and validate())
    std::shared_ptr<detail::EngineInbox> inbox_;
    std::atomic<uint64_t> next_id_{1};
    std::jthread thread_;
};

}  // namespace sluice::inference
