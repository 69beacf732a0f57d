#include "agents/evaluation/eval_set.h"

#include <set>

#include "agents/trace.h"

namespace sluice::agents::evaluation {
namespace {

using nlohmann::json;

const std::set<std::string>& known_fields() {
    static const std::set<std::string> fields = {
        "request",    "expected_response", "accepted_responses", "expected_facts",
        "expected_retrieved_context",      "guidelines",         "response",
        "retrieved_context",               "source_trace_id"};
    return fields;
}

Result<std::optional<std::string>> optional_string(const json& value, const char* field,
                                                   const std::string& where) {
    if (!value.contains(field) || value[field].is_null()) {
        return std::optional<std::string>();
    }
    if (!value[field].is_string()) {
        return invalid_argument(where + ": " + field + ": expected a string, found " +
                                value[field].type_name());
    }
    return std::optional<std::string>(value[field].get<std::string>());
}

// A string or an array of strings (guidelines may be written either way).
Result<std::vector<std::string>> strings(const json& value, const char* field,
                                         const std::string& where, bool allow_single) {
    std::vector<std::string> out;
    if (!value.contains(field) || value[field].is_null()) {
        return out;
    }
    const json& list = value[field];
    if (allow_single && list.is_string()) {
        out.push_back(list.get<std::string>());
        return out;
    }
    if (!list.is_array()) {
        return invalid_argument(where + ": " + field + ": expected an array of strings, found " +
                                list.type_name());
    }
    for (size_t i = 0; i < list.size(); ++i) {
        if (!list[i].is_string()) {
            return invalid_argument(where + ": " + field + "[" + std::to_string(i) +
                                    "]: expected a string, found " + list[i].type_name());
        }
        out.push_back(list[i].get<std::string>());
    }
    return out;
}

Result<std::vector<ContextChunk>> chunks(const json& list, const std::string& field,
                                         const std::string& where) {
    if (!list.is_array()) {
        return invalid_argument(where + ": " + field + ": expected an array of {doc_uri, content}, "
                                "found " + list.type_name());
    }
    std::vector<ContextChunk> out;
    for (size_t i = 0; i < list.size(); ++i) {
        std::string at = where + ": " + field + "[" + std::to_string(i) + "]";
        const json& item = list[i];
        if (!item.is_object()) {
            return invalid_argument(at + ": expected an object with doc_uri and content");
        }
        for (const auto& [key, unused] : item.items()) {
            if (key != "doc_uri" && key != "content") {
                return invalid_argument(at + ": unknown field '" + key +
                                        "' (expected doc_uri, content)");
            }
        }
        ContextChunk chunk;
        for (const char* key : {"doc_uri", "content"}) {
            if (item.contains(key) && !item[key].is_string()) {
                return invalid_argument(at + "." + key + ": expected a string");
            }
        }
        chunk.doc_uri = item.value("doc_uri", "");
        chunk.content = item.value("content", "");
        if (chunk.doc_uri.empty() && chunk.content.empty()) {
            return invalid_argument(at + ": needs doc_uri or content");
        }
        out.push_back(std::move(chunk));
    }
    return out;
}

// Thrown from the parser's callback at a member named twice; caught in parse_line.
struct RepeatedName {
    std::string name;
};

// One line of JSON lines. A member named twice in one object is refused, as request bodies
// refuse it (app/strict_json.h): parsers disagree on which value wins, so a tool that checked
// the file would read another row than the one stored.
Result<json> parse_line(std::string_view line, const std::string& where) {
    std::vector<std::set<std::string>> open;  // the member names of each open object
    auto check_names = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
        if (event == json::parse_event_t::object_start) {
            open.emplace_back();
        } else if (event == json::parse_event_t::object_end) {
            open.pop_back();
        } else if (event == json::parse_event_t::key &&
                   !open.back().insert(parsed.get<std::string>()).second) {
            throw RepeatedName{parsed.get<std::string>()};
        }
        return true;
    };
    // nlohmann::json throws; its errors become a Status here.
    try {
        return json::parse(line, check_names);
    } catch (const RepeatedName& repeated) {
        return invalid_argument(where + ": the name '" + repeated.name +
                                "' appears twice in one object");
    } catch (const json::exception&) {
        return invalid_argument(where + ": not valid JSON");
    }
}

}  // namespace

std::vector<std::string> EvalRow::gold_answers() const {
    std::vector<std::string> out;
    if (expected_response) {
        out.push_back(*expected_response);
    }
    out.insert(out.end(), accepted_responses.begin(), accepted_responses.end());
    return out;
}

Result<EvalRow> eval_row_from_json(const json& value, const std::string& where) {
    if (!value.is_object()) {
        return invalid_argument(where + ": expected a JSON object, found " + value.type_name());
    }
    for (const auto& [key, unused] : value.items()) {
        if (known_fields().count(key) == 0) {
            return invalid_argument(where + ": unknown field '" + key + "'");
        }
    }
    EvalRow row;
    if (!value.contains("request")) {
        return invalid_argument(where + ": request: required");
    }
    if (!value["request"].is_string() || value["request"].get<std::string>().empty()) {
        return invalid_argument(where + ": request: expected a non-empty string");
    }
    row.request = value["request"].get<std::string>();
    SLUICE_ASSIGN_OR_RETURN(row.expected_response,
                            optional_string(value, "expected_response", where));
    SLUICE_ASSIGN_OR_RETURN(row.response, optional_string(value, "response", where));
    SLUICE_ASSIGN_OR_RETURN(auto trace, optional_string(value, "source_trace_id", where));
    row.source_trace_id = trace.value_or("");
    SLUICE_ASSIGN_OR_RETURN(row.accepted_responses,
                            strings(value, "accepted_responses", where, false));
    SLUICE_ASSIGN_OR_RETURN(row.expected_facts, strings(value, "expected_facts", where, false));
    SLUICE_ASSIGN_OR_RETURN(row.guidelines, strings(value, "guidelines", where, true));
    if (value.contains("expected_retrieved_context") &&
        !value["expected_retrieved_context"].is_null()) {
        SLUICE_ASSIGN_OR_RETURN(row.expected_retrieved_context,
                                chunks(value["expected_retrieved_context"],
                                       "expected_retrieved_context", where));
    }
    if (value.contains("retrieved_context") && !value["retrieved_context"].is_null()) {
        if (!row.response) {
            return invalid_argument(where +
                                    ": retrieved_context: given without the response it led to");
        }
        SLUICE_ASSIGN_OR_RETURN(auto retrieved,
                                chunks(value["retrieved_context"], "retrieved_context", where));
        row.retrieved_context = std::move(retrieved);
    }
    return row;
}

json context_to_json(const std::vector<ContextChunk>& list) {
    json out = json::array();
    for (const auto& chunk : list) {
        out.push_back({{"doc_uri", chunk.doc_uri}, {"content", chunk.content}});
    }
    return out;
}

json eval_row_to_json(const EvalRow& row) {
    json out = {{"request", row.request}};
    if (row.expected_response) {
        out["expected_response"] = *row.expected_response;
    }
    if (!row.accepted_responses.empty()) {
        out["accepted_responses"] = row.accepted_responses;
    }
    if (!row.expected_facts.empty()) {
        out["expected_facts"] = row.expected_facts;
    }
    if (!row.expected_retrieved_context.empty()) {
        out["expected_retrieved_context"] = context_to_json(row.expected_retrieved_context);
    }
    if (!row.guidelines.empty()) {
        out["guidelines"] = row.guidelines;
    }
    if (row.response) {
        out["response"] = *row.response;
    }
    if (row.retrieved_context) {
        out["retrieved_context"] = context_to_json(*row.retrieved_context);
    }
    if (!row.source_trace_id.empty()) {
        out["source_trace_id"] = row.source_trace_id;
    }
    return out;
}

Result<std::vector<EvalRow>> parse_eval_jsonl(std::string_view text) {
    std::vector<EvalRow> rows;
    size_t line_no = 0;
    size_t at = 0;
    while (at <= text.size()) {
        size_t end = text.find('\n', at);
        if (end == std::string_view::npos) {
            end = text.size();
        }
        ++line_no;
        std::string_view line = text.substr(at, end - at);
        at = end + 1;
        if (line.find_first_not_of(" \t\r") == std::string_view::npos) {
            continue;
        }
        std::string where = "line " + std::to_string(line_no);
        SLUICE_ASSIGN_OR_RETURN(json value, parse_line(line, where));
        SLUICE_ASSIGN_OR_RETURN(EvalRow row, eval_row_from_json(value, where));
        rows.push_back(std::move(row));
    }
    if (rows.empty()) {
        return invalid_argument("the evaluation set has no rows");
    }
    return rows;
}

Result<std::vector<EvalRow>> eval_rows_from_json(const json& list) {
    if (!list.is_array()) {
        return invalid_argument(std::string("rows: expected an array of objects, found ") +
                                list.type_name());
    }
    if (list.empty()) {
        return invalid_argument("rows: the evaluation set has no rows");
    }
    std::vector<EvalRow> rows;
    for (size_t i = 0; i < list.size(); ++i) {
        SLUICE_ASSIGN_OR_RETURN(EvalRow row,
                                eval_row_from_json(list[i], "rows[" + std::to_string(i) + "]"));
        rows.push_back(std::move(row));
    }
    return rows;
}

std::string eval_rows_to_jsonl(const std::vector<EvalRow>& rows) {
    std::string out;
    for (const auto& row : rows) {
        out += dump_safe(eval_row_to_json(row));
        out += '\n';
    }
    return out;
}

}  // namespace sluice::agents::evaluation
