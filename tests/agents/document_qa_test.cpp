// Document QA end to end over a real index with access lists, driven by the scripted model.

#include "agents/document_qa.h"

#include "agents/scripted_chat_model.h"
#include "agents_fixture.h"
#include "doctest/doctest.h"

namespace sluice::agents {
namespace {

using nlohmann::json;

retrieval::Document doc(const std::string& key, const std::string& title, const std::string& text,
                        retrieval::Acl acl) {
    retrieval::Document d;
    d.key = key;
    d.uri = "file:///docs/" + key + ".md";
    d.title = title;
    d.text = text;
    d.acl = std::move(acl);
    return d;
}

struct Corpus {
    testing::TempDir dir{"qa"};
    std::unique_ptr<retrieval::Index> index;
    Corpus() {
        retrieval::IndexSettings settings;
        settings.name = "docs";
        settings.dimension = 256;
        settings.factory = "Flat";
        auto created = retrieval::Index::create(dir.path / "docs", settings, {});
        REQUIRE(created.ok());
        index = std::move(*created);
        REQUIRE(index
                    ->upsert({doc("holidays", "Holiday policy",
                                  "Employees receive twenty five days of paid holiday per year.",
                                  {{}, {"staff"}}),
                              doc("salaries", "Salary bands",
                                  "The salary band for engineers tops out at ninety thousand.",
                                  {{}, {"hr"}}),
                              doc("parking", "Parking",
                                  "Parking spaces are assigned by the facilities team.",
                                  {{}, {"staff"}})})
                    .ok());
    }
};

std::unique_ptr<ScriptedChatModel> script(const char* text) {
    auto model = ScriptedChatModel::make(json::parse(text));
    REQUIRE(model.ok());
    return std::move(*model);
}

}  // namespace

TEST_CASE("templates fill in one pass and are checked") {
    CHECK(fill_template("[{n}] {title}: {text} {unknown}",
                        {{"n", "1"}, {"title", "{text}"}, {"text", "body"}}) ==
          "[1] {text}: body {unknown}");
    const QaTemplates& defaults = QaTemplates::defaults();
    CHECK(defaults.user.find("{question}") != std::string::npos);
    json broken = {{"system", "s"}, {"source", "no text"}, {"user", "{sources}{question}"},
                   {"rewrite", "{question}"}, {"refusal", "r"}};
    CHECK(QaTemplates::from_json(broken).status().message() ==
          "qa templates.source: needs {text}");
    CHECK(qa_options_from_json(json{{"k", 0}}, {}).status().message() ==
          "k: expected an integer in 1..50");
    CHECK(qa_options_from_json(json{{"top_k", 3}}, {}).status().message() ==
          "options: unknown field 'top_k' (expected k, max_context_tokens, min_similarity, "
          "rewrite, max_tokens)");
    // Past int's range an integer is out of range, not its low 32 bits (2^32 + 1 read as 1).
    for (json big : {json(4294967297LL), json(-4294967295LL), json(18446744073709551615ULL)}) {
        CAPTURE(big);
        CHECK(qa_options_from_json(json{{"k", big}}, {}).status().message() ==
              "k: expected an integer in 1..50");
        CHECK(qa_options_from_json(json{{"max_tokens", big}}, {}).status().message() ==
              "max_tokens: expected an integer in 1..32768");
    }
}

TEST_CASE("an answer cites the packed sources by number, with URI, title and range") {
    Corpus corpus;
    auto model = script(R"([{"content": "You get twenty five days [1]."}])");
    Trace trace("alice", "req_qa");
    std::string streamed;
    auto result = answer_question("How many holiday days do employees get?", *corpus.index,
                                  {"alice", {"staff"}}, *model, QaOptions{}, &trace, "",
                                  [&](std::string_view text) { streamed += text; });
    REQUIRE(result.ok());
    CHECK_FALSE(result->refused);
    CHECK(result->answer == "You get twenty five days [1].");
    CHECK(streamed == result->answer);
    REQUIRE_FALSE(result->citations.empty());
    const Citation& first = result->citations[0];
    CHECK(first.number == 1);
    CHECK(first.uri == "file:///docs/holidays.md");
    CHECK(first.title == "Holiday policy");
    CHECK(first.char_begin == 0);
    CHECK(first.char_end == 60);  // the whole 60-byte document
    CHECK(first.cited);
    // The model was shown the source under its number, and nothing alice may not read.
    auto seen = model->requests();
    REQUIRE(seen.size() == 1);
    const std::string& prompt = seen[0].messages.back().content;
    CHECK(prompt.find("[1] Holiday policy (file:///docs/holidays.md)") != std::string::npos);
    CHECK(prompt.find("salary") == std::string::npos);
    for (const auto& citation : result->citations) {
        CHECK(citation.doc_key != "salaries");
    }
    std::vector<std::string> names;
    for (const auto& span : trace.record().spans) {
        names.push_back(span.name);
    }
    CHECK(names == std::vector<std::string>{"qa", "retrieve", "pack", "answer"});
}

TEST_CASE("nothing readable and relevant: the refusal, without asking the model") {
    Corpus corpus;
    auto model = script(R"([{"content": "never"}])");
    // Bob is in no group: every document's access list refuses him.
    auto result = answer_question("What is the salary band for engineers?", *corpus.index,
                                  {"bob", {}}, *model, QaOptions{}, nullptr, "", {});
    REQUIRE(result.ok());
    CHECK(result->refused);
    CHECK(result->answer == QaTemplates::defaults().refusal);
    CHECK(model->calls() == 0);
    // Staff may read documents, but none shares a term with this question.
    auto unrelated = answer_question("zebra quantum xylophone", *corpus.index,
                                     {"alice", {"staff"}}, *model, QaOptions{}, nullptr, "", {});
    REQUIRE(unrelated.ok());
    CHECK(unrelated->refused);
}

TEST_CASE("the context budget limits what is packed; a rewrite changes the query") {
    Corpus corpus;
    auto model = script(R"([{"content": "holiday parking"}, {"content": "Both [1] [2]."}])");
    QaOptions options;
    options.rewrite = true;
    auto both = answer_question("days off and car spaces?", *corpus.index, {"alice", {"staff"}},
                                *model, options, nullptr, "", {});
    REQUIRE(both.ok());
    CHECK(both->query == "holiday parking");
    CHECK(both->citations.size() == 2);

    auto model2 = script(R"([{"content": "One [1]."}])");
    options.rewrite = false;
    options.max_context_tokens = 20;  // room for one source of ~15 words
    auto one = answer_question("holiday parking", *corpus.index, {"alice", {"staff"}}, *model2,
                               options, nullptr, "", {});
    REQUIRE(one.ok());
    CHECK(one->citations.size() == 1);
    CHECK(one->context_tokens <= 20);
    CHECK(answer_question("  ", *corpus.index, {"alice", {}}, *model2, options, nullptr, "", {})
              .status()
              .code() == StatusCode::kInvalidArgument);
}

}  // namespace sluice::agents
