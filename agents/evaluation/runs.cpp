#include "agents/evaluation/runs.h"

#include "agents/trace.h"

namespace sluice::agents::evaluation {

using nlohmann::json;

Result<json> run_and_store(EvalStore& store, const RunSpec& spec, const Target& target,
                           ChatModel& judge_model, const EvalOptions& options) {
    EvalSetVersion version;
    SLUICE_ASSIGN_OR_RETURN(std::vector<EvalRow> rows,
                            store.rows(spec.set, spec.version, &version));
    std::int64_t created_at = now_us() / 1000;
    SLUICE_ASSIGN_OR_RETURN(EvalResult result, evaluate(rows, target, judge_model, options));
    json run = eval_result_json(result);
    bool clean = true;
    for (const auto& row : result.rows) {
        clean = clean && row.error.empty() && row.judge_errors.empty();
    }
    json judges = json::array();
    for (const auto& judge : options.judges) {
        judges.push_back(judge_to_json(judge));
    }
    RunSummary summary{new_run_id(), spec.agent,         spec.set, version.version, spec.principal,
                       created_at,   clean ? "succeeded" : "completed_with_errors"};
    run["id"] = summary.id;
    run["agent"] = summary.agent;
    run["set"] = summary.set;
    run["set_version"] = summary.set_version;
    run["created_at"] = summary.created_at_ms;
    run["status"] = summary.status;
    run["principal"] = summary.principal;
    run["judges"] = judges;
    run["n_rows"] = result.rows.size();
    run["seed"] = options.seed;
    SLUICE_RETURN_IF_ERROR(store.save_run(summary, run));
    return run;
}

json run_summary_json(const json& run) {
    json pass_rates = json::object();
    const json aggregates = run.value("aggregates", json::object());
    for (const auto& [name, aggregate] : aggregates.items()) {
        pass_rates[name] = aggregate.value("pass_rate", 0.0);
    }
    return {{"id", run.value("id", "")},
            {"agent", run.value("agent", "")},
            {"set", run.value("set", "")},
            {"set_version", run.value("set_version", 0)},
            {"created_at", run.value("created_at", std::int64_t{0})},
            {"status", run.value("status", "")},
            {"principal", run.value("principal", "")},
            {"n_rows", run.value("n_rows", 0)},
            {"pass_rates", pass_rates}};
}

}  // namespace sluice::agents::evaluation
