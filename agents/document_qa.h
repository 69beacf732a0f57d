#pragma once
// Document QA: question → optional query rewrite → hybrid retrieval as the caller → sources
// packed to a token budget (counted by the model's tokenizer) → prompt from templates
// (configs/prompts/qa.json) → streamed answer with numbered citations, each resolving to the
// document's URI, title and character range. When nothing the caller may read is relevant, the
// configured refusal is the answer and the model is not asked.
//
// Relevance: a hit counts when it shares a term with the query (lexical score > 0) or its
// vector similarity reaches `min_similarity`; hybrid fusion alone ranks, it does not judge.
//
// Thread safety: answer_question() is reentrant; the index and model are thread-safe.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "agents/chat_model.h"
#include "agents/trace.h"
#include "common/result.h"
#include "retrieval/index.h"

namespace sluice::agents {

struct QaTemplates {
    std::string system;
    std::string source;   // {n}, {title}, {uri}, {text}
    std::string user;     // {sources}, {question}
    std::string rewrite;  // {question}
    std::string refusal;

    // The templates compiled in from configs/prompts/qa.json.
    static const QaTemplates& defaults();
    // kInvalidArgument naming a missing or non-string field, or a template without its
    // required placeholders ({text} in source, {sources} and {question} in user).
    static Result<QaTemplates> from_json(const nlohmann::json& json);
    static Result<QaTemplates> load(const std::filesystem::path& path);
};

// Replaces {name} placeholders in one pass; values are not scanned again, so text from
// documents or users cannot smuggle placeholders in. Unknown {names} stay as written.
std::string fill_template(std::string_view text,
                          const std::vector<std::pair<std::string, std::string>>& values);

struct QaOptions {
    size_t k = 8;
    std::int64_t max_context_tokens = 1500;
    double min_similarity = 0.5;
    bool rewrite = false;
    int max_answer_tokens = 256;
    QaTemplates templates = QaTemplates::defaults();
};
// Reads k, max_context_tokens, min_similarity, rewrite, max_answer_tokens over `defaults`;
// kInvalidArgument naming the bad field.
Result<QaOptions> qa_options_from_json(const nlohmann::json& json, QaOptions defaults);

struct Citation {
    int number = 0;  // [n] in the answer
    std::string doc_key;
    std::string uri;
    std::string title;
    std::uint64_t char_begin = 0;  // [char_begin, char_end) of the document's text
    std::uint64_t char_end = 0;
    double score = 0;
    bool cited = false;  // the answer mentions [n]
    // The chunk text the model was shown (for judges of groundedness); not part of the JSON.
    std::string text;
};

struct QaStageTimes {
    double rewrite_s = 0;
    double retrieve_s = 0;
    double pack_s = 0;
    double prefill_s = 0;
    double decode_s = 0;
};

struct QaResult {
    std::string answer;
    std::string query;  // what was searched (the rewrite, or the question)
    std::vector<Citation> citations;  // every source the model was shown
    bool refused = false;
    std::int64_t context_tokens = 0;
    std::int64_t prompt_tokens = 0;
    std::int64_t completion_tokens = 0;
    QaStageTimes times;
};

// `on_text` (may be empty) receives the answer as it is produced (the refusal at once).
// kInvalidArgument for an empty or over-long question; the index's and model's errors.
Result<QaResult> answer_question(const std::string& question, const retrieval::Index& index,
                                 const retrieval::Reader& reader, ChatModel& model,
                                 const QaOptions& options, Trace* trace,
                                 const std::string& parent_span,
                                 const std::function<void(std::string_view)>& on_text);

nlohmann::json citation_to_json(const Citation& citation);

}  // namespace sluice::agents
