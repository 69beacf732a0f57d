#include "retrieval/text_analyzer.h"

#include <doctest/doctest.h>

using namespace sluice::retrieval;
using sluice::StatusCode;

TEST_CASE("english analysis lower-cases, drops stop words and possessives, and stems") {
    auto analyzer = TextAnalyzer::create("english");
    REQUIRE(analyzer.ok());
    auto terms = (*analyzer)->analyze("The patient's Infections were RUNNING in 2 trials.");
    std::vector<std::string> expected = {"patient", "infect", "were", "run", "2", "trial"};
    CHECK(terms == expected);
}

TEST_CASE("stemming follows the index language") {
    auto german = TextAnalyzer::create("german");
    REQUIRE(german.ok());
    // "der" is a German stop word; "Häuser" and "Haus" share the Snowball stem "haus".
    auto terms = (*german)->analyze("der Häuser Haus");
    REQUIRE(terms.size() == 2);
    CHECK(terms[0] == "haus");
    CHECK(terms[1] == "haus");
    // The English stemmer leaves the German plural alone.
    auto english = TextAnalyzer::create("english");
    REQUIRE(english.ok());
    CHECK((*english)->analyze("Häuser") == std::vector<std::string>{"häuser"});

    auto none = TextAnalyzer::create("none");
    REQUIRE(none.ok());
    CHECK((*none)->analyze("The running") == std::vector<std::string>{"the", "running"});
}

TEST_CASE("an unknown language is refused with the list on offer") {
    auto bad = TextAnalyzer::create("klingon");
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.status().code() == StatusCode::kInvalidArgument);
    CHECK(bad.status().message().find("english") != std::string::npos);
}

TEST_CASE("empty and punctuation-only text has no terms") {
    auto analyzer = TextAnalyzer::create("english");
    REQUIRE(analyzer.ok());
    CHECK((*analyzer)->analyze("").empty());
    CHECK((*analyzer)->analyze(" -- ,.; ").empty());
}
