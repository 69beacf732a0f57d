// Human feedback, calibration, corrections, the live-traffic monitor and best-of-N (declared in
// app/eval_routes.h).
#include <set>

#include "agents/evaluation/best_of_n.h"
#include "agents/evaluation/calibration.h"
#include "agents/evaluation/evaluator.h"
#include "app/eval_access.h"
#include "app/eval_routes.h"
#include "app/governance_http.h"
#include "app/http_errors.h"
#include "app/openai_route_support.h"
#include "app/request_members.h"

namespace sluice::app {
namespace {

using nlohmann::json;
namespace eval = agents::evaluation;

void send_safe(httplib::Response& res, const json& body) {
    res.status = 200;
    res.set_content(agents::dump_safe(body), "application/json");
}

bool is_admin(EvalServices& s, const governance::RequestContext& context) {
    auto admin = s.gov.authorizer().is_admin(context.principal_id);
    return admin.ok() && *admin;
}

// The trace when the caller may see it: its own, or any for an admin. Another principal's trace
// is not revealed (kNotFound), as GET /api/traces/{id} answers.
Result<agents::TraceRecord> visible_trace(EvalServices& s,
                                          const governance::RequestContext& context,
                                          const std::string& trace_id) {
    auto trace = s.traces.get(trace_id);
    if (trace.ok() && trace->principal != context.principal && !is_admin(s, context)) {
        return not_found("trace '" + trace_id + "' does not exist");
    }
    return trace;
}

std::string question_of(const agents::TraceRecord& trace) {
    for (const auto& span : trace.spans) {
        if (span.parent_id.empty() && span.inputs.contains("question") &&
            span.inputs["question"].is_string()) {
            return span.inputs["question"];
        }
    }
    return "";
}

void post_feedback(EvalServices& s, const RequestInfo& info, const httplib::Request& req,
                   httplib::Response& res) {
    auto context = context_of(info);
    auto body = parse_json_body(req);
    if (!body.ok()) {
        return send_status(res, body.status(), info.request_id);
    }
    auto feedback = eval::feedback_from_json(*body);
    if (!feedback.ok()) {
        return send_status(res, feedback.status(), info.request_id);
    }
    auto trace = visible_trace(s, context, feedback->trace_id);
    if (!trace.ok()) {
        Status audited = audit_action(s.gov, context, "feedback.create",
                                      "trace:" + feedback->trace_id, trace.status());
        return send_status(res, audited.ok() ? trace.status() : audited, info.request_id);
    }
    feedback->principal = context.principal;
    // Stamped here, so that the answer shows the time stored (the store stamps only a zero).
    feedback->created_at_ms = agents::now_us() / 1000;
    auto id = s.store.add_feedback(*feedback);
    Status audited = audit_action(s.gov, context, "feedback.create",
                                  "trace:" + feedback->trace_id, id.status(),
                                  "rating " + feedback->rating.dump());
    if (!id.ok() || !audited.ok()) {
        return send_status(res, id.ok() ? audited : id.status(), info.request_id);
    }
    feedback->id = *id;
    send_safe(res, eval::feedback_to_json(*feedback));
}

void get_feedback(EvalServices& s, const RequestInfo& info, const httplib::Request& req,
                  httplib::Response& res) {
    auto context = context_of(info);
    std::string trace_id = req.get_param_value("trace_id");
    if (trace_id.empty()) {
        return send_status(res, invalid_argument("trace_id: required query parameter"),
                           info.request_id);
    }
    auto trace = visible_trace(s, context, trace_id);
    auto feedback = trace.ok() ? s.store.feedback(trace_id)
                               : Result<std::vector<eval::Feedback>>(trace.status());
    Status audited =
        audit_action(s.gov, context, "feedback.read", "trace:" + trace_id, feedback.status());
    if (!feedback.ok() || !audited.ok()) {
        return send_status(res, feedback.ok() ? audited : feedback.status(), info.request_id);
    }
    json out = json::array();
    for (const auto& f : *feedback) {
        out.push_back(eval::feedback_to_json(f));
    }
    send_safe(res, {{"trace_id", trace_id}, {"feedback", out}});
}

void calibration(EvalServices& s, const RequestInfo& info, const httplib::Request& req,
                 httplib::Response& res) {
    auto context = context_of(info);
    std::string judge = req.get_param_value("judge");
    auto runs = s.store.list_runs();
    auto feedback = runs.ok() ? s.store.feedback("")
                              : Result<std::vector<eval::Feedback>>(runs.status());
    Status audited = audit_action(s.gov, context, "eval.calibration", "metastore",
                                  feedback.status(), judge.empty() ? "" : "judge " + judge);
    if (!feedback.ok() || !audited.ok()) {
        return send_status(res, feedback.ok() ? audited : feedback.status(), info.request_id);
    }
    // Verdicts of the runs the caller may read; the monitor's (every principal's traffic) for
    // admins only.
    eval::JudgedTraces judged;
    for (const auto& [summary, run] : *runs) {
        if (may_read_eval_set(s.gov, context, summary.set) &&
            may_see_run_answers(s.gov, context, summary.agent, summary.principal)) {
            eval::collect_run_verdicts(run, &judged);
        }
    }
    if (is_admin(s, context)) {
        auto verdicts = s.store.monitor_verdicts(100000);
        if (verdicts.ok()) {
            eval::collect_monitor_verdicts(*verdicts, &judged);
        }
    }
    send_safe(res, eval::calibrate(judged, *feedback, judge));
}

void post_corrections(EvalServices& s, const RequestInfo& info, const httplib::Request& req,
                      httplib::Response& res) {
    auto context = context_of(info);
    std::string name = req.matches[1].str();
    // Corrections extend a set that exists: for a name without a table the answer is a 404 and
    // nothing is made (authorize_eval_set_write would create the table, owned by the caller).
    if (Status valid = check_eval_set_name(name); !valid.ok()) {
        return send_status(res, valid, info.request_id);
    }
    if (auto table = s.gov.store().securable(governance::SecurableType::kTable, name);
        !table.ok()) {
        return send_status(res,
                           table.status().code() == StatusCode::kNotFound
                               ? not_found("evaluation set '" + name + "' does not exist")
                               : table.status(),
                           info.request_id);
    }
    // The table exists (above), so nothing is made whatever the store holds.
    if (Status allowed = authorize_eval_set_write(s.gov, context, name, false); !allowed.ok()) {
        return send_status(res, allowed, info.request_id);
    }
    auto current = s.store.rows(name, 0);
    auto feedback = s.store.feedback("");
    if (!current.ok() || !feedback.ok()) {
        return send_status(res, current.ok() ? feedback.status() : current.status(),
                           info.request_id);
    }
    std::set<std::string> present;
    for (const auto& row : *current) {
        present.insert(row.source_trace_id);
    }
    std::vector<eval::Feedback> fresh;
    for (const auto& f : *feedback) {
        if (f.correction && present.count(f.trace_id) == 0) {
            fresh.push_back(f);
        }
    }
    auto added = eval::rows_from_corrections(
        fresh, [&](const std::string& trace_id) -> Result<std::string> {
            SLUICE_ASSIGN_OR_RETURN(auto trace, visible_trace(s, context, trace_id));
            return question_of(trace);
        });
    if (!added.ok()) {
        return send_status(res, added.status(), info.request_id);
    }
    std::vector<eval::EvalRow> rows = std::move(*current);
    rows.insert(rows.end(), added->begin(), added->end());
    auto version = s.store.add_version(name, rows, context.principal);
    Status audited = audit_action(s.gov, context, "eval_set.corrections", "table:" + name,
                                  version.status(),
                                  std::to_string(added->size()) + " rows from corrections");
    if (!version.ok() || !audited.ok()) {
        return send_status(res, version.ok() ? audited : version.status(), info.request_id);
    }
    send_json(res, {{"name", name}, {"version", version->version}, {"n_rows", version->n_rows},
                    {"added", added->size()}});
}

void monitor_route(EvalServices& s, const RequestInfo& info, const httplib::Request& req,
                   httplib::Response& res, bool put) {
    auto context = context_of(info);
    if (Status admin = require_admin(s.gov, context, put ? "eval.monitor.set" : "eval.monitor");
        !admin.ok()) {
        return send_status(res, admin, info.request_id);
    }
    if (s.monitor == nullptr) {
        return send_status(res, failed_precondition("live-traffic monitoring is not running here"),
                           info.request_id);
    }
    if (put) {
        auto body = parse_json_body(req);
        auto settings = body.ok() ? eval::monitor_settings_from_json(*body)
                                  : Result<eval::MonitorSettings>(body.status());
        Status configured = settings.ok() ? s.monitor->configure(*settings) : settings.status();
        if (!configured.ok()) {
            return send_status(res, configured, info.request_id);
        }
    }
    eval::MonitorCounts counts = s.monitor->counts();
    auto verdicts = s.store.monitor_verdicts(50);
    json recent = json::array();
    for (const auto& v : verdicts.ok() ? *verdicts : std::vector<eval::MonitorVerdict>{}) {
        recent.push_back({{"trace_id", v.trace_id},
                          {"judge", v.judge},
                          {"verdict", v.yes ? "yes" : "no"},
                          {"rationale", v.rationale},
                          {"created_at", v.created_at_ms}});
    }
    send_safe(res, {{"settings", eval::monitor_settings_to_json(s.monitor->settings())},
                    {"counts",
                     {{"offered", counts.offered},
                      {"sampled", counts.sampled},
                      {"judged", counts.judged},
                      {"dropped", counts.dropped},
                      {"failed", counts.failed}}},
                    {"recent", recent}});
}

void best_of_n(EvalServices& s, const RequestInfo& info, const httplib::Request& req,
               httplib::Response& res) {
    auto context = context_of(info);
    auto body = parse_json_body(req);
    if (!body.ok()) {
        return send_status(res, body.status(), info.request_id);
    }
    if (Status keys = check_keys(*body,
                                 {"input", "n", "judges", "custom_judges", "temperature",
                                  "max_tokens", "rationale_max_chars"},
                                 {});
        !keys.ok()) {
        return send_status(res, keys, info.request_id);
    }
    auto input = string_field(*body, "input");
    if (!input.ok()) {
        return send_status(res, input.status(), info.request_id);
    }
    // Bounds are compared on the 64-bit value: read as int first, n = 4294967297 became 1.
    struct Bound {
        const char* field;
        std::int64_t low;
        std::int64_t high;
    };
    for (const Bound& bound :
         {Bound{"n", 1, 16}, Bound{"max_tokens", 1, 4096}, Bound{"rationale_max_chars", 8, 2000}}) {
        const auto it = body->find(bound.field);
        if (it != body->end() && (!it->is_number_integer() || it->get<std::int64_t>() < bound.low ||
                                  it->get<std::int64_t>() > bound.high)) {
            return send_status(
                res,
                invalid_argument(std::string(bound.field) + ": expected an integer from " +
                                 std::to_string(bound.low) + " to " + std::to_string(bound.high)),
                info.request_id);
        }
    }
    if (body->contains("temperature") && !(*body)["temperature"].is_number()) {
        return send_status(res, invalid_argument("temperature: expected a number"),
                           info.request_id);
    }
    eval::BestOfNOptions options;
    json judges = body->value("judges", json(nullptr));
    if (judges.is_null() && !body->contains("custom_judges")) {
        judges = json::array({"relevance", "safety"});
    }
    auto specs = eval::judges_from_json(judges.is_null() ? json::array() : judges,
                                        body->value("custom_judges", json(nullptr)));
    if (!specs.ok()) {
        return send_status(res, specs.status(), info.request_id);
    }
    options.judges = std::move(*specs);
    options.n = body->value("n", 4);
    options.temperature = body->value("temperature", 0.8);
    options.max_tokens = body->value("max_tokens", 256);
    options.judge.rationale_max_chars = body->value("rationale_max_chars", 200);
    if (options.temperature < 0 || options.temperature > 2) {
        return send_status(res, invalid_argument("temperature: expected a number from 0 to 2"),
                           info.request_id);
    }
    // A request the judges cannot score is refused before the model's use is opened.
    if (Status valid = eval::check_best_of_n({{"user", *input, {}, {}}}, options); !valid.ok()) {
        Status audited = audit_action(s.gov, context, "eval.best_of_n", "metastore", valid,
                                      std::string("n ").append(std::to_string(options.n)));
        return send_status(res, audited.ok() ? valid : audited, info.request_id);
    }
    auto model = s.model();
    if (!model.ok()) {
        return send_status(res, model.status(), info.request_id);
    }
    std::optional<std::int64_t> retry_after;
    auto judge_use = open_judge_use(s.gov, context, (*model)->name(),
                                    s.model_securable ? s.model_securable() : "", &retry_after);
    if (!judge_use.ok()) {
        return send_model_error(res, judge_use.status(), info, retry_after);
    }
    // The input goes to the model: the endpoint's input policy applies (a block is a 400).
    auto guarded = (*judge_use)->guard_input(*input);
    if (!guarded.ok()) {
        return send_status(res, guarded.status().with_context("input"), info.request_id);
    }
    auto best = eval::best_of_n(**model, **model, {{"user", *guarded, {}, {}}}, options);
    settle_judge_use(**judge_use, best.ok() ? best->prompt_tokens : 0,
                     best.ok() ? best->completion_tokens : 0, best.ok());
    Status audited = audit_action(s.gov, context, "eval.best_of_n", "metastore", best.status(),
                                  std::string("n ").append(std::to_string(options.n)));
    if (!best.ok() || !audited.ok()) {
        return send_status(res, best.ok() ? audited : best.status(), info.request_id);
    }
    // What the model wrote reaches the caller under the endpoint's output policy.
    std::vector<std::string> shown;
    for (const auto& c : best->candidates) {
        auto text = (*judge_use)->guard_output(c.text);
        if (!text.ok()) {
            return send_status(res, text.status(), info.request_id);
        }
        shown.push_back(std::move(*text));
    }
    json candidates = json::array();
    for (size_t i = 0; i < best->candidates.size(); ++i) {
        const auto& c = best->candidates[i];
        json verdicts = json::object();
        for (const auto& [name, v] : c.verdicts) {
            verdicts[name] = eval::verdict_to_json(v);
        }
        candidates.push_back({{"text", shown[i]},
                              {"score", c.score},
                              {"verdicts", verdicts},
                              {"judge_errors", c.judge_errors}});
    }
    send_safe(res, {{"best", shown[best->best]},
                    {"best_index", best->best},
                    {"candidates", candidates},
                    {"usage",
                     {{"prompt_tokens", best->prompt_tokens},
                      {"completion_tokens", best->completion_tokens},
                      {"total_tokens", best->prompt_tokens + best->completion_tokens}}}});
}

}  // namespace

void add_feedback_routes(HttpServer& server, EvalServices& s) {
    server.route("POST", "/api/feedback",
                 [&s](const RequestInfo& info, const httplib::Request& req,
                      httplib::Response& res) { post_feedback(s, info, req, res); });
    server.route("GET", "/api/feedback",
                 [&s](const RequestInfo& info, const httplib::Request& req,
                      httplib::Response& res) { get_feedback(s, info, req, res); });
    server.route("GET", "/api/eval/calibration",
                 [&s](const RequestInfo& info, const httplib::Request& req,
                      httplib::Response& res) { calibration(s, info, req, res); });
    server.route("POST", "/api/eval/sets/([A-Za-z0-9_.-]+)/corrections",
                 [&s](const RequestInfo& info, const httplib::Request& req,
                      httplib::Response& res) { post_corrections(s, info, req, res); });
    server.route("PUT", "/api/eval/monitor",
                 [&s](const RequestInfo& info, const httplib::Request& req,
                      httplib::Response& res) { monitor_route(s, info, req, res, true); });
    server.route("GET", "/api/eval/monitor",
                 [&s](const RequestInfo& info, const httplib::Request& req,
                      httplib::Response& res) { monitor_route(s, info, req, res, false); });
    server.route("POST", "/api/eval/best-of-n",
                 [&s](const RequestInfo& info, const httplib::Request& req,
                      httplib::Response& res) { best_of_n(s, info, req, res); });
}

}  // namespace sluice::app
