#include "retrieval/filter_postings.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
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

TEST_CASE("candidates are the admitted chunks and narrow where the filter or acl allows") {
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
        bool exact;
    };
    std::vector<Case> cases = {
        {F::equals("tenant", 7.0), &staff, true, true},
        {F::in("tenant", {7.0, 8.0, 300.0}), &staff, true, true},
        {F::all_of({F::equals("tenant", 7.0), F::range("year", 2016.0, true, std::nullopt, true)}),
         &staff, true, true},  // the range child admits 1,800: past the limit, within 4 times it
        {F::all_of({F::range("tenant", 1.0, true, 60.0, true), F::negate(F::prefix("lang", "e"))}),
         &staff, true, true},  // 1,200 and 667 meet in 400
        {F::all_of({F::equals("tenant", 7.0), F::range("year", 2016.0, true, 2017.0, false)}),
         &staff, true, true},
        {F::any_of({F::equals("tenant", 7.0), F::equals("lang", std::string("de"))}), &staff, true,
         true},
        // Ranges and prefixes narrow through the ordered values.
        {F::range("year", 2016.0, false, 2018.0, true), &staff, true, true},
        {F::range("tenant", std::nullopt, true, 4.0, false), &staff, true, true},
        {F::prefix("lang", "d"), &staff, true, true},
        {F::any_of({F::equals("tenant", 7.0), F::prefix("lang", "d")}), &staff, true, true},
        // A selective `not` narrows as the complement of its child.
        {F::negate(F::range("year", std::nullopt, true, 2023.0, true)), &staff, true, true},
        // (not en: 667) and (not tenant 3: 1,980, within 4 times the limit).
        {F::negate(F::any_of({F::equals("lang", std::string("en")), F::equals("tenant", 3.0)})),
         &staff, true, true},
        // Nothing in the filter narrows; the reader's ACL does.
        {F::range("year", 2016.0, true, std::nullopt, true), &legal, true, false},
        {F::negate(F::equals("tenant", 7.0)), &ann, true, false},
        {Filter(), &legal, true, true},
        // Neither narrows below the limit.
        {F::range("year", 2016.0, true, std::nullopt, true), &staff, false, false},
        {F::negate(F::prefix("lang", "d")), &staff, false, false},
        // A value nobody carries, and a number that equals no text: no candidates at all.
        {F::equals("tenant", 1000.0), &staff, true, true},
        {F::equals("tenant", std::string("7")), &staff, true, true},
        {F::equals("tenant", -0.0), &staff, true, true},
    };
    for (const auto& c : cases) {
        CAPTURE(c.filter.describe());
        CAPTURE(c.reader->principal);
        auto candidates = postings.candidates(c.filter, *c.reader, 1000);
        CHECK(candidates.has_value() == c.narrows);
        if (!candidates) {
            continue;
        }
        const auto& ids = candidates->ids;
        auto wanted = admitted(entries, c.filter, *c.reader);
        CHECK(candidates->exact == c.exact);
        CHECK(std::is_sorted(ids.begin(), ids.end()));
        CHECK(std::adjacent_find(ids.begin(), ids.end()) == ids.end());
        CHECK(ids.size() <= 1000);
        CHECK(is_superset(ids, wanted));
        if (candidates->exact) {
            CHECK(ids == wanted);
        }
    }
    // Past the limit the caller gets nothing to scan.
    CHECK_FALSE(postings.candidates(F::equals("tenant", 7.0), staff, 10).has_value());
}

namespace {

// 2^53: above it doubles skip integers, so 2^53 + 1 as an integer lies between two floats.
constexpr std::int64_t kTwo53 = std::int64_t{1} << 53;

// Random metadata over a few fields, with the awkward cases: absent fields, a field that holds
// numbers on some chunks and text on others, integers beside floats of the same and of
// neighbouring values (2^53 + 1 beside the float 2^53), NaN, -0.0, text with 0xff bytes, empty
// text, and booleans beside the floats 1.0 and 0.0 that earlier builds stored for them.
Metadata random_metadata(std::mt19937& random) {
    static const std::vector<std::string> kTexts = {"",   "a",  "ab", "abc", "b",
                                                    "ba", "bz", "c",  "a\xff", "a\xff\xff"};
    Metadata metadata;
    auto pick = [&](std::size_t n) { return static_cast<std::size_t>(random() % n); };
    if (pick(5) != 0) {
        std::size_t kind = pick(13);
        if (kind == 12) {
            metadata["num"] = pick(2) == 0;
        } else if (kind == 0) {
            metadata["num"] = std::nan("");
        } else if (kind == 1) {
            metadata["num"] = -0.0;
        } else if (kind == 2) {
            metadata["num"] = kTexts[pick(kTexts.size())];
        } else if (kind <= 5) {
            metadata["num"] = static_cast<std::int64_t>(pick(20)) - 5;
        } else if (kind == 6) {
            metadata["num"] = static_cast<double>(pick(20)) - 4.5;
        } else if (kind == 7) {
            metadata["num"] = pick(2) == 0 ? MetaValue(kTwo53 + static_cast<std::int64_t>(pick(3)))
                                           : MetaValue(static_cast<double>(kTwo53 + 2 * pick(2)));
        } else {
            metadata["num"] = static_cast<double>(pick(20)) - 5;
        }
    }
    if (pick(4) != 0) {
        metadata["str"] = kTexts[pick(kTexts.size())];
    }
    if (pick(2) != 0) {
        if (pick(3) == 0) {
            metadata["flag"] = static_cast<double>(pick(2));
        } else {
            metadata["flag"] = pick(2) == 0;
        }
    }
    return metadata;
}

MetaValue random_value(std::mt19937& random) {
    static const std::vector<std::string> kTexts = {"", "a", "ab", "b", "bb", "c", "a\xff", "zz"};
    switch (random() % 8) {
        case 0: return kTexts[random() % kTexts.size()];
        case 7:
            return random() % 2 == 0;
        case 1: return -0.0;
        case 2:
            return static_cast<std::int64_t>(random() % 24) - 7;
        case 3:
            return static_cast<double>(random() % 24) - 6.5;
        case 4:
            return random() % 2 == 0 ? MetaValue(kTwo53 + static_cast<std::int64_t>(random() % 3))
                                     : MetaValue(static_cast<double>(kTwo53 + 2 * (random() % 2)));
        default: return static_cast<double>(random() % 24) - 7;
    }
}

Filter random_filter(std::mt19937& random, int depth) {
    static const std::vector<std::string> kFields = {"num", "str", "flag", "absent"};
    const std::string& field = kFields[random() % kFields.size()];
    std::size_t op = random() % (depth > 0 ? 8 : 4);
    switch (op) {
        case 0: return Filter::equals(field, random_value(random));
        case 1: {
            std::vector<MetaValue> values(random() % 4);
            for (auto& value : values) {
                value = random_value(random);
            }
            return Filter::in(field, values);
        }
        case 2: {
            std::optional<MetaValue> lower;
            std::optional<MetaValue> upper;
            if (random() % 3 != 0) {
                lower = random_value(random);
            }
            if (random() % 3 != 0) {
                // Mostly the same kind as the lower bound, so that the range admits something.
                const auto step = static_cast<std::int64_t>(random() % 9);
                if (!lower || random() % 4 == 0 || std::holds_alternative<std::string>(*lower) ||
                    std::holds_alternative<bool>(*lower)) {
                    upper = random_value(random);
                } else if (const auto* integer = std::get_if<std::int64_t>(&*lower)) {
                    upper = *integer + step;
                } else {
                    upper = std::get<double>(*lower) + static_cast<double>(step);
                }
            }
            return Filter::range(field, lower, random() % 2 == 0, upper, random() % 2 == 0);
        }
        case 3: {
            static const std::vector<std::string> kPrefixes = {"", "a", "ab", "b", "a\xff", "\xff"};
            return Filter::prefix(field, kPrefixes[random() % kPrefixes.size()]);
        }
        case 4:
        case 5: {
            std::vector<Filter> children(random() % 4);
            for (auto& child : children) {
                child = random_filter(random, depth - 1);
            }
            return op == 4 ? Filter::all_of(children) : Filter::any_of(children);
        }
        case 6:
            return Filter::negate(random_filter(random, depth - 1));
        default:
            return Filter();
    }
}

Acl random_acl(std::mt19937& random) {
    Acl acl;
    if (random() % 3 == 0) {
        acl.principals.push_back(random() % 2 == 0 ? "ann" : "bob");
    }
    if (random() % 2 == 0) {
        acl.groups.push_back(random() % 3 == 0 ? "legal" : "staff");
    }
    return acl;
}

// Whether a filter holds a node that admits every value (the empty filter, a range without
// bounds, an and/or without children): the lists cannot name "every chunk" exactly.
bool has_everything(const Filter& filter) {
    switch (filter.op()) {
        case Filter::Op::kAll:
            return true;
        case Filter::Op::kRange:
            return !filter.lower() && !filter.upper();
        case Filter::Op::kAnd:
        case Filter::Op::kOr:
        case Filter::Op::kNot:
            return filter.children().empty() ||
                   std::any_of(filter.children().begin(), filter.children().end(), has_everything);
        default:
            return false;
    }
}

// Checks candidates() against brute force for many random filters, readers and limits.
void check_against_brute_force(const FilterPostings& postings,
                               const std::map<std::uint64_t, Entry>& entries,
                               std::mt19937& random, int filters) {
    const std::vector<Reader> readers = {{"ann", {"staff"}}, {"bob", {}}, {"eve", {"legal"}},
                                         {"nobody", {}}};
    for (int f = 0; f < filters; ++f) {
        Filter filter = random_filter(random, 3);
        const Reader& reader = readers[random() % readers.size()];
        auto wanted = admitted(entries, filter, reader);
        CAPTURE(filter.describe());
        CAPTURE(reader.principal);
        for (std::size_t limit : {std::size_t{0}, std::size_t{7}, std::size_t{60},
                                  entries.size() + 1}) {
            CAPTURE(limit);
            auto candidates = postings.candidates(filter, reader, limit);
            if (!candidates) {
                continue;
            }
            const auto& ids = candidates->ids;
            REQUIRE(std::is_sorted(ids.begin(), ids.end()));
            REQUIRE(std::adjacent_find(ids.begin(), ids.end()) == ids.end());
            REQUIRE(ids.size() <= limit);
            REQUIRE(is_superset(ids, wanted));
            if (candidates->exact) {
                REQUIRE(ids == wanted);
            }
        }
        // With room for every chunk, a filter without an "everything" node is evaluated
        // exactly from the lists alone.
        if (!has_everything(filter)) {
            auto all = postings.candidates(filter, reader, entries.size() + 1);
            REQUIRE(all.has_value());
            CHECK(all->exact);
            CHECK(all->ids == wanted);
        }
    }
}

}  // namespace

TEST_CASE("every operator and nesting, against brute force, through updates and deletes") {
    std::mt19937 random(7);
    FilterPostings postings;
    std::map<std::uint64_t, Entry> entries;
    std::uint64_t next_id = 1;
    for (int i = 0; i < 300; ++i) {
        Entry entry{random_metadata(random), random_acl(random)};
        postings.add(next_id, entry.metadata, entry.acl);
        entries[next_id++] = std::move(entry);
    }
    check_against_brute_force(postings, entries, random, 400);
    // Updates give a chunk a new id with new values; deletes drop it.
    for (int round = 0; round < 3; ++round) {
        std::vector<std::uint64_t> ids;
        for (const auto& [id, entry] : entries) {
            ids.push_back(id);
        }
        for (std::uint64_t id : ids) {
            std::size_t what = random() % 4;
            if (what == 0) {
                continue;
            }
            postings.remove(id, entries[id].metadata, entries[id].acl);
            entries.erase(id);
            if (what != 1) {
                Entry entry{random_metadata(random), random_acl(random)};
                postings.add(next_id, entry.metadata, entry.acl);
                entries[next_id++] = std::move(entry);
            }
        }
        check_against_brute_force(postings, entries, random, 150);
    }
    // Everything removed: nothing left, no list kept.
    for (const auto& [id, entry] : entries) {
        postings.remove(id, entry.metadata, entry.acl);
    }
    CHECK(postings.lists() == 0);
    CHECK(postings.chunks() == 0);
    auto none = postings.candidates(Filter::negate(Filter::equals("num", 1.0)),
                                    Reader{"ann", {"staff"}}, 10);
    REQUIRE(none.has_value());
    CHECK(none->ids.empty());
}

TEST_CASE("integers and floats share one order in the lists, by exact value") {
    FilterPostings postings;
    const Acl staff{{}, {"staff"}};
    const Reader reader{"x", {"staff"}};
    postings.add(1, {{"year", std::int64_t{2020}}}, staff);
    postings.add(2, {{"year", 2020.0}}, staff);
    postings.add(3, {{"year", 2019.5}}, staff);
    postings.add(4, {{"big", kTwo53 + 1}}, staff);
    postings.add(5, {{"big", static_cast<double>(kTwo53)}}, staff);
    auto ids = [&](const Filter& filter) {
        auto found = postings.candidates(filter, reader, 100);
        REQUIRE(found.has_value());
        CHECK(found->exact);
        return found->ids;
    };
    using Ids = std::vector<std::uint64_t>;
    CHECK(ids(Filter::equals("year", std::int64_t{2020})) == Ids{1, 2});
    CHECK(ids(Filter::equals("year", 2020.0)) == Ids{1, 2});
    CHECK(ids(Filter::range("year", std::int64_t{2019}, false, std::nullopt, true)) ==
          Ids{1, 2, 3});
    CHECK(ids(Filter::range("year", 2019.6, true, std::nullopt, true)) == Ids{1, 2});
    CHECK(ids(Filter::negate(Filter::equals("year", std::int64_t{2020}))) == Ids{3, 4, 5});
    CHECK(ids(Filter::equals("big", kTwo53 + 1)) == Ids{4});
    CHECK(ids(Filter::range("big", static_cast<double>(kTwo53), false, std::nullopt, true)) ==
          Ids{4});
    // The list that 2020 and 2020.0 share goes only when both have left it.
    postings.remove(1, {{"year", std::int64_t{2020}}}, staff);
    CHECK(ids(Filter::equals("year", std::int64_t{2020})) == Ids{2});
    postings.remove(2, {{"year", 2020.0}}, staff);
    CHECK(ids(Filter::equals("year", 2020.0)).empty());
}

TEST_CASE("booleans have lists of their own, apart from the numbers 1 and 0") {
    FilterPostings postings;
    const Acl staff{{}, {"staff"}};
    const Reader reader{"x", {"staff"}};
    postings.add(1, {{"published", true}}, staff);
    postings.add(2, {{"published", false}}, staff);
    postings.add(3, {{"published", 1.0}}, staff);  // as builds before booleans stored true
    postings.add(4, {{"published", std::int64_t{0}}}, staff);
    postings.add(5, {{"other", true}}, staff);
    auto ids = [&](const Filter& filter) {
        CAPTURE(filter.describe());
        auto found = postings.candidates(filter, reader, 100);
        REQUIRE(found.has_value());
        CHECK(found->exact);
        return found->ids;
    };
    using Ids = std::vector<std::uint64_t>;
    CHECK(ids(Filter::equals("published", true)) == Ids{1});
    CHECK(ids(Filter::equals("published", false)) == Ids{2});
    CHECK(ids(Filter::in("published", {true, false})) == Ids{1, 2});
    CHECK(ids(Filter::equals("published", 1.0)) == Ids{3});
    CHECK(ids(Filter::negate(Filter::equals("published", true))) == Ids{2, 3, 4, 5});
    // A number bound never admits a boolean; a boolean bound admits nothing, negated everything.
    CHECK(ids(Filter::range("published", std::int64_t{0}, true, std::nullopt, true)) == Ids{3, 4});
    CHECK(ids(Filter::range("published", false, true, std::nullopt, true)).empty());
    CHECK(ids(Filter::negate(Filter::range("published", std::nullopt, true, true, true))) ==
          Ids{1, 2, 3, 4, 5});
    CHECK(ids(Filter::prefix("published", "t")).empty());
    CHECK(postings.lists() == 6);  // published: true, false, 1, 0; other: true; the acl
    postings.remove(1, {{"published", true}}, staff);
    CHECK(ids(Filter::equals("published", true)).empty());
    CHECK(postings.lists() == 5);
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
    CHECK(reds->ids == std::vector<std::uint64_t>{3, 5});
    postings.remove(5, red, staff);
    postings.add(11, blue, staff);  // chunk 5's document, updated to blue under a new id
    reds = postings.candidates(Filter::equals("color", std::string("red")), reader, 100);
    CHECK(reds->ids == std::vector<std::uint64_t>{3});
    auto blues = postings.candidates(Filter::equals("color", std::string("blue")), reader, 100);
    CHECK(blues->ids == std::vector<std::uint64_t>{9, 11});
    postings.remove(3, red, staff);
    postings.remove(3, red, staff);  // twice: a no-op
    CHECK(postings.candidates(Filter::equals("color", std::string("red")), reader, 100)->ids.empty());
    postings.remove(9, blue, staff);
    postings.remove(11, blue, staff);
    CHECK(postings.lists() == 0);
}
