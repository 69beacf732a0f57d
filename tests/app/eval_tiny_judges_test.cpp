// AI judges on the real engine with the random tiny model: whatever a random model would write,
// every reply is a valid verdict of the schema, because the grammar allows nothing else and the
// token budget always lets it close. Over 512 sampled judge calls (temperature 1, a seed each),
// each reply is checked independently of the code that parsed it.

#include <doctest/doctest.h>

#include <mutex>
#include <regex>

#include <nlohmann/json.hpp>

#include "agents/engine_chat_model.h"
#include "agents/evaluation/evaluator.h"
#include "app/model_host.h"
#include "tiny_model_folder.h"

namespace sluice::app {
namespace {

using nlohmann::json;
namespace eval = agents::evaluation;

// Keeps every raw reply, so the test checks the text the engine produced.
class RecordingModel final : public agents::ChatModel {
public:
    explicit RecordingModel(std::shared_ptr<agents::ChatModel> inner) : inner_(std::move(inner)) {}
    Result<agents::ModelReply> complete(const agents::ModelRequest& request) override {
        auto reply = inner_->complete(request);
        std::lock_guard lock(mutex_);
        replies_.push_back(reply.ok() ? reply->text : "error: " + reply.status().message());
        return reply;
    }
    std::int64_t count_tokens(std::string_view text) const override {
        return inner_->count_tokens(text);
    }
    std::string name() const override { return inner_->name(); }
    std::vector<std::string> replies() const {
        std::lock_guard lock(mutex_);
        return replies_;
    }

private:
    std::shared_ptr<agents::ChatModel> inner_;
    mutable std::mutex mutex_;
    std::vector<std::string> replies_;
};

}  // namespace

TEST_CASE("random tiny model: 512 judge calls, every reply a valid verdict of the schema") {
    testing::TinyModelFolder folder("sluice-eval-tiny");
    ModelSettings settings;
    settings.path = folder.model_dir();
    settings.max_running = 64;
    settings.max_queued_requests = 256;
    ModelHost host(settings, nullptr);
    REQUIRE(host.load().ok());
    auto engine_model =
        agents::EngineChatModel::make(host.engine(), host.chat_template(), host.model_id());
    REQUIRE(engine_model.ok());
    RecordingModel model(std::move(*engine_model));

    std::vector<eval::EvalRow> rows;
    for (int i = 0; i < 128; ++i) {
        eval::EvalRow row;
        row.request = "Question " + std::to_string(i) + ": how many days of leave?";
        row.response = "There are " + std::to_string(i % 30) + " days.";
        row.expected_response = "25 days";
        rows.push_back(std::move(row));
    }
    eval::EvalOptions options;
    for (const char* name : {"correctness", "relevance", "safety"}) {
        options.judges.push_back(*eval::builtin_judge(name));
    }
    options.judges.push_back(*eval::custom_judge_from_json(
        {{"name", "brief"}, {"prompt", "Is this brief? {response}"}, {"rubric", "short"}}, "c"));
    options.concurrency = 64;
    options.judge.rationale_max_chars = 16;
    options.judge.temperature = 1.0;
    options.judge.seed = 42;
    auto result = eval::evaluate(rows, {}, model, options);
    REQUIRE_MESSAGE(result.ok(), result.status().to_string());

    std::vector<std::string> replies = model.replies();
    REQUIRE(replies.size() == 512);
    const std::regex rationale("^[-A-Za-z0-9 ,.;:!?'()%/+*=#&<>_]{0,16}$");
    int valid = 0;
    std::set<std::string> distinct;
    for (const auto& text : replies) {
        json value = json::parse(text, nullptr, false);
        bool ok = value.is_object() && value.size() == 2 && value.contains("rationale") &&
                  value.contains("verdict") && value["rationale"].is_string() &&
                  std::regex_match(value["rationale"].get<std::string>(), rationale) &&
                  (value["verdict"] == "yes" || value["verdict"] == "no");
        if (!ok) {
            MESSAGE("not a verdict: " << text);
        }
        valid += ok ? 1 : 0;
        distinct.insert(text);
    }
    CHECK(valid == 512);
    // Sampled replies differ: the grammar was explored, not one greedy path.
    CHECK(distinct.size() > 100);
    int verdicts = 0;
    for (const auto& [name, aggregate] : result->aggregates) {
        CHECK(aggregate.errors == 0);
        CHECK(aggregate.completion_tokens <= aggregate.calls * (16 + 48));
        verdicts += aggregate.n;
    }
    CHECK(verdicts == 512);
}

}  // namespace sluice::app
