#include "retrieval/filter_postings.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <random>

using namespace sluice::retrieval;

namespace {

struct Entry {
    Metadata metadata;
    Acl acl;
};

// Every id the filter and the ACL admit, by brute force.
std::vector<std::uint64_t> admitted(const std::map<std::uint64_t, Entry>& entries,
                                    const Filter& filter, const Reader& reader) {
    std::vector<std::uint64_t> out;
    for (const auto& [id, entry] : entries) {
        if (entry.acl.allows(reader) && filter.matches(entry.metadata)) {
            out.push_back(id);
        }
    }
    return out;
}

bool is_superset(const std::vector<std::uint64_t>& candidates,
                 const std::vector<std::uint64_t>& wanted) {
    return std::includes(candidates.begin(), candidates.end(), wanted.begin(), wanted.end());
}

}  // namespace

TEST_CASE("candidates cover every admitted chunk and narrow where the filter or acl allows") {
    FilterPostings postings;
    std::map<std::uint64_t, Entry> entries;
    for (std::uint64_t id = 1; id <= 2000; ++id) {
        Entry entry;
        entry.metadata["tenant"] = static_cast<double>(id % 100);
        entry.metadata["lang"] = std::string(id % 3 == 0 ? "de" : "en");
        entry.metadata["year"] = static_cast<double>(2015 + id % 10);
        entry.acl.groups = {id % 50 == 0 ? "legal" : "staff"};
        if (id % 7 == 0) {
            entry.acl.principals = {"ann"};
        }
        postings.add(id, entry.metadata, entry.acl);
        entries[id] = entry;
    }
    const Reader staff{"bob", {"staff"}};
    const Reader legal{"carol", {"legal"}};
    const Reader ann{"ann", {}};
    using F = Filter;
    struct Case {
        Filter filter;
        const Reader* reader;
        bool narrows;
        std::size_t at_most;  // the size the candidates may have when they narrow
    };
    std::vector<Case> cases = {
        {F::equals("tenant", 7.0), &staff, true, 20},
        {F::in("tenant", {7.0, 8.0, 300.0}), &staff, true, 40},
        {F::all_of({F::equals("tenant", 7.0), F::range("year", 2016.0, true, std::nullopt, true)}),
         &staff, true, 20},
        {F::any_of({F::equals("tenant", 7.0), F::equals("lang", std::string("de"))}), &staff, true,
         20 + 667},
        // Nothing in the filter narrows; the reader's ACL does.
        {F::range("year", 2016.0, true, std::nullopt, true), &legal, true, 40},
        {F::negate(F::equals("tenant", 7.0)), &ann, true, 285},
        // Neither narrows below the limit.
        {F::range("year", 2016.0, true, std::nullopt, true), &staff, false, 0},
        {F::prefix("lang", "d"), &staff, false, 0},
        {F::any_of({F::equals("tenant", 7.0), F::prefix("lang", "d")}), &staff, false, 0},
        // A value nobody carries, and a number that equals no text: no candidates at all.
        {F::equals("tenant", 1000.0), &staff, true, 0},
        {F::equals("tenant", std::string("7")), &staff, true, 0},
        {F::equals("tenant", -0.0), &staff, true, 20},
    };
    for (const auto& c : cases) {
        CAPTURE(c.filter.describe());
        CAPTURE(c.reader->principal);
        auto candidates = postings.candidates(c.filter, *c.reader, 1000);
        CHECK(candidates.has_value() == c.narrows);
        if (!candidates) {
            continue;
        }
        CHECK(std::is_sorted(candidates->begin(), candidates->end()));
        CHECK(std::adjacent_find(candidates->begin(), candidates->end()) == candidates->end());
        CHECK(candidates->size() <= c.at_most);
        CHECK(is_superset(*candidates, admitted(entries, c.filter, *c.reader)));
    }
    // Past the limit the caller gets nothing to scan.
    CHECK_FALSE(postings.candidates(F::equals("tenant", 7.0), staff, 10).has_value());
}

TEST_CASE("removed chunks leave their lists; updates move between lists") {
    FilterPostings postings;
    Metadata red{{"color", std::string("red")}};
    Metadata blue{{"color", std::string("blue")}};
    Acl staff{{}, {"staff"}};
    const Reader reader{"x", {"staff"}};
    postings.add(5, red, staff);
    postings.add(3, red, staff);  // out of order: inserted in place
    postings.add(9, blue, staff);
    auto reds = postings.candidates(Filter::equals("color", std::string("red")), reader, 100);
    REQUIRE(reds.has_value());
    CHECK(*reds == std::vector<std::uint64_t>{3, 5});
    postings.remove(5, red, staff);
    postings.add(11, blue, staff);  // chunk 5's document, updated to blue under a new id
    reds = postings.candidates(Filter::equals("color", std::string("red")), reader, 100);
    CHECK(*reds == std::vector<std::uint64_t>{3});
    auto blues = postings.candidates(Filter::equals("color", std::string("blue")), reader, 100);
    CHECK(*blues == std::vector<std::uint64_t>{9, 11});
    postings.remove(3, red, staff);
    postings.remove(3, red, staff);  // twice: a no-op
    CHECK(postings.candidates(Filter::equals("color", std::string("red")), reader, 100)->empty());
    postings.remove(9, blue, staff);
    postings.remove(11, blue, staff);
    CHECK(postings.lists() == 0);
}
