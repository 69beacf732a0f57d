#include "agents/evaluation/comparison.h"

#include <map>
#include <set>

#include "agents/evaluation/statistics.h"

namespace sluice::agents::evaluation {

using nlohmann::json;

namespace {

constexpr const char* kComparedMetrics[] = {"exact_match", "token_f1", "retrieval_precision",
                                            "retrieval_recall", "retrieval_ndcg", "latency_ms",
                                            "total_tokens"};
constexpr std::uint64_t kComparisonSeed = 20240611;

std::map<size_t, json> rows_by_index(const json& run) {
    std::map<size_t, json> out;
    for (const auto& row : run["rows"]) {
        out[row.value("index", size_t{0})] = row;
    }
    return out;
}

json verdicts_of(const json& row) {
    return row.is_object() ? row.value("verdicts", json::object()) : json::object();
}

}  // namespace

Result<json> compare_runs(const json& a, const json& b) {
    for (const json* run : {&a, &b}) {
        if (!run->is_object() || !run->contains("rows") || !(*run)["rows"].is_array()) {
            return invalid_argument("compare: a run without rows");
        }
    }
    std::map<size_t, json> rows_a = rows_by_index(a);
    std::map<size_t, json> rows_b = rows_by_index(b);
    std::set<size_t> indexes;
    for (const auto& [i, unused] : rows_a) {
        indexes.insert(i);
    }
    for (const auto& [i, unused] : rows_b) {
        indexes.insert(i);
    }
    struct Counts {
        int n = 0, a_pass = 0, b_pass = 0, b_wins = 0, a_wins = 0;
    };
    std::map<std::string, Counts> judges;
    json rows = json::array();
    for (size_t index : indexes) {
        json va = rows_a.count(index) ? verdicts_of(rows_a[index]) : json::object();
        json vb = rows_b.count(index) ? verdicts_of(rows_b[index]) : json::object();
        bool changed = false;
        std::set<std::string> names;
        for (const auto& [name, unused] : va.items()) {
            names.insert(name);
        }
        for (const auto& [name, unused] : vb.items()) {
            names.insert(name);
        }
        for (const auto& name : names) {
            bool in_a = va.contains(name);
            bool in_b = vb.contains(name);
            if (!in_a || !in_b) {
                changed = true;
                continue;
            }
            bool pass_a = va[name].value("verdict", "") == "yes";
            bool pass_b = vb[name].value("verdict", "") == "yes";
            Counts& c = judges[name];
            ++c.n;
            c.a_pass += pass_a ? 1 : 0;
            c.b_pass += pass_b ? 1 : 0;
            c.b_wins += (pass_b && !pass_a) ? 1 : 0;
            c.a_wins += (pass_a && !pass_b) ? 1 : 0;
            changed = changed || pass_a != pass_b;
        }
        rows.push_back({{"index", index}, {"a", va}, {"b", vb}, {"changed", changed}});
    }
    json out_judges = json::object();
    for (const auto& [name, c] : judges) {
        double n = c.n;
        int ties = c.n - c.a_wins - c.b_wins;
        double p = mcnemar_exact(c.a_wins, c.b_wins);
        out_judges[name] = {{"n", c.n},
                            {"a_pass_rate", c.a_pass / n},
                            {"b_pass_rate", c.b_pass / n},
                            {"a_wins", c.a_wins},
                            {"b_wins", c.b_wins},
                            {"ties", ties},
                            {"win_rate", (c.b_wins + 0.5 * ties) / n},
                            {"p_value", p},
                            {"significant", p < kSignificanceLevel}};
    }
    // Metrics that are not pass/fail: the paired difference of their per-row values.
    std::map<std::string, std::vector<double>> differences;
    std::map<std::string, std::pair<double, double>> sums;
    for (size_t index : indexes) {
        if (rows_a.count(index) == 0 || rows_b.count(index) == 0) {
            continue;
        }
        const json ma = rows_a[index].value("metrics", json::object());
        const json mb = rows_b[index].value("metrics", json::object());
        for (const char* name : kComparedMetrics) {
            if (ma.contains(name) && mb.contains(name)) {
                double x = ma[name].get<double>();
                double y = mb[name].get<double>();
                differences[name].push_back(y - x);
                sums[name].first += x;
                sums[name].second += y;
            }
        }
    }
    json out_metrics = json::object();
    for (const auto& [name, diffs] : differences) {
        PairedDifference d = paired_bootstrap(diffs, 2000, kComparisonSeed);
        double n = static_cast<double>(diffs.size());
        out_metrics[name] = {{"n", diffs.size()},
                             {"a_mean", sums[name].first / n},
                             {"b_mean", sums[name].second / n},
                             {"difference", d.mean},
                             {"ci_low", d.ci.low},
                             {"ci_high", d.ci.high},
                             {"p_value", d.p_value},
                             {"significant", d.p_value < kSignificanceLevel}};
    }
    return json{{"a", a.value("id", "")},
                {"b", b.value("id", "")},
                {"judges", out_judges},
                {"metrics", out_metrics},
                {"rows", rows}};
}

}  // namespace sluice::agents::evaluation
