#pragma once
// Monitor: judges a configurable sample of live traffic. Answers (document QA, agent runs) are
// offered with their trace id; a deterministic share `fraction` of traces — those whose id's
// first 8 hex digits, read as a number below 2^32, fall under fraction * 2^32 — is queued and
// judged on a background thread by the configured judges, and the verdicts are stored
// (eval_monitor_verdicts) against the trace, where calibration and the console find them.
//
// Sampling by trace id rather than by a random draw makes the choice reproducible and the same
// on every server of a deployment. The queue is bounded (kMaxQueued): past it, answers are
// counted as dropped instead of slowing the requests that offer them.
//
// Thread safety: thread-safe. The store and the model source must outlive the monitor.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "agents/chat_model.h"
#include "agents/evaluation/eval_store.h"
#include "agents/evaluation/judges.h"
#include "common/result.h"

namespace sluice::agents::evaluation {

struct MonitorSettings {
    double fraction = 0;  // 0: off
    std::vector<JudgeSpec> judges;
};
// {"fraction": 0..1, "judges": [names]?, "custom_judges": [...]?}; judges default to relevance
// and safety (the ones that need no reference answer). kInvalidArgument naming the field.
Result<MonitorSettings> monitor_settings_from_json(const nlohmann::json& body);
nlohmann::json monitor_settings_to_json(const MonitorSettings& settings);

bool monitor_samples(const std::string& trace_id, double fraction);

struct MonitorCounts {
    std::int64_t offered = 0;
    std::int64_t sampled = 0;
    std::int64_t judged = 0;
    std::int64_t dropped = 0;
    std::int64_t failed = 0;
};

class Monitor {
public:
    static constexpr size_t kMaxQueued = 1024;
    using ModelSource = std::function<Result<std::shared_ptr<ChatModel>>()>;

    // Reads the stored settings (off when none).
    Monitor(EvalStore& store, ModelSource model, JudgeOptions options);
    ~Monitor();
    Monitor(const Monitor&) = delete;
    Monitor& operator=(const Monitor&) = delete;

    // Stores the settings and applies them to what is offered from now on.
    Status configure(const MonitorSettings& settings);
    MonitorSettings settings() const;
    MonitorCounts counts() const;

    // Queues the answer when its trace is sampled; returns whether it was.
    bool offer(const std::string& trace_id, JudgeInput input);
    // Returns once everything queued before the call has been judged and stored.
    void drain();

private:
    struct Item {
        std::string trace_id;
        JudgeInput input;
        std::vector<JudgeSpec> judges;
    };
    void work(const std::stop_token& stop);
    void judge(const Item& item);

    EvalStore& store_;
    ModelSource model_;
    JudgeOptions options_;
    mutable std::mutex mutex_;
    std::condition_variable_any wake_;
    std::condition_variable idle_;
    MonitorSettings settings_;  // guarded by mutex_
    std::deque<Item> queue_;    // guarded by mutex_
    bool busy_ = false;         // guarded by mutex_: an item is being judged
    MonitorCounts counts_;      // guarded by mutex_
    std::jthread worker_;       // last: stops and joins before the rest goes
};

}  // namespace sluice::agents::evaluation
