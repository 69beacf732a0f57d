#pragma once
// The HTML report of a run: one self-contained page (inline style, no script, nothing fetched)
// with the pass rate of each judge and its 95% interval, the mean metrics, and every row with
// its request, response, expected answer, verdicts and rationales, root cause and trace id.
// Every piece of text from the set, the model or the caller is HTML-escaped.
//
// Thread safety: pure functions.

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace sluice::agents::evaluation {

// & < > " ' as entities.
std::string html_escape(std::string_view text);

// `run` is a stored run object.
std::string html_report(const nlohmann::json& run);

}  // namespace sluice::agents::evaluation
