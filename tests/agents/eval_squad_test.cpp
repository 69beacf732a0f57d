// A real QA set end to end: SQuAD 2.0 dev questions (the CS224n subset in the shared data
// folder) run through document QA over an index of their paragraphs, with deterministic metrics
// computed against the human gold answers and the gold paragraph.

#include <cctype>
#include <set>

#include "agents/evaluation/runs.h"
#include "agents/evaluation/targets.h"
#include "agents/scripted_chat_model.h"
#include "agents_fixture.h"
#include "doctest/doctest.h"
#include "retrieval/index_manager.h"
#include "retrieval/text_file.h"

namespace sluice::agents::evaluation {
namespace {

using nlohmann::json;

std::filesystem::path squad_path() {
    const char* shared = std::getenv("SLUICE_SHARED_DIR");
    return std::filesystem::path(shared ? shared : SLUICE_SOURCE_DIR "/../shared") / "data" /
           "squad2_dev_cs224n_subset" / "qa.answerable.jsonl.gz";
}

std::string paragraph_uri(const json& q) {
    return "squad://" + q["title"].get<std::string>() + "/" +
           std::to_string(q["paragraph_index"].get<int>());
}

// Letters only, lower case: enough to tell whether a gold answer is "France".
std::string letters(const std::string& text) {
    std::string out;
    for (char c : text) {
        if (std::isalpha(static_cast<unsigned char>(c))) {
            out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
        }
    }
    return out;
}

}  // namespace

TEST_CASE("SQuAD 2.0 dev questions run end to end with metrics against the gold answers") {
    if (!std::filesystem::exists(squad_path())) {
        MESSAGE("skipped: " << squad_path() << " is not here");
        return;
    }
    auto text = retrieval::read_text_file(squad_path());
    REQUIRE_MESSAGE(text.ok(), text.status().to_string());
    std::vector<json> questions;
    size_t at = 0;
    while (at < text->size() && questions.size() < 300) {
        size_t end = text->find('\n', at);
        questions.push_back(json::parse(text->substr(at, end - at)));
        at = end == std::string::npos ? text->size() : end + 1;
    }
    // Every paragraph of the first 300 questions is a document; the first 60 are asked.
    // The world's owner is a metastore admin: SELECT on the index is granted by that.
    testing::World world;
    testing::TempDir& dir = world.dir;
    auto indexes = retrieval::IndexManager::open(dir.path / "indexes", {});
    REQUIRE(indexes.ok());
    retrieval::IndexSettings settings;
    settings.name = "main.tools.squad";
    settings.dimension = 256;
    settings.factory = "Flat";
    auto index = (*indexes)->create(settings);
    REQUIRE(index.ok());
    REQUIRE(world.gov->store()
                .create_securable(governance::SecurableType::kVectorIndex, settings.name,
                                  world.owner.id, "", {})
                .ok());
    std::set<std::string> seen;
    std::vector<retrieval::Document> documents;
    for (const auto& q : questions) {
        std::string uri = paragraph_uri(q);
        if (!seen.insert(uri).second) {
            continue;
        }
        retrieval::Document d;
        d.key = uri;
        d.uri = uri;
        d.title = q["title"];
        d.text = q["context"];
        d.acl.groups = {"staff"};
        documents.push_back(std::move(d));
    }
    REQUIRE(documents.size() > 20);
    REQUIRE((*index)->upsert(documents).ok());

    std::vector<EvalRow> rows;
    for (size_t i = 0; i < 60; ++i) {
        EvalRow row;
        row.request = questions[i]["question"];
        auto answers = questions[i]["answers"].get<std::vector<std::string>>();
        row.expected_response = answers.front();
        row.accepted_responses.assign(answers.begin() + 1, answers.end());
        row.expected_retrieved_context = {{paragraph_uri(questions[i]), ""}};
        rows.push_back(std::move(row));
    }
    auto store = EvalStore::open(dir.path / "catalog.db");
    auto traces = TraceStore::open(dir.path / "catalog.db");
    REQUIRE((store.ok() && traces.ok()));
    REQUIRE((*store)->add_version("main.qa.squad", rows, "owner").ok());

    // The answering model always says "France": exact match is then 1 exactly on the questions
    // whose gold answers include France, which the test counts from the data itself.
    auto answerer = ScriptedChatModel::make(json::array({{{"content", "France."}}}), true);
    auto judge = ScriptedChatModel::make(
        json::array({{{"content", R"({"rationale":"on topic","verdict":"yes"})"}}}), true);
    REQUIRE((answerer.ok() && judge.ok()));
    QaOptions qa;
    qa.k = 5;
    qa.max_context_tokens = 100000;
    std::shared_ptr<ChatModel> model = std::move(*answerer);
    Target target = qa_target(world.gov->authorizer(), **indexes, settings.name,
                              retrieval::Reader{"owner", {"staff"}}, model, qa, traces->get(),
                              world.as(world.owner));
    EvalOptions options;
    options.judges = {*builtin_judge("relevance")};
    options.concurrency = 8;
    options.k = 5;
    auto run = run_and_store(**store, {"qa:squad", "main.qa.squad", 0, "owner"}, target, **judge,
                             options);
    REQUIRE_MESSAGE(run.ok(), run.status().to_string());
    REQUIRE((*run)["rows"].size() == 60);

    int france = 0;
    double recall_sum = 0;
    for (size_t i = 0; i < 60; ++i) {
        const json& row = (*run)["rows"][i];
        bool gold_is_france = false;
        for (const auto& answer : questions[i]["answers"]) {
            gold_is_france = gold_is_france || letters(answer.get<std::string>()) == "france";
        }
        france += gold_is_france ? 1 : 0;
        CHECK(row["metrics"]["exact_match"].get<double>() == (gold_is_france ? 1.0 : 0.0));
        CHECK(row["metrics"]["token_f1"].get<double>() >=
              row["metrics"]["exact_match"].get<double>());
        bool found = false;
        for (const auto& chunk : row["retrieved_context"]) {
            found = found || chunk["doc_uri"] == paragraph_uri(questions[i]);
            CHECK_FALSE(chunk["content"].get<std::string>().empty());
        }
        CHECK(row["metrics"]["retrieval_recall"].get<double>() == (found ? 1.0 : 0.0));
        recall_sum += row["metrics"]["retrieval_recall"].get<double>();
        CHECK(row["trace_id"].get<std::string>().size() == 32);
        CHECK(row["verdicts"]["relevance"]["verdict"] == "yes");
    }
    CHECK(france > 0);
    CHECK((*run)["metrics"]["exact_match"].get<double>() == doctest::Approx(france / 60.0));
    // Lexical retrieval finds the gold paragraph for most SQuAD questions among ~50 paragraphs.
    CHECK(recall_sum / 60 >= 0.6);
    CHECK((*traces)->get((*run)["rows"][0]["trace_id"]).ok());
    MESSAGE("SQuAD: " << france << " of 60 gold answers are France; mean recall@5 "
                      << recall_sum / 60 << "; mean F1 " << (*run)["metrics"]["token_f1"]);
}

}  // namespace sluice::agents::evaluation
