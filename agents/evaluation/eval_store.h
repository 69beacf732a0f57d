#pragma once
// EvalStore: evaluation state in catalog.db, beside the traces it points to.
//
//   eval_set_versions    every version of every evaluation set (rows as JSON lines); a new
//                        version is max + 1, chosen and written in one transaction
//   eval_runs            finished runs: the run object (evaluator.h's JSON plus its id, agent,
//                        set, version, caller, time) and the columns listings filter on
//   eval_feedback        human feedback on traces: rating (1-5 or up/down, kept as given and
//                        as a yes/no label), correction, comment, who and when
//   eval_monitor         the live-traffic monitor's settings and the verdicts it recorded
//
// Which principal may touch what is decided above (governance, in app/); this stores.
//
// Thread safety: thread-safe (one connection behind a mutex; WAL shares the file).

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agents/evaluation/eval_set.h"
#include "common/result.h"

namespace sluice::agents::evaluation {

struct EvalSetVersion {
    std::string name;
    int version = 0;
    int n_rows = 0;
    std::int64_t created_at_ms = 0;
    std::string created_by;
};

struct RunSummary {
    std::string id;
    std::string agent;
    std::string set;
    int set_version = 0;
    std::string principal;
    std::int64_t created_at_ms = 0;
    std::string status;
};

struct Feedback {
    std::int64_t id = 0;
    std::string trace_id;
    std::string principal;
    nlohmann::json rating;  // 1..5 or "up" / "down"
    std::optional<std::string> correction;
    std::optional<std::string> comment;
    std::int64_t created_at_ms = 0;
    // yes for 4-5 or up, no for 1-2 or down, nullopt for 3 (no opinion either way).
    std::optional<bool> label() const;
};
// {"trace_id", "rating", "correction"?, "comment"?}: kInvalidArgument naming the field.
Result<Feedback> feedback_from_json(const nlohmann::json& body);
nlohmann::json feedback_to_json(const Feedback& feedback);

struct MonitorVerdict {
    std::string trace_id;
    std::string judge;
    bool yes = false;
    std::string rationale;
    std::int64_t created_at_ms = 0;
};

class EvalStore {
public:
    static Result<std::unique_ptr<EvalStore>> open(const std::filesystem::path& db_path);
    ~EvalStore();

    // Stores the rows as the set's next version (1 for a new set).
    Result<EvalSetVersion> add_version(const std::string& name, const std::vector<EvalRow>& rows,
                                       const std::string& created_by);
    // The latest version of every set, by name.
    Result<std::vector<EvalSetVersion>> list_sets();
    // Every version of one set, oldest first; kNotFound for an unknown set.
    Result<std::vector<EvalSetVersion>> versions(const std::string& name);
    // Deletes every version of the set, in one transaction; returns how many there were (0 for
    // an unknown set). Runs of the set keep their own results.
    Result<int> remove_set(const std::string& name);
    // Rows of a version (0: the latest); kNotFound naming the set or version.
    Result<std::vector<EvalRow>> rows(const std::string& name, int version,
                                      EvalSetVersion* resolved = nullptr);

    Status save_run(const RunSummary& summary, const nlohmann::json& run);
    // kNotFound for an unknown id.
    Result<nlohmann::json> run(const std::string& id);
    Result<std::vector<std::pair<RunSummary, nlohmann::json>>> list_runs();

    Result<std::int64_t> add_feedback(const Feedback& feedback);
    // "" trace id: all feedback. Oldest first.
    Result<std::vector<Feedback>> feedback(const std::string& trace_id);

    Status put_monitor_settings(const nlohmann::json& settings);
    // null when never set.
    Result<nlohmann::json> monitor_settings();
    Status add_monitor_verdicts(const std::vector<MonitorVerdict>& verdicts);
    Result<std::vector<MonitorVerdict>> monitor_verdicts(size_t limit);

    struct Impl;
    explicit EvalStore(std::unique_ptr<Impl> impl);

private:
    std::unique_ptr<Impl> impl_;
};

std::string new_run_id();

}  // namespace sluice::agents::evaluation
