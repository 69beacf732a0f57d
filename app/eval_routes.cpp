#include "app/eval_routes.h"

#include "agents/evaluation/comparison.h"
#include "agents/evaluation/report.h"
#include "agents/evaluation/runs.h"
#include "agents/evaluation/targets.h"
#include "agents/index_access.h"
#include "app/eval_access.h"
#include "app/governance_http.h"
#include "app/guarded_chat_model.h"
#include "app/http_errors.h"
#include "app/model_call.h"
#include "app/openai_route_support.h"
#include "app/request_members.h"
#include "common/log.h"

namespace sluice::app {
namespace {

using nlohmann::json;
namespace eval = agents::evaluation;

const std::string kSetName = "([A-Za-z0-9_.-]+)";
const std::string kRunId = "(run_[0-9a-f]{16})";

void send_safe(httplib::Response& res, const json& body) {
    res.status = 200;
    res.set_content(agents::dump_safe(body), "application/json");
}

// ?version=N: 0 (the latest) when absent.
Result<int> version_param(const httplib::Request& req) {
    if (!req.has_param("version")) {
        return 0;
    }
    std::string text = req.get_param_value("version");
    int value = 0;
    for (char c : text) {
        if (c < '0' || c > '9' || value > 100000000) {
            return invalid_argument("version: expected a positive integer, found '" + text + "'");
        }
        value = value * 10 + (c - '0');
    }
    if (text.empty() || value < 1) {
        return invalid_argument("version: expected a positive integer, found '" + text + "'");
    }
    return value;
}

Result<std::vector<eval::EvalRow>> rows_of_body(const json& body) {
    bool has_rows = body.contains("rows");
    bool has_jsonl = body.contains("jsonl");
    if (has_rows == has_jsonl) {
        return invalid_argument("give either rows (an array) or jsonl (JSON lines text)");
    }
    if (has_rows) {
        return eval::eval_rows_from_json(body["rows"]);
    }
    if (!body["jsonl"].is_string()) {
        return invalid_argument("jsonl: expected a string of JSON lines");
    }
    return eval::parse_eval_jsonl(body["jsonl"].get<std::string>());
}

std::string version_note(const eval::EvalSetVersion& version) {
    std::string note = "version ";
    note.append(std::to_string(version.version)).append(", ");
    note.append(std::to_string(version.n_rows)).append(" rows");
    return note;
}

void post_set(EvalServices& s, const RequestInfo& info, const httplib::Request& req,
              httplib::Response& res) {
    auto context = context_of(info);
    auto body = parse_json_body(req);
    if (!body.ok()) {
        return send_status(res, body.status(), info.request_id);
    }
    if (Status keys = check_keys(*body, {"name", "rows", "jsonl"}, {}); !keys.ok()) {
        return send_status(res, keys, info.request_id);
    }
    auto name = string_field(*body, "name");
    if (!name.ok()) {
        return send_status(res, name.status(), info.request_id);
    }
    if (Status valid = check_eval_set_name(*name); !valid.ok()) {
        return send_status(res, valid, info.request_id);
    }
    auto rows = rows_of_body(*body);
    if (!rows.ok()) {
        return send_status(res, rows.status(), info.request_id);
    }
    auto versions = s.store.versions(*name);  // kNotFound: none yet
    if (!versions.ok() && versions.status().code() != StatusCode::kNotFound) {
        return send_status(res, versions.status(), info.request_id);
    }
    if (Status allowed = authorize_eval_set_write(s.gov, context, *name, versions.ok());
        !allowed.ok()) {
        return send_status(res, allowed, info.request_id);
    }
    auto version = s.store.add_version(*name, *rows, context.principal);
    Status audited = audit_action(s.gov, context, "eval_set.version", "table:" + *name,
                                  version.status(),
                                  version.ok() ? version_note(*version) : "");
    if (!version.ok() || !audited.ok()) {
        return send_status(res, version.ok() ? audited : version.status(), info.request_id);
    }
    send_json(res, {{"name", *name}, {"version", version->version}, {"n_rows", version->n_rows},
                    {"created_at", version->created_at_ms}});
}

// Deletes the set: its versions, then its table, so that a delete cut short between the two
// leaves a table without versions, which the same request, sent again, deletes. Runs of the set
// keep their results.
void delete_set(EvalServices& s, const RequestInfo& info, const httplib::Request& req,
                httplib::Response& res) {
    auto context = context_of(info);
    std::string name = req.matches[1].str();
    auto versions = s.store.versions(name);  // kNotFound: none
    if (!versions.ok() && versions.status().code() != StatusCode::kNotFound) {
        return send_status(res, versions.status(), info.request_id);
    }
    auto has_table = authorize_eval_set_delete(s.gov, context, name, versions.ok());
    if (!has_table.ok()) {
        return send_status(res, has_table.status(), info.request_id);
    }
    auto removed = s.store.remove_set(name);
    Status deleted = removed.status();
    if (deleted.ok() && *has_table) {
        deleted = s.gov.store().delete_securable(governance::SecurableType::kTable, name, false);
    }
    const int count = removed.ok() ? *removed : 0;
    Status audited = audit_action(s.gov, context, "eval_set.delete", "table:" + name, deleted,
                                  std::to_string(count) + " versions");
    if (!deleted.ok() || !audited.ok()) {
        return send_status(res, deleted.ok() ? audited : deleted, info.request_id);
    }
    send_json(res, {{"name", name}, {"deleted_versions", count}});
}

void list_sets(EvalServices& s, const RequestInfo& info, httplib::Response& res) {
    auto context = context_of(info);
    auto sets = s.store.list_sets();
    Status audited = audit_action(s.gov, context, "eval_set.list", "metastore", sets.status());
    if (!sets.ok() || !audited.ok()) {
        return send_status(res, sets.ok() ? audited : sets.status(), info.request_id);
    }
    json out = json::array();
    for (const auto& set : *sets) {
        if (!may_read_eval_set(s.gov, context, set.name)) {
            continue;
        }
        out.push_back({{"name", set.name},
                       {"latest_version", set.version},
                       {"n_rows", set.n_rows},
                       {"created_at", set.created_at_ms},
                       {"created_by", set.created_by}});
    }
    send_json(res, {{"sets", out}});
}

void get_set(EvalServices& s, const RequestInfo& info, const httplib::Request& req,
             httplib::Response& res, const std::string& what) {
    auto context = context_of(info);
    std::string name = req.matches[1].str();
    if (Status allowed = authorize_eval_set_read(s.gov, context, name); !allowed.ok()) {
        return send_status(res, allowed, info.request_id);
    }
    if (what == "versions") {
        auto versions = s.store.versions(name);
        if (!versions.ok()) {
            return send_status(res, versions.status(), info.request_id);
        }
        json out = json::array();
        for (const auto& v : *versions) {
            out.push_back({{"version", v.version},
                           {"n_rows", v.n_rows},
                           {"created_at", v.created_at_ms},
                           {"created_by", v.created_by}});
        }
        return send_json(res, {{"name", name}, {"versions", out}});
    }
    auto version = version_param(req);
    if (!version.ok()) {
        return send_status(res, version.status(), info.request_id);
    }
    eval::EvalSetVersion resolved;
    auto rows = s.store.rows(name, *version, &resolved);
    if (!rows.ok()) {
        return send_status(res, rows.status(), info.request_id);
    }
    if (what == "export") {
        res.status = 200;
        res.set_header("Content-Disposition", "attachment; filename=\"" + name + ".v" +
                                                  std::to_string(resolved.version) + ".jsonl\"");
        res.set_content(eval::eval_rows_to_jsonl(*rows), "application/x-ndjson");
        return;
    }
    json out = json::array();
    for (const auto& row : *rows) {
        out.push_back(eval::eval_row_to_json(row));
    }
    send_safe(res, {{"name", name}, {"version", resolved.version}, {"rows", out}});
}

Result<int> bounded_int(const json& body, const char* field, int low, int high, int fallback) {
    if (!body.contains(field)) {
        return fallback;
    }
    if (!body[field].is_number_integer() || body[field].get<std::int64_t>() < low ||
        body[field].get<std::int64_t>() > high) {
        std::string message(field);
        message.append(": expected an integer from ").append(std::to_string(low));
        message.append(" to ").append(std::to_string(high));
        return invalid_argument(message);
    }
    return body[field].get<int>();
}

Result<eval::EvalOptions> options_of(const json& body) {
    eval::EvalOptions options;
    SLUICE_ASSIGN_OR_RETURN(options.judges,
                            eval::judges_from_json(body.value("judges", json(nullptr)),
                                                   body.value("custom_judges", json(nullptr))));
    SLUICE_ASSIGN_OR_RETURN(int concurrency, bounded_int(body, "concurrency", 1, 64, 16));
    options.concurrency = static_cast<size_t>(concurrency);
    SLUICE_ASSIGN_OR_RETURN(int k, bounded_int(body, "k", 1, 50, 5));
    options.k = static_cast<size_t>(k);
    SLUICE_ASSIGN_OR_RETURN(options.judge.rationale_max_chars,
                            bounded_int(body, "rationale_max_chars", 8, 2000, 400));
    SLUICE_ASSIGN_OR_RETURN(options.bootstrap_resamples,
                            bounded_int(body, "bootstrap_resamples", 100, 20000, 1000));
    SLUICE_ASSIGN_OR_RETURN(int seed, bounded_int(body, "seed", 0, 2000000000, 20240611));
    options.seed = static_cast<std::uint64_t>(seed);
    for (const char* field : {"prompt_price_per_million", "completion_price_per_million"}) {
        if (body.contains(field) && (!body[field].is_number() || body[field].get<double>() < 0)) {
            return invalid_argument(std::string(field) + ": expected a number >= 0");
        }
    }
    options.prompt_price_per_million = body.value("prompt_price_per_million", 0.0);
    options.completion_price_per_million = body.value("completion_price_per_million", 0.0);
    return options;
}

// Each row of a document QA run is a question governed as POST /api/qa governs one
// (app/agent_routes.cpp): EXECUTE on the served model, room for the question and the longest
// answer under the caller's limits, the question and the passages the model reads through the
// endpoint's input policy, the answer through its output policy, and the tokens charged to the
// caller as agent "qa". A row refused by any of them is an error row.
eval::Target governed_qa_target(EvalServices& s, const governance::RequestContext& context,
                                std::shared_ptr<agents::ChatModel> model, std::string index,
                                retrieval::Reader reader, agents::QaOptions options) {
    std::string securable = s.model_securable ? s.model_securable() : "";
    return
        [&s, context, model = std::move(model), index = std::move(index),
         reader = std::move(reader), options = std::move(options),
         securable = std::move(securable)](const eval::EvalRow& row) -> Result<eval::TargetOutput> {
            SLUICE_ASSIGN_OR_RETURN(
                std::unique_ptr<ModelCall> use,
                open_governed_use(s.gov, context, model->name(), securable,
                                  model->count_tokens(row.request) + options.max_answer_tokens,
                                  "qa", nullptr));
            auto asked = use->guard_input(row.request);
            if (!asked.ok()) {
                return asked.status().with_context("question");
            }
            eval::EvalRow question = row;
            question.request = std::move(*asked);
            auto guarded = std::make_shared<GuardedChatModel>(
                *use, model, [](const inference::ChatMessage&, const Status& refusal) {
                    return Status(
                        StatusCode::kPermissionDenied,
                        "the retrieved passages: " + refusal.message() + "; no answer is given");
                });
            auto out = eval::qa_target(s.gov.authorizer(), s.indexes, index, reader, guarded,
                                       options, &s.traces, context)(question);
            Status settled = use->finish(guarded->spent(), out.ok() ? "ok" : "error");
            if (!settled.ok()) {
                log::error("eval", "document answer tokens not recorded",
                           {{"request_id", context.request_id}, {"error", settled.message()}});
            }
            return out;
        };
}

void post_run(EvalServices& s, const RequestInfo& info, const httplib::Request& req,
              httplib::Response& res) {
    auto context = context_of(info);
    auto body = parse_json_body(req);
    if (!body.ok()) {
        return send_status(res, body.status(), info.request_id);
    }
    if (Status keys =
            check_keys(*body,
                       {"agent", "qa", "set", "version", "judges", "custom_judges", "concurrency",
                        "k", "seed", "rationale_max_chars", "bootstrap_resamples",
                        "prompt_price_per_million", "completion_price_per_million"},
                       {});
        !keys.ok()) {
        return send_status(res, keys, info.request_id);
    }
    auto set = string_field(*body, "set");
    if (!set.ok()) {
        return send_status(res, set.status(), info.request_id);
    }
    int version = 0;
    if (body->contains("version")) {
        auto v = bounded_int(*body, "version", 1, 100000000, 0);
        if (!v.ok()) {
            return send_status(res, v.status(), info.request_id);
        }
        version = *v;
    }
    auto options = options_of(*body);
    if (!options.ok()) {
        return send_status(res, options.status(), info.request_id);
    }
    if (body->contains("agent") && body->contains("qa")) {
        return send_status(res, invalid_argument("give agent or qa, not both"), info.request_id);
    }
    if (Status allowed = authorize_eval_set_read(s.gov, context, *set); !allowed.ok()) {
        return send_status(res, allowed, info.request_id);
    }
    auto model = s.model();
    if (!model.ok()) {
        return send_status(res, model.status(), info.request_id);
    }
    eval::Target target;
    std::string label;
    if (body->contains("agent")) {
        auto agent = string_field(*body, "agent");
        if (!agent.ok()) {
            return send_status(res, agent.status(), info.request_id);
        }
        // Checked once up front so that a caller without EXECUTE is refused before any row.
        Status allowed = s.gov.authorizer().require(context, governance::Privilege::kExecute,
                                                    governance::SecurableType::kAgent, *agent);
        if (!allowed.ok()) {
            return send_status(res, allowed, info.request_id);
        }
        target = eval::agent_target(s.runtime, s.traces, *agent, context);
        label = *agent;
    } else if (body->contains("qa")) {
        const json& qa = (*body)["qa"];
        if (!qa.is_object() || !qa.contains("index") || !qa["index"].is_string()) {
            return send_status(res, invalid_argument("qa.index: required string"),
                               info.request_id);
        }
        if (Status keys = check_keys(qa, {"index", "options"}, {}); !keys.ok()) {
            return send_status(res, keys.with_context("qa"), info.request_id);
        }
        auto qa_options = agents::qa_options_from_json(qa.value("options", json()), {});
        auto tool_context = s.runtime.context_for(context);
        Status failed = !qa_options.ok() ? qa_options.status() : tool_context.status();
        if (!failed.ok()) {
            return send_status(res, failed, info.request_id);
        }
        // Checked once up front so that a caller without SELECT is refused before any row; the
        // target checks again for every row.
        auto index = agents::open_index(s.gov.authorizer(), context, governance::Privilege::kSelect,
                                        s.indexes, qa["index"].get<std::string>());
        if (!index.ok()) {
            return send_status(res, index.status(), info.request_id);
        }
        target = governed_qa_target(s, context, *model, qa["index"].get<std::string>(),
                                    tool_context->reader, *qa_options);
        label = "qa:" + qa["index"].get<std::string>();
    }
    // The judging model's use opens once the request is known to be valid: a refused one is no
    // use of the model (no usage row, no request against the caller's limits).
    std::optional<std::int64_t> retry_after;
    auto judge_use = open_judge_use(s.gov, context, (*model)->name(),
                                    s.model_securable ? s.model_securable() : "", &retry_after);
    if (!judge_use.ok()) {
        return send_model_error(res, judge_use.status(), info, retry_after);
    }
    auto run = eval::run_and_store(s.store, {label, *set, version, context.principal}, target,
                                   **model, *options);
    Status audited = audit_action(s.gov, context, "eval_run.create", "table:" + *set,
                                  run.status(), run.ok() ? (*run)["id"].get<std::string>() : "");
    settle_judge_use(
        **judge_use, run.ok() ? (*run)["judge_usage"]["prompt_tokens"].get<std::int64_t>() : 0,
        run.ok() ? (*run)["judge_usage"]["completion_tokens"].get<std::int64_t>() : 0, run.ok());
    if (!run.ok() || !audited.ok()) {
        return send_status(res, run.ok() ? audited : run.status(), info.request_id);
    }
    send_safe(res, *run);
}

// The stored run, when the caller may read its set (audited) and its answers (eval_access.h);
// another principal's run of an agent or document QA is not revealed (kNotFound), as
// GET /api/traces/{id} answers for its traces.
Result<json> readable_run(EvalServices& s, const governance::RequestContext& context,
                          const std::string& id) {
    SLUICE_ASSIGN_OR_RETURN(json run, s.store.run(id));
    SLUICE_RETURN_IF_ERROR(authorize_eval_set_read(s.gov, context, run.value("set", "")));
    if (!may_see_run_answers(s.gov, context, run.value("agent", ""), run.value("principal", ""))) {
        return not_found("evaluation run '" + id + "' does not exist");
    }
    return run;
}

void list_runs(EvalServices& s, const RequestInfo& info, httplib::Response& res) {
    auto context = context_of(info);
    auto runs = s.store.list_runs();
    Status audited = audit_action(s.gov, context, "eval_run.list", "metastore", runs.status());
    if (!runs.ok() || !audited.ok()) {
        return send_status(res, runs.ok() ? audited : runs.status(), info.request_id);
    }
    json out = json::array();
    for (const auto& [summary, run] : *runs) {
        if (may_read_eval_set(s.gov, context, summary.set) &&
            may_see_run_answers(s.gov, context, summary.agent, summary.principal)) {
            out.push_back(eval::run_summary_json(run));
        }
    }
    send_json(res, {{"runs", out}});
}

void get_run(EvalServices& s, const RequestInfo& info, const httplib::Request& req,
             httplib::Response& res, bool html) {
    auto run = readable_run(s, context_of(info), req.matches[1].str());
    if (!run.ok()) {
        return send_status(res, run.status(), info.request_id);
    }
    if (!html) {
        return send_safe(res, *run);
    }
    res.status = 200;
    res.set_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'");
    res.set_content(eval::html_report(*run), "text/html; charset=utf-8");
}

void compare(EvalServices& s, const RequestInfo& info, const httplib::Request& req,
             httplib::Response& res) {
    auto context = context_of(info);
    if (!req.has_param("a") || !req.has_param("b")) {
        return send_status(res, invalid_argument("compare needs ?a=RUN_ID&b=RUN_ID"),
                           info.request_id);
    }
    auto a = readable_run(s, context, req.get_param_value("a"));
    auto b = a.ok() ? readable_run(s, context, req.get_param_value("b")) : a;
    if (!b.ok()) {
        return send_status(res, b.status(), info.request_id);
    }
    auto compared = eval::compare_runs(*a, *b);
    if (!compared.ok()) {
        return send_status(res, compared.status(), info.request_id);
    }
    send_safe(res, *compared);
}

}  // namespace

void add_eval_routes(HttpServer& server, EvalServices& s) {
    server.route("POST", "/api/eval/sets",
                 [&s](const RequestInfo& info, const httplib::Request& req,
                      httplib::Response& res) { post_set(s, info, req, res); });
    server.route("GET", "/api/eval/sets",
                 [&s](const RequestInfo& info, const httplib::Request&, httplib::Response& res) {
                     list_sets(s, info, res);
                 });
    server.route("DELETE", "/api/eval/sets/" + kSetName,
                 [&s](const RequestInfo& info, const httplib::Request& req,
                      httplib::Response& res) { delete_set(s, info, req, res); });
    for (const char* what : {"versions", "rows", "export"}) {
        std::string suffix;
        if (std::string_view(what) != "versions") {
            suffix.append("/").append(what);
        }
        server.route("GET", "/api/eval/sets/" + kSetName + suffix,
                     [&s, what = std::string(what)](const RequestInfo& info,
                                                    const httplib::Request& req,
                                                    httplib::Response& res) {
                         get_set(s, info, req, res, what);
                     });
    }
    server.route("POST", "/api/eval/runs",
                 [&s](const RequestInfo& info, const httplib::Request& req,
                      httplib::Response& res) { post_run(s, info, req, res); });
    server.route("GET", "/api/eval/runs",
                 [&s](const RequestInfo& info, const httplib::Request&, httplib::Response& res) {
                     list_runs(s, info, res);
                 });
    server.route("GET", "/api/eval/runs/" + kRunId,
                 [&s](const RequestInfo& info, const httplib::Request& req,
                      httplib::Response& res) { get_run(s, info, req, res, false); });
    server.route("GET", "/api/eval/runs/" + kRunId + "/report.html",
                 [&s](const RequestInfo& info, const httplib::Request& req,
                      httplib::Response& res) { get_run(s, info, req, res, true); });
    server.route("GET", "/api/eval/compare",
                 [&s](const RequestInfo& info, const httplib::Request& req,
                      httplib::Response& res) { compare(s, info, req, res); });
}

}  // namespace sluice::app
