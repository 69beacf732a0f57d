#include "agents/evaluation/monitor.h"

#include "agents/detail/known_fields.h"
#include "agents/evaluation/evaluator.h"
#include "common/log.h"

namespace sluice::agents::evaluation {

using nlohmann::json;

Result<MonitorSettings> monitor_settings_from_json(const json& body) {
    if (!body.is_object()) {
        return invalid_argument("monitor: expected a JSON object");
    }
    SLUICE_RETURN_IF_ERROR(
        detail::refuse_unknown_fields(body, "monitor", {"fraction", "judges", "custom_judges"}));
    MonitorSettings settings;
    if (!body.contains("fraction") || !body["fraction"].is_number() ||
        body["fraction"].get<double>() < 0 || body["fraction"].get<double>() > 1) {
        return invalid_argument("fraction: expected a number from 0 to 1");
    }
    settings.fraction = body["fraction"];
    json judges = body.value("judges", json(nullptr));
    if (judges.is_null() && !body.contains("custom_judges")) {
        judges = json::array({"relevance", "safety"});
    }
    if (judges.is_null()) {
        judges = json::array();
    }
    json custom = body.value("custom_judges", json(nullptr));
    SLUICE_ASSIGN_OR_RETURN(settings.judges, judges_from_json(judges, custom));
    return settings;
}

json monitor_settings_to_json(const MonitorSettings& settings) {
    json judges = json::array();
    json custom = json::array();
    for (const auto& spec : settings.judges) {
        (spec.custom ? custom : judges).push_back(judge_to_json(spec));
    }
    return {{"fraction", settings.fraction}, {"judges", judges}, {"custom_judges", custom}};
}

bool monitor_samples(const std::string& trace_id, double fraction) {
    if (fraction <= 0 || trace_id.size() < 8) {
        return false;
    }
    if (fraction >= 1) {
        return true;
    }
    std::uint64_t value = 0;
    for (size_t i = 0; i < 8; ++i) {
        char c = trace_id[i];
        int digit = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (digit < 0) {
            return false;
        }
        value = value * 16 + static_cast<std::uint64_t>(digit);
    }
    return static_cast<double>(value) < fraction * 4294967296.0;
}

Monitor::Monitor(EvalStore& store, ModelSource model, JudgeOptions options)
    : store_(store), model_(std::move(model)), options_(options) {
    auto stored = store_.monitor_settings();
    if (stored.ok() && !stored->is_null()) {
        auto parsed = monitor_settings_from_json(*stored);
        if (parsed.ok()) {
            settings_ = std::move(*parsed);
        } else {
            log::warn("eval", "ignoring stored monitor settings",
                      {{"error", parsed.status().message()}});
        }
    }
    worker_ = std::jthread([this](const std::stop_token& stop) { work(stop); });
}

Monitor::~Monitor() {
    worker_.request_stop();
    wake_.notify_all();
}

Status Monitor::configure(const MonitorSettings& settings) {
    SLUICE_RETURN_IF_ERROR(store_.put_monitor_settings(monitor_settings_to_json(settings)));
    std::lock_guard lock(mutex_);
    settings_ = settings;
    return Status();
}

MonitorSettings Monitor::settings() const {
    std::lock_guard lock(mutex_);
    return settings_;
}

MonitorCounts Monitor::counts() const {
    std::lock_guard lock(mutex_);
    return counts_;
}

bool Monitor::offer(const std::string& trace_id, JudgeInput input) {
    std::lock_guard lock(mutex_);
    ++counts_.offered;
    if (settings_.judges.empty() || !monitor_samples(trace_id, settings_.fraction)) {
        return false;
    }
    ++counts_.sampled;
    if (queue_.size() >= kMaxQueued) {
        ++counts_.dropped;
        return false;
    }
    queue_.push_back({trace_id, std::move(input), settings_.judges});
    wake_.notify_all();
    return true;
}

void Monitor::drain() {
    std::unique_lock lock(mutex_);
    idle_.wait(lock, [this] { return queue_.empty() && !busy_; });
}

void Monitor::work(const std::stop_token& stop) {
    while (true) {
        Item item;
        {
            std::unique_lock lock(mutex_);
            if (!wake_.wait(lock, stop, [this] { return !queue_.empty(); })) {
                return;
            }
            item = std::move(queue_.front());
            queue_.pop_front();
            busy_ = true;
        }
        judge(item);
        std::lock_guard lock(mutex_);
        busy_ = false;
        idle_.notify_all();
    }
}

void Monitor::judge(const Item& item) {
    auto model = model_();
    std::vector<MonitorVerdict> verdicts;
    bool failed = !model.ok();
    if (model.ok()) {
        std::vector<std::pair<std::string, std::vector<inference::ChatMessage>>> calls;
        for (const auto& spec : item.judges) {
            if (!judge_applies(spec, item.input)) {
                continue;
            }
            for (auto& prompt : judge_prompts(spec, item.input)) {
                calls.emplace_back(spec.name, std::move(prompt));
            }
        }
        std::vector<Result<Verdict>> results(calls.size(),
                                             Status(StatusCode::kInternal, "not run"));
        // Concurrent, so the engine batches one answer's judges.
        parallel_for(calls.size(), calls.size(), [&](size_t i) {
            results[i] = ask_judge(**model, calls[i].second, options_);
        });
        std::map<std::string, std::pair<int, int>> tally;  // judge -> (yes, valid)
        std::map<std::string, std::string> rationale;
        for (size_t i = 0; i < calls.size(); ++i) {
            if (!results[i].ok()) {
                failed = true;
                continue;
            }
            auto& t = tally[calls[i].first];
            t.first += results[i]->yes ? 1 : 0;
            t.second += 1;
            rationale[calls[i].first] = results[i]->rationale;
        }
        for (const auto& [name, t] : tally) {
            // One verdict per judge and trace: chunk_relevance passes with half its passages.
            bool yes = name == "chunk_relevance" ? 2 * t.first >= t.second : t.first == t.second;
            verdicts.push_back({item.trace_id, name, yes, rationale[name], 0});
        }
    }
    Status stored = verdicts.empty() ? Status() : store_.add_monitor_verdicts(verdicts);
    if (!stored.ok()) {
        log::error("eval", "cannot store monitor verdicts",
                   {{"trace_id", item.trace_id}, {"error", stored.message()}});
    }
    std::lock_guard lock(mutex_);
    ++counts_.judged;
    counts_.failed += (failed || !stored.ok()) ? 1 : 0;
}

}  // namespace sluice::agents::evaluation
