#include "agents/evaluation/report.h"

#include <cstdio>

namespace sluice::agents::evaluation {

using nlohmann::json;

std::string html_escape(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&#39;"; break;
            default: out.push_back(c);
        }
    }
    return out;
}

namespace {

std::string text_of(const json& value) {
    if (value.is_string()) {
        return html_escape(value.get<std::string>());
    }
    if (value.is_null()) {
        return "";
    }
    return html_escape(value.dump(-1, ' ', false, json::error_handler_t::replace));
}

std::string number(double value, int digits) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.*f", digits, value);
    return buffer;
}

constexpr std::string_view kStyle =
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
    "vertical-align:top;text-align:left}th{background:#f4f4f4}.yes{color:#176f2c}"
    ".no{color:#b3261e;font-weight:bold}.small{font-size:85%;color:#555}"
    "pre{white-space:pre-wrap;margin:0;max-width:40em}";

}  // namespace

std::string html_report(const json& run) {
    std::string out = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Evaluation " +
                      text_of(run.value("id", json(""))) + "</title><style>" +
                      std::string(kStyle) + "</style></head><body>\n";
    out += "<h1>Evaluation run " + text_of(run.value("id", json(""))) + "</h1>\n<p>Agent <b>" +
           text_of(run.value("agent", json(""))) + "</b>, set <b>" +
           text_of(run.value("set", json(""))) + "</b> version " +
           text_of(run.value("set_version", json(0))) + ", status " +
           text_of(run.value("status", json(""))) + ".</p>\n";
    out += "<h2>Judges</h2>\n<table><tr><th>judge</th><th>pass rate</th><th>95% interval</th>"
           "<th>n</th><th>errors</th></tr>\n";
    const json aggregates_of_run = run.value("aggregates", json::object());
    for (const auto& [name, a] : aggregates_of_run.items()) {
        out += "<tr><td>" + html_escape(name) + "</td><td>" +
               number(a.value("pass_rate", 0.0) * 100, 1) + "%</td><td>" +
               number(a.value("ci_low", 0.0) * 100, 1) + "% &ndash; " +
               number(a.value("ci_high", 0.0) * 100, 1) + "%</td><td>" +
               std::to_string(a.value("n", 0)) + "</td><td>" +
               std::to_string(a.value("errors", 0)) + "</td></tr>\n";
    }
    out += "</table>\n<h2>Metrics (means)</h2>\n<table><tr><th>metric</th><th>value</th></tr>\n";
    const json metrics_of_run = run.value("metrics", json::object());
    for (const auto& [name, value] : metrics_of_run.items()) {
        out += "<tr><td>" + html_escape(name) + "</td><td>" +
               (value.is_number() ? number(value.get<double>(), 4) : text_of(value)) +
               "</td></tr>\n";
    }
    out += "</table>\n<h2>Rows</h2>\n<table><tr><th>#</th><th>request</th><th>response</th>"
           "<th>expected</th><th>verdicts</th><th>root cause</th><th>trace</th></tr>\n";
    for (const auto& row : run.value("rows", json::array())) {
        std::string verdicts;
        const json verdicts_of_row = row.value("verdicts", json::object());
        for (const auto& [name, v] : verdicts_of_row.items()) {
            std::string verdict = v.value("verdict", "");
            verdicts += "<div><span class=\"" + std::string(verdict == "yes" ? "yes" : "no") +
                        "\">" + html_escape(name) + ": " + html_escape(verdict) +
                        "</span> <span class=\"small\">" + text_of(v.value("rationale", json(""))) +
                        "</span></div>";
        }
        const json judge_errors_of_row = row.value("judge_errors", json::object());
        for (const auto& [name, error] : judge_errors_of_row.items()) {
            verdicts += "<div class=\"small\">" + html_escape(name) + ": no verdict (" +
                        text_of(error) + ")</div>";
        }
        out += "<tr><td>" + text_of(row.value("index", json(0))) + "</td><td><pre>" +
               text_of(row.value("request", json(""))) + "</pre></td><td><pre>" +
               text_of(row.value("response", json(""))) + "</pre></td><td><pre>" +
               text_of(row.value("expected_response", json(nullptr))) + "</pre></td><td>" +
               verdicts + "</td><td>" + text_of(row.value("root_cause", json(""))) +
               "</td><td class=\"small\">" + text_of(row.value("trace_id", json(""))) +
               "</td></tr>\n";
    }
    out += "</table>\n</body></html>\n";
    return out;
}

}  // namespace sluice::agents::evaluation
