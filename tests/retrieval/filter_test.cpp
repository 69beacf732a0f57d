#include "retrieval/filter.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <string>

using namespace sluice::retrieval;

TEST_CASE("a metadata value takes the kind it is given: a string literal is text, not a bool") {
    // std::variant's converting constructor once preferred bool for a const char*; C++20 counts
    // that conversion as narrowing, so text stays text. An int is an integer, not a bool.
    CHECK(std::holds_alternative<std::string>(MetaValue("en")));
    const char* pointer = "en";
    CHECK(std::holds_alternative<std::string>(MetaValue(pointer)));
    CHECK(std::holds_alternative<bool>(MetaValue(true)));
    CHECK(std::holds_alternative<std::int64_t>(MetaValue(7)));
    CHECK(std::holds_alternative<double>(MetaValue(1.0)));
    Metadata metadata = {{"lang", "en"}, {"published", false}};
    metadata["title"] = "text";
    CHECK(std::holds_alternative<std::string>(metadata.at("lang")));
    CHECK(std::holds_alternative<std::string>(metadata.at("title")));
    CHECK(std::holds_alternative<bool>(metadata.at("published")));
}

TEST_CASE("a boolean filter matches booleans only; booleans have no order") {
    const Metadata doc = {{"published", true},
                          {"draft", false},
                          {"old", 1.0},
                          {"one", 1},
                          {"word", std::string("true")}};
    CHECK(Filter::equals("published", true).matches(doc));
    CHECK_FALSE(Filter::equals("published", false).matches(doc));
    CHECK(Filter::equals("draft", false).matches(doc));
    CHECK(Filter::in("published", {false, true}).matches(doc));
    CHECK_FALSE(Filter::in("draft", {true}).matches(doc));
    CHECK(Filter::negate(Filter::equals("published", false)).matches(doc));
    CHECK_FALSE(Filter::negate(Filter::equals("published", true)).matches(doc));
    // A boolean is neither the number 1 (1.0 is what earlier builds stored for true) nor text.
    CHECK_FALSE(Filter::equals("old", true).matches(doc));
    CHECK_FALSE(Filter::equals("one", true).matches(doc));
    CHECK_FALSE(Filter::equals("word", true).matches(doc));
    CHECK_FALSE(Filter::equals("published", 1.0).matches(doc));
    CHECK_FALSE(Filter::equals("published", std::int64_t{1}).matches(doc));
    CHECK_FALSE(Filter::equals("published", std::string("true")).matches(doc));
    // A boolean bound admits nothing, booleans included; other bounds never admit a boolean.
    CHECK_FALSE(Filter::range("published", false, true, std::nullopt, true).matches(doc));
    CHECK_FALSE(Filter::range("published", std::nullopt, true, true, true).matches(doc));
    CHECK_FALSE(Filter::range("old", std::nullopt, true, true, true).matches(doc));
    CHECK_FALSE(Filter::range("published", 0.0, true, std::nullopt, true).matches(doc));
    CHECK(Filter::range("published", std::nullopt, true, std::nullopt, true).matches(doc));
    CHECK_FALSE(Filter::prefix("published", "t").matches(doc));

    CHECK(compare_values(true, true) == 0);
    CHECK(compare_values(false, true) == -1);
    CHECK_FALSE(compare_values(true, 1.0).has_value());
    CHECK_FALSE(compare_values(std::int64_t{0}, false).has_value());
    CHECK_FALSE(number_of(true).has_value());
    CHECK_FALSE(is_ordered_kind(false));
    CHECK(is_ordered_kind(2.0));
    CHECK(describe_value(true) == "true");
    CHECK(Filter::in("published", {true, false}).describe() == "published in [true, false]");
}
