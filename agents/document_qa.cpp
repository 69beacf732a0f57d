#include "agents/document_qa.h"

#include <chrono>
#include <fstream>
#include <sstream>

#include "agents/detail/known_fields.h"
#include "agents/qa_templates_default.h"

namespace sluice::agents {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr size_t kMaxQuestionBytes = 8192;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

std::string fill_template(std::string_view text,
                          const std::vector<std::pair<std::string, std::string>>& values) {
    std::string out;
    size_t at = 0;
    while (at < text.size()) {
        size_t open = text.find('{', at);
        if (open == std::string_view::npos) {
            out += text.substr(at);
            break;
        }
        out += text.substr(at, open - at);
        size_t close = text.find('}', open);
        if (close == std::string_view::npos) {
            out += text.substr(open);
            break;
        }
        std::string_view name = text.substr(open + 1, close - open - 1);
        bool replaced = false;
        for (const auto& [key, value] : values) {
            if (key == name) {
                out += value;
                replaced = true;
                break;
            }
        }
        if (!replaced) {
            out += text.substr(open, close - open + 1);
        }
        at = close + 1;
    }
    return out;
}

Result<QaTemplates> QaTemplates::from_json(const json& value) {
    if (!value.is_object()) {
        return invalid_argument("qa templates: expected an object");
    }
    QaTemplates out;
    std::pair<const char*, std::string*> fields[] = {{"system", &out.system},
                                                     {"source", &out.source},
                                                     {"user", &out.user},
                                                     {"rewrite", &out.rewrite},
                                                     {"refusal", &out.refusal}};
    for (auto& [name, into] : fields) {
        if (!value.contains(name) || !value[name].is_string()) {
            return invalid_argument(std::string("qa templates.") + name + ": expected a string");
        }
        *into = value[name].get<std::string>();
    }
    auto needs = [](const std::string& text, const char* field, const char* placeholder) {
        return text.find(placeholder) == std::string::npos
                   ? invalid_argument(std::string("qa templates.") + field + ": needs " +
                                      placeholder)
                   : Status();
    };
    SLUICE_RETURN_IF_ERROR(needs(out.source, "source", "{text}"));
    SLUICE_RETURN_IF_ERROR(needs(out.source, "source", "{n}"));
    SLUICE_RETURN_IF_ERROR(needs(out.user, "user", "{sources}"));
    SLUICE_RETURN_IF_ERROR(needs(out.user, "user", "{question}"));
    SLUICE_RETURN_IF_ERROR(needs(out.rewrite, "rewrite", "{question}"));
    return out;
}

const QaTemplates& QaTemplates::defaults() {
    static const QaTemplates kDefaults = [] {
        auto parsed = from_json(json::parse(detail::kDefaultQaTemplates));
        SLUICE_CHECK(parsed.ok(), "configs/prompts/qa.json is checked at build: " +
                                      parsed.status().message());
        return *parsed;
    }();
    return kDefaults;
}

Result<QaTemplates> QaTemplates::load(const std::filesystem::path& path) {
    std::ifstream in(path);
    if (!in) {
        return io_error("cannot read qa templates " + path.string());
    }
    std::stringstream text;
    text << in.rdbuf();
    json value = json::parse(text.str(), nullptr, false);
    if (value.is_discarded()) {
        return invalid_argument("qa templates " + path.string() + ": not JSON");
    }
    return from_json(value);
}

Result<QaOptions> qa_options_from_json(const json& value, QaOptions defaults) {
    if (value.is_null()) {
        return defaults;
    }
    if (!value.is_object()) {
        return invalid_argument("options: expected an object");
    }
    SLUICE_RETURN_IF_ERROR(detail::refuse_unknown_fields(
        value, "options", {"k", "max_context_tokens", "min_similarity", "rewrite", "max_tokens"}));
    QaOptions out = std::move(defaults);
    // Integers are compared as 64-bit numbers: read as int, 4294967297 became 1 and passed.
    if (value.contains("k")) {
        const json& v = value["k"];
        if (!v.is_number_integer() || v.get<std::int64_t>() < 1 || v.get<std::int64_t>() > 50) {
            return invalid_argument("k: expected an integer in 1..50");
        }
        out.k = v.get<size_t>();
    }
    if (value.contains("max_context_tokens")) {
        const json& v = value["max_context_tokens"];
        if (!v.is_number_integer() || v.get<std::int64_t>() < 16 ||
            v.get<std::int64_t>() > 1000000) {
            return invalid_argument("max_context_tokens: expected an integer in 16..1000000");
        }
        out.max_context_tokens = v.get<std::int64_t>();
    }
    if (value.contains("min_similarity")) {
        const json& v = value["min_similarity"];
        if (!v.is_number() || v.get<double>() < -1 || v.get<double>() > 1) {
            return invalid_argument("min_similarity: expected a number in [-1, 1]");
        }
        out.min_similarity = v.get<double>();
    }
    if (value.contains("rewrite")) {
        if (!value["rewrite"].is_boolean()) {
            return invalid_argument("rewrite: expected true or false");
        }
        out.rewrite = value["rewrite"].get<bool>();
    }
    if (value.contains("max_tokens")) {
        const json& v = value["max_tokens"];
        if (!v.is_number_integer() || v.get<std::int64_t>() < 1 || v.get<std::int64_t>() > 32768) {
            return invalid_argument("max_tokens: expected an integer in 1..32768");
        }
        out.max_answer_tokens = v.get<int>();
    }
    return out;
}

json citation_to_json(const Citation& c) {
    return {{"number", c.number},     {"doc_key", c.doc_key},       {"uri", c.uri},
            {"title", c.title},       {"char_begin", c.char_begin}, {"char_end", c.char_end},
            {"score", c.score},       {"cited", c.cited}};
}

Result<QaResult> answer_question(const std::string& question, const retrieval::Index& index,
                                 const retrieval::Reader& reader, ChatModel& model,
                                 const QaOptions& options, Trace* trace,
                                 const std::string& parent_span,
                                 const std::function<void(std::string_view)>& on_text) {
    if (question.find_first_not_of(" \t\r\n") == std::string::npos) {
        return invalid_argument("question: empty");
    }
    if (question.size() > kMaxQuestionBytes) {
        return invalid_argument("question: " + std::to_string(question.size()) +
                                " bytes, at most " + std::to_string(kMaxQuestionBytes));
    }
    SpanScope root(trace, SpanKind::kChain, "qa", parent_span, {{"question", question}});
    QaResult result;
    result.query = question;
    const QaTemplates& templates = options.templates;

    if (options.rewrite) {
        Clock::time_point start = Clock::now();
        SpanScope span(trace, SpanKind::kLlm, "rewrite", root.id(), {{"question", question}});
        ModelRequest request;
        request.messages.push_back(
            {"user", fill_template(templates.rewrite, {{"question", question}}), {}, {}});
        request.max_tokens = 32;
        auto reply = model.complete(request);
        if (!reply.ok()) {
            span.fail(reply.status().message());
            root.fail(reply.status().message());
            return reply.status();
        }
        span.add_tokens(reply->prompt_tokens, reply->completion_tokens);
        result.prompt_tokens += reply->prompt_tokens;
        result.completion_tokens += reply->completion_tokens;
        std::string rewritten = reply->text;
        size_t end = rewritten.find_last_not_of(" \t\r\n");
        rewritten = end == std::string::npos ? "" : rewritten.substr(0, end + 1);
        if (!rewritten.empty()) {
            result.query = rewritten;
        }
        span.set_outputs({{"query", result.query}});
        result.times.rewrite_s = seconds_since(start);
    }

    Clock::time_point retrieve_start = Clock::now();
    std::vector<retrieval::Hit> hits;
    {
        SpanScope span(trace, SpanKind::kRetriever, "retrieve", root.id(),
                       {{"query", result.query}, {"k", options.k},
                        {"index", index.settings().name}});
        retrieval::Query query;
        query.text = result.query;
        query.k = options.k;
        query.mode = index.settings().embedder == "none" ? retrieval::QueryMode::kLexical
                                                         : retrieval::QueryMode::kHybrid;
        auto found = index.query(query, reader);
        if (!found.ok()) {
            span.fail(found.status().message());
            root.fail(found.status().message());
            return found.status();
        }
        for (auto& hit : *found) {
            if (hit.lexical_score > 0 || hit.vector_score >= options.min_similarity) {
                hits.push_back(std::move(hit));
            }
        }
        json out = json::array();
        for (const auto& hit : hits) {
            out.push_back({{"uri", hit.chunk.uri}, {"score", hit.score}});
        }
        span.set_outputs({{"hits", out}, {"dropped", found->size() - hits.size()}});
    }
    result.times.retrieve_s = seconds_since(retrieve_start);

    Clock::time_point pack_start = Clock::now();
    std::string sources;
    {
        SpanScope span(trace, SpanKind::kChain, "pack", root.id(),
                       {{"budget_tokens", options.max_context_tokens}});
        for (const auto& hit : hits) {
            int number = static_cast<int>(result.citations.size()) + 1;
            std::string block = fill_template(templates.source,
                                              {{"n", std::to_string(number)},
                                               {"title", hit.chunk.title},
                                               {"uri", hit.chunk.uri},
                                               {"text", hit.chunk.text}});
            std::int64_t tokens = model.count_tokens(block);
            if (result.context_tokens + tokens > options.max_context_tokens) {
                continue;  // a later, shorter source may still fit
            }
            result.context_tokens += tokens;
            sources += block;
            result.citations.push_back({number, hit.chunk.doc_key, hit.chunk.uri, hit.chunk.title,
                                        hit.chunk.char_begin, hit.chunk.char_end, hit.score,
                                        false, hit.chunk.text});
        }
        span.set_outputs({{"sources", result.citations.size()},
                          {"context_tokens", result.context_tokens}});
    }
    result.times.pack_s = seconds_since(pack_start);

    if (result.citations.empty()) {
        result.refused = true;
        result.answer = templates.refusal;
        if (on_text) {
            on_text(result.answer);
        }
        root.set_outputs({{"refused", true}, {"answer", result.answer}});
        return result;
    }

    SpanScope span(trace, SpanKind::kLlm, "answer", root.id(),
                   {{"sources", result.citations.size()}});
    ModelRequest request;
    request.messages.push_back({"system", templates.system, {}, {}});
    request.messages.push_back(
        {"user", fill_template(templates.user, {{"sources", sources}, {"question", question}}),
         {}, {}});
    request.max_tokens = options.max_answer_tokens;
    request.on_text = on_text;
    auto reply = model.complete(request);
    if (!reply.ok()) {
        span.fail(reply.status().message());
        root.fail(reply.status().message());
        return reply.status();
    }
    span.add_tokens(reply->prompt_tokens, reply->completion_tokens);
    span.set_outputs({{"text", reply->text}});
    result.answer = reply->text;
    result.prompt_tokens += reply->prompt_tokens;
    result.completion_tokens += reply->completion_tokens;
    result.times.prefill_s = reply->prefill_seconds;
    result.times.decode_s = reply->decode_seconds;
    for (Citation& citation : result.citations) {
        citation.cited =
            result.answer.find("[" + std::to_string(citation.number) + "]") != std::string::npos;
    }
    root.set_outputs({{"refused", false}, {"citations", result.citations.size()}});
    return result;
}

}  // namespace sluice::agents
