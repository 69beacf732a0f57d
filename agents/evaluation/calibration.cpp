#include "agents/evaluation/calibration.h"

#include <set>

#include "agents/evaluation/statistics.h"

namespace sluice::agents::evaluation {

using nlohmann::json;

void collect_run_verdicts(const json& run, JudgedTraces* out) {
    for (const auto& row : run.value("rows", json::array())) {
        std::string trace = row.value("trace_id", "");
        if (trace.empty()) {
            continue;
        }
        const json verdicts_of_row = row.value("verdicts", json::object());
        for (const auto& [judge, verdict] : verdicts_of_row.items()) {
            (*out)[trace][judge] = verdict.value("verdict", "") == "yes";
        }
    }
}

void collect_monitor_verdicts(const std::vector<MonitorVerdict>& verdicts, JudgedTraces* out) {
    for (const auto& v : verdicts) {
        (*out)[v.trace_id][v.judge] = v.yes;
    }
}

json calibrate(const JudgedTraces& verdicts, const std::vector<Feedback>& feedback,
               const std::string& judge) {
    std::map<std::string, bool> human;  // trace -> label; later feedback overwrites earlier
    for (const auto& f : feedback) {
        if (auto label = f.label()) {
            human[f.trace_id] = *label;
        }
    }
    std::map<std::string, std::pair<std::vector<bool>, std::vector<bool>>> pairs;
    if (!judge.empty()) {
        pairs[judge];
    }
    for (const auto& [trace, judged] : verdicts) {
        auto label = human.find(trace);
        if (label == human.end()) {
            continue;
        }
        for (const auto& [name, yes] : judged) {
            if (!judge.empty() && name != judge) {
                continue;
            }
            pairs[name].first.push_back(yes);
            pairs[name].second.push_back(label->second);
        }
    }
    json judges = json::object();
    for (const auto& [name, pair] : pairs) {
        Agreement a = cohens_kappa(pair.first, pair.second);
        judges[name] = {{"n", a.n}, {"agreement", a.agreement}, {"kappa", a.kappa}};
    }
    json out = {{"judges", judges}};
    if (!judge.empty()) {
        out["judge"] = judge;
        out["n"] = judges[judge]["n"];
        out["agreement"] = judges[judge]["agreement"];
        out["kappa"] = judges[judge]["kappa"];
    }
    return out;
}

Result<std::vector<EvalRow>> rows_from_corrections(const std::vector<Feedback>& feedback,
                                                   const RequestOfTrace& request_of) {
    std::map<std::string, const Feedback*> latest;
    std::vector<std::string> order;
    for (const auto& f : feedback) {
        if (!f.correction) {
            continue;
        }
        if (latest.count(f.trace_id) == 0) {
            order.push_back(f.trace_id);
        }
        latest[f.trace_id] = &f;
    }
    std::vector<EvalRow> rows;
    for (const auto& trace : order) {
        auto request = request_of(trace);
        if (!request.ok() || request->empty()) {
            continue;
        }
        EvalRow row;
        row.request = *request;
        row.expected_response = *latest[trace]->correction;
        row.source_trace_id = trace;
        rows.push_back(std::move(row));
    }
    if (rows.empty()) {
        return invalid_argument("no feedback with a correction on a known trace");
    }
    return rows;
}

}  // namespace sluice::agents::evaluation
