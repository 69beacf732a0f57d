// Runs, root causes, comparisons, calibration, best-of-N and the monitor, with scripted judges
// whose verdicts are known, so every aggregate can be checked exactly.

#include "agents/evaluation/evaluator.h"

#include "agents/evaluation/best_of_n.h"
#include "agents/evaluation/calibration.h"
#include "agents/evaluation/comparison.h"
#include "agents/evaluation/monitor.h"
#include "agents/evaluation/report.h"
#include "agents/evaluation/runs.h"
#include "agents/scripted_chat_model.h"
#include "agents/trace.h"
#include "agents_fixture.h"
#include "doctest/doctest.h"

namespace sluice::agents::evaluation {
namespace {

using nlohmann::json;

std::string verdict(bool yes, const std::string& why = "because") {
    return json{{"rationale", why}, {"verdict", yes ? "yes" : "no"}}.dump();
}

std::unique_ptr<ScriptedChatModel> judges_saying(const std::vector<std::string>& replies,
                                                 bool repeat_last = false) {
    json script = json::array();
    for (const auto& reply : replies) {
        script.push_back({{"content", reply}});
    }
    auto model = ScriptedChatModel::make(script, repeat_last);
    REQUIRE(model.ok());
    return std::move(*model);
}

std::vector<JudgeSpec> judges(const std::vector<std::string>& names) {
    std::vector<JudgeSpec> out;
    for (const auto& name : names) {
        out.push_back(*builtin_judge(name));
    }
    return out;
}

EvalRow answered(const std::string& request, const std::string& response,
                 std::optional<std::string> expected) {
    EvalRow row;
    row.request = request;
    row.response = response;
    row.expected_response = std::move(expected);
    return row;
}

// A trace id that starts with `prefix` (8 hex digits).
std::string padded_trace(const char* prefix) {
    std::string id(prefix);
    id.append(24, 'a');
    return id;
}

EvalOptions sequential(std::vector<JudgeSpec> specs) {
    EvalOptions options;
    options.judges = std::move(specs);
    options.concurrency = 1;  // the scripted verdicts then go in row order, then judge order
    options.judge.rationale_max_chars = 64;
    return options;
}

}  // namespace

TEST_CASE("run: verdicts, pass rates, intervals and root causes on a constructed set") {
    std::vector<EvalRow> rows = {answered("q0", "Paris", "Paris"),
                                 answered("q1", "Lyon", "Paris"),
                                 answered("q2", "Paris is nice", "Paris"),
                                 answered("q3", "hello", std::nullopt)};
    // Calls: q0 correctness, relevance; q1 both; q2 both; q3 relevance only (no gold answer).
    auto model = judges_saying({verdict(true), verdict(true), verdict(false, "wrong city"),
                                verdict(true), verdict(true), verdict(false), verdict(true)});
    auto result = evaluate(rows, {}, *model, sequential(judges({"correctness", "relevance"})));
    REQUIRE_MESSAGE(result.ok(), result.status().to_string());
    CHECK(model->calls() == 7);
    const auto& r = result->rows;
    CHECK(r[0].passed);
    CHECK(r[0].root_cause.empty());
    CHECK(r[1].root_cause == "correctness");
    CHECK(r[1].verdicts.at("correctness").rationale == "wrong city");
    CHECK(r[2].root_cause == "relevance");
    CHECK(r[3].verdicts.count("correctness") == 0);
    CHECK(r[3].passed);
    const JudgeAggregate& correctness = result->aggregates.at("correctness");
    CHECK(correctness.n == 3);
    CHECK(correctness.passed == 2);
    CHECK(correctness.pass_rate == doctest::Approx(2.0 / 3));
    CHECK(result->aggregates.at("relevance").pass_rate == doctest::Approx(0.75));
    // The interval of 3 outcomes holds resampled means k/3 around the rate.
    CHECK(correctness.ci.low <= correctness.pass_rate);
    CHECK(correctness.ci.high >= correctness.pass_rate);
    CHECK(correctness.ci.low * 3 == doctest::Approx(std::round(correctness.ci.low * 3)));
    Interval recomputed = bootstrap_interval({1, 0, 1}, 1000, sequential({}).seed);
    CHECK(correctness.ci.low == recomputed.low);
    CHECK(correctness.ci.high == recomputed.high);
    // Deterministic metrics against the gold answers.
    CHECK(r[0].metrics["exact_match"] == 1.0);
    CHECK(r[2].metrics["exact_match"] == 0.0);
    CHECK(r[2].metrics["token_f1"].get<double>() == doctest::Approx(2 * (1.0 / 3) / (4.0 / 3)));
    CHECK(result->metrics["exact_match"].get<double>() == doctest::Approx(1.0 / 3));
    CHECK(result->metrics["row_pass_rate"].get<double>() == doctest::Approx(0.5));
    // The judges' own tokens: every call counted, per judge and per row.
    std::int64_t per_rows = 0;
    for (const auto& row : r) {
        per_rows += row.metrics.value("judge_prompt_tokens", std::int64_t{0});
    }
    CHECK(per_rows > 0);
    CHECK(per_rows == correctness.prompt_tokens + result->aggregates.at("relevance").prompt_tokens);
    CHECK(correctness.calls == 3);
    // Every judge call was made under the verdict schema.
    for (const auto& request : model->requests()) {
        CHECK(request.response_schema == verdict_schema(64));
        CHECK(request.max_tokens == 64 + 48);
    }
}

TEST_CASE("root causes follow the pipeline: retrieval, groundedness, correctness; errors apart") {
    EvalRow missed = answered("q", "A", "A");
    missed.retrieved_context = std::vector<ContextChunk>{{"file:///other", "other text"}};
    missed.expected_retrieved_context = {{"file:///gold", ""}};
    EvalRow ungrounded = answered("q", "B", "A");
    ungrounded.retrieved_context = std::vector<ContextChunk>{{"file:///gold", "gold text"}};
    ungrounded.expected_retrieved_context = {{"file:///gold", ""}};
    EvalRow broken = answered("q", "C", "C");
    // Calls (correctness, then groundedness where there is context): missed yes yes;
    // ungrounded no no; broken (no context): a reply that is not a verdict.
    auto model = judges_saying({verdict(true), verdict(true), verdict(false), verdict(false),
                                "The answer is yes."});
    auto result = evaluate({missed, ungrounded, broken}, {}, *model,
                           sequential(judges({"correctness", "groundedness"})));
    REQUIRE(result.ok());
    CHECK(result->judge_order == std::vector<std::string>{"groundedness", "correctness"});
    CHECK(result->rows[0].metrics["retrieval_recall"] == 0.0);
    CHECK(result->rows[0].root_cause == "retrieval");
    CHECK(result->rows[1].metrics["retrieval_recall"] == 1.0);
    CHECK(result->rows[1].root_cause == "groundedness");
    // No context on the third row: groundedness does not apply; correctness gave no verdict.
    CHECK(result->rows[2].verdicts.empty());
    CHECK(result->rows[2].root_cause == "judge_error");
    CHECK(result->rows[2].judge_errors.at("correctness").find("not a verdict") !=
          std::string::npos);
    CHECK(result->aggregates.at("correctness").errors == 1);
    CHECK(result->aggregates.at("correctness").n == 2);
    CHECK(model->calls() == 5);

    // A target that fails on one row: that row's root cause is the error, and it is not judged.
    auto relevance = judges_saying({verdict(true)}, true);
    Target target = [](const EvalRow& row) -> Result<TargetOutput> {
        if (row.request == "fail") {
            return unavailable("the model is loading");
        }
        return TargetOutput{"answer to " + row.request, {}, false, std::string(32, 'c'), 10, 2};
    };
    EvalRow ask;
    ask.request = "ok";
    EvalRow fail;
    fail.request = "fail";
    auto run = evaluate({ask, fail}, target, *relevance, sequential(judges({"relevance"})));
    REQUIRE(run.ok());
    CHECK(run->rows[0].response == "answer to ok");
    CHECK(run->rows[0].trace_id == std::string(32, 'c'));
    CHECK(run->rows[0].metrics["total_tokens"] == 12);
    CHECK(run->rows[1].root_cause == "error");
    CHECK(run->rows[1].error == "the model is loading");
    CHECK(relevance->calls() == 1);
}

TEST_CASE("chunk relevance asks once per chunk; custom judges fill their placeholders") {
    EvalRow row = answered("Where is the Louvre?", "Paris", "Paris");
    row.retrieved_context = std::vector<ContextChunk>{{"a", "The Louvre is in Paris."},
                                                      {"b", "Bananas are yellow."},
                                                      {"c", "Paris is in France."}};
    auto custom = custom_judge_from_json(
        {{"name", "concise"}, {"prompt", "Q: {request}\nA: {response}"}, {"rubric", "short"}},
        "custom_judges[0]");
    REQUIRE(custom.ok());
    CHECK(custom_judge_from_json({{"name", "concise"},
                                  {"prompt", "{response}"},
                                  {"rubric", "short"},
                                  {"rubrik", "long"}},
                                 "custom_judges[1]")
              .status()
              .message() ==
          "custom_judges[1]: unknown field 'rubrik' (expected name, prompt, rubric)");
    EvalOptions options = sequential(judges({"chunk_relevance"}));
    options.judges.push_back(*custom);
    auto model = judges_saying({verdict(true), verdict(false), verdict(true), verdict(false)});
    auto result = evaluate({row}, {}, *model, options);
    REQUIRE(result.ok());
    CHECK(model->calls() == 4);
    CHECK(result->rows[0].verdicts.at("chunk_relevance").yes);
    CHECK(result->rows[0].metrics["chunk_relevance_precision"].get<double>() ==
          doctest::Approx(2.0 / 3));
    CHECK(result->rows[0].root_cause == "concise");
    CHECK(model->requests()[3].messages[1].content.find("Q: Where is the Louvre?\nA: Paris") == 0);
    CHECK(custom_judge_from_json({{"name", "safety"}, {"prompt", "p"}, {"rubric", "r"}}, "c")
              .status()
              .message() == "c.name: 'safety' is a built-in judge's name");
    CHECK(judges_from_json(json::array({"nope"}), nullptr).status().message().find(
              "judges[0]: unknown judge 'nope'") == 0);
}

TEST_CASE("verdicts are checked against the schema") {
    CHECK(parse_verdict(R"({"rationale":"fine","verdict":"yes"})", 10)->yes);
    CHECK_FALSE(parse_verdict(R"({"rationale":"fine","verdict":"maybe"})", 10).ok());
    CHECK_FALSE(parse_verdict(R"({"rationale":"far too long here","verdict":"no"})", 10).ok());
    CHECK_FALSE(parse_verdict(R"({"rationale":"a\"b","verdict":"no"})", 10).ok());
    CHECK_FALSE(parse_verdict(R"({"rationale":"a[b]","verdict":"no"})", 10).ok());
    CHECK(parse_verdict(R"j({"rationale":"A-z 0_9 (ok)","verdict":"no"})j", 20).ok());
    CHECK_FALSE(parse_verdict(R"({"verdict":"no"})", 10).ok());
    CHECK_FALSE(parse_verdict(R"({"rationale":"","verdict":"no","x":1})", 10).ok());
    json schema = verdict_schema(12);
    CHECK(schema["properties"]["verdict"]["enum"] == json::array({"yes", "no"}));
    CHECK(schema["additionalProperties"] == false);
}

TEST_CASE("comparison: per-row changes, win rate and McNemar's test") {
    auto run = [](const std::string& id, int passing) {
        json rows = json::array();
        for (int i = 0; i < 12; ++i) {
            json verdicts = {{"correctness", {{"verdict", i < passing ? "yes" : "no"},
                                              {"rationale", ""}}}};
            rows.push_back({{"index", i}, {"verdicts", verdicts}});
        }
        return json{{"id", id}, {"rows", rows}};
    };
    auto compared = compare_runs(run("a", 2), run("b", 12));
    REQUIRE(compared.ok());
    const json& c = (*compared)["judges"]["correctness"];
    CHECK(c["a_pass_rate"].get<double>() == doctest::Approx(2.0 / 12));
    CHECK(c["b_pass_rate"] == 1.0);
    CHECK(c["b_wins"] == 10);
    CHECK(c["a_wins"] == 0);
    CHECK(c["win_rate"].get<double>() == doctest::Approx(11.0 / 12));
    CHECK(c["p_value"].get<double>() == doctest::Approx(2.0 / 1024));
    CHECK(c["significant"] == true);
    CHECK((*compared)["rows"][0]["changed"] == false);
    CHECK((*compared)["rows"][5]["changed"] == true);
    auto close = compare_runs(run("a", 5), run("b", 7));
    REQUIRE(close.ok());
    CHECK((*close)["judges"]["correctness"]["p_value"].get<double>() == doctest::Approx(0.5));
    CHECK((*close)["judges"]["correctness"]["significant"] == false);
    CHECK_FALSE(compare_runs(json::object(), run("b", 1)).ok());
    // Metrics: B's exact match is 1 on every row where A's is 0 on half of them.
    json ma = run("a", 0);
    json mb = run("b", 0);
    for (int i = 0; i < 12; ++i) {
        ma["rows"][i]["metrics"] = {{"exact_match", i % 2 == 0 ? 1.0 : 0.0}};
        mb["rows"][i]["metrics"] = {{"exact_match", 1.0}};
    }
    auto metrics = compare_runs(ma, mb);
    REQUIRE(metrics.ok());
    const json& em = (*metrics)["metrics"]["exact_match"];
    CHECK(em["a_mean"] == 0.5);
    CHECK(em["b_mean"] == 1.0);
    CHECK(em["difference"] == 0.5);
    CHECK(em["ci_low"].get<double>() > 0);
    CHECK(em["significant"] == true);
}

TEST_CASE("calibration: agreement and kappa against human labels; corrections become rows") {
    JudgedTraces judged;
    // Judge says yes on t0..t3, no on t4..t5; people: up t0 t1, down t2, 5 on t4, 1 on t5, 3 on t3.
    for (int i = 0; i < 6; ++i) {
        judged[std::string("t").append(std::to_string(i))]["relevance"] = i < 4;
    }
    auto feedback = [](const std::string& trace, json rating) {
        Feedback f;
        f.trace_id = trace;
        f.rating = std::move(rating);
        return f;
    };
    std::vector<Feedback> people = {feedback("t0", "up"), feedback("t1", "up"),
                                    feedback("t2", "down"), feedback("t3", 3),
                                    feedback("t4", 5), feedback("t5", 1)};
    json result = calibrate(judged, people, "relevance");
    // Pairs (judge, human): (y,y) (y,y) (y,n) (n,y) (n,n): p_o = 3/5; judge yes 3/5, human yes
    // 3/5: p_e = 0.36 + 0.16 = 0.52; kappa = (0.6 - 0.52) / 0.48 = 1/6.
    CHECK(result["n"] == 5);
    CHECK(result["agreement"].get<double>() == doctest::Approx(0.6));
    CHECK(result["kappa"].get<double>() == doctest::Approx(1.0 / 6));
    CHECK(calibrate(judged, people, "safety")["n"] == 0);

    Feedback corrected = feedback("t1", "down");
    corrected.correction = "Twenty five days.";
    std::vector<Feedback> with_correction = {people[0], corrected};
    auto rows = rows_from_corrections(with_correction, [](const std::string& trace)
                                                            -> Result<std::string> {
        return "question of " + trace;
    });
    REQUIRE(rows.ok());
    REQUIRE(rows->size() == 1);
    CHECK((*rows)[0].request == "question of t1");
    CHECK((*rows)[0].expected_response == std::optional<std::string>("Twenty five days."));
    CHECK((*rows)[0].source_trace_id == "t1");
    CHECK_FALSE(rows_from_corrections(people, [](const std::string&) -> Result<std::string> {
                    return std::string("x");
                }).ok());
}

TEST_CASE("best-of-N returns the candidate the judges score best") {
    auto generator = ScriptedChatModel::make(
        json::array({{{"content", "first"}}, {{"content", "second"}}, {{"content", "third"}}}));
    REQUIRE(generator.ok());
    // relevance then safety for each candidate in order: scores 1, 2, 2.
    auto judge = judges_saying({verdict(false), verdict(true), verdict(true), verdict(true),
                                verdict(true), verdict(true)});
    BestOfNOptions options;
    options.n = 3;
    options.concurrency = 1;
    options.judges = judges({"relevance", "safety"});
    auto best = best_of_n(**generator, *judge, {{"user", "Say something", {}, {}}}, options);
    REQUIRE_MESSAGE(best.ok(), best.status().to_string());
    REQUIRE(best->candidates.size() == 3);
    CHECK(best->best == 1);  // the earliest of the two best
    CHECK(best->candidates[1].text == "second");
    CHECK(best->candidates[0].score == 1);
    // Each candidate is drawn with its own seed.
    auto requests = (*generator)->requests();
    CHECK(requests[0].seed != requests[1].seed);
    options.n = 0;
    CHECK(best_of_n(**generator, *judge, {{"user", "x", {}, {}}}, options).status().message() ==
          "n: expected 1 to 16, found 0");
    // Judges that cannot score an answer without a reference are refused before any candidate
    // is sampled (and charged).
    const size_t sampled = (*generator)->calls();
    options.n = 3;
    options.judges = judges({"correctness", "groundedness"});
    auto unscored = best_of_n(**generator, *judge, {{"user", "x", {}, {}}}, options);
    CHECK(unscored.status().code() == StatusCode::kInvalidArgument);
    CHECK(unscored.status().message().starts_with("judges: none applies"));
    CHECK((*generator)->calls() == sampled);
}

TEST_CASE("monitor: a deterministic share of traces is judged and stored") {
    CHECK(monitor_samples(padded_trace("00000000"), 0.5));
    CHECK_FALSE(monitor_samples(padded_trace("ffffffff"), 0.5));
    CHECK_FALSE(monitor_samples(padded_trace("7fffffff"), 0.0));
    CHECK(monitor_samples(padded_trace("7fffffff"), 1.0));
    int sampled = 0;
    for (int i = 0; i < 2000; ++i) {
        sampled += monitor_samples(new_trace_id(), 0.25) ? 1 : 0;
    }
    CHECK(sampled > 400);  // 500 expected; a binomial tail beyond 100 is ~1e-8
    CHECK(sampled < 600);

    testing::TempDir dir("monitor");
    auto store = EvalStore::open(dir.path / "catalog.db");
    REQUIRE(store.ok());
    std::shared_ptr<ChatModel> model = judges_saying({verdict(true)}, true);
    JudgeOptions judge_options;
    judge_options.rationale_max_chars = 32;
    {
        Monitor monitor(**store, [model]() -> Result<std::shared_ptr<ChatModel>> { return model; },
                        judge_options);
        CHECK_FALSE(monitor.offer(new_trace_id(), {"q", "a", {}, {}, {}, false, {}}));
        CHECK(monitor_settings_from_json({{"fraction", 2}}).status().message() ==
              "fraction: expected a number from 0 to 1");
        // A misspelt member is refused, not left out (the defaults would have been judged).
        CHECK(monitor_settings_from_json({{"fraction", 0.5}, {"judge", {"safety"}}})
                  .status()
                  .message() ==
              "monitor: unknown field 'judge' (expected fraction, judges, custom_judges)");
        auto settings = monitor_settings_from_json({{"fraction", 1.0}});
        REQUIRE(settings.ok());
        REQUIRE(monitor.configure(*settings).ok());
        std::string trace = new_trace_id();
        CHECK(monitor.offer(trace, {"q", "a", {}, {}, {}, false, {}}));
        monitor.drain();
        auto verdicts = (*store)->monitor_verdicts(10);
        REQUIRE(verdicts.ok());
        REQUIRE(verdicts->size() == 2);  // relevance and safety, the defaults
        CHECK((*verdicts)[0].trace_id == trace);
        CHECK(monitor.counts().judged == 1);
    }
    // The settings survive a restart.
    Monitor reopened(**store, [model]() -> Result<std::shared_ptr<ChatModel>> { return model; },
                     judge_options);
    CHECK(reopened.settings().fraction == 1.0);
}

TEST_CASE("stored runs: listing shape and an escaped HTML report") {
    testing::TempDir dir("runs");
    auto store = EvalStore::open(dir.path / "catalog.db");
    REQUIRE(store.ok());
    EvalRow row = answered("<script>alert(1)</script>", "a & b", "a & b");
    REQUIRE((*store)->add_version("main.qa.s", {row}, "alice").ok());
    auto model = judges_saying({verdict(true, "fine")}, true);
    auto run = run_and_store(**store, {"", "main.qa.s", 0, "alice"}, {}, *model,
                             sequential(judges({"correctness"})));
    REQUIRE_MESSAGE(run.ok(), run.status().to_string());
    CHECK((*run)["status"] == "succeeded");
    CHECK((*run)["set_version"] == 1);
    auto stored = (*store)->run((*run)["id"]);
    REQUIRE(stored.ok());
    CHECK(*stored == *run);
    json summary = run_summary_json(*stored);
    CHECK(summary["pass_rates"]["correctness"] == 1.0);
    CHECK(summary["n_rows"] == 1);
    std::string html = html_report(*stored);
    CHECK(html.find("<script>") == std::string::npos);
    CHECK(html.find("&lt;script&gt;alert(1)&lt;/script&gt;") != std::string::npos);
    CHECK(html.find("a &amp; b") != std::string::npos);
    CHECK(html.find("100.0%") != std::string::npos);
    CHECK(run_and_store(**store, {"", "main.qa.none", 0, "alice"}, {}, *model,
                        sequential(judges({"correctness"})))
              .status()
              .code() == StatusCode::kNotFound);
}

}  // namespace sluice::agents::evaluation
