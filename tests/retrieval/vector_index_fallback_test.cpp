// What a filtered HNSW search does when its graph walk returns fewer than k: it scans the
// candidates its CandidateSource names (FilterPostings, as Index::query passes them), not every
// vector, and still returns the exact top k.

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "retrieval/filter_postings.h"
#include "retrieval/vector_index.h"

using namespace sluice::retrieval;

namespace {

constexpr std::size_t kDim = 16;
constexpr std::size_t kVectors = 3000;

Vector random_vector(std::mt19937& rng) {
    std::normal_distribution<float> normal;
    Vector v(kDim);
    for (float& x : v) {
        x = normal(rng);
    }
    return v;
}

// A graph whose walk runs dry under a tight filter: beam 16 that may not widen
// (filter_max_ef 16), and no planned exact scan (filter_exact_max 0), so every filtered search
// walks first.
std::unique_ptr<VectorIndex> make_dry_walker() {
    VectorIndexOptions options;
    options.factory = "HNSW16";
    options.dimension = kDim;
    options.hnsw_ef_search = 16;
    options.hnsw_ef_construction = 40;
    options.filter_exact_max = 0;
    options.filter_max_ef = 16;
    auto index = VectorIndex::create(options);
    REQUIRE_MESSAGE(index.ok(), index.status().to_string());
    return std::move(index).value();
}

// Ids 1..n with random vectors, by id.
std::vector<Vector> fill(VectorIndex& index) {
    std::mt19937 rng(11);
    std::vector<Vector> vectors(kVectors + 1);
    for (std::size_t id = 1; id <= kVectors; ++id) {
        vectors[id] = random_vector(rng);
        REQUIRE(index.add(id, vectors[id]).ok());
    }
    return vectors;
}

double cosine(const Vector& a, const Vector& b) {
    double dot = 0;
    double na = 0;
    double nb = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        dot += double(a[i]) * b[i];
        na += double(a[i]) * a[i];
        nb += double(b[i]) * b[i];
    }
    return dot / std::sqrt(na * nb);
}

std::vector<std::uint64_t> brute_force(const std::vector<Vector>& vectors, const Vector& query,
                                       std::size_t k,
                                       const std::function<bool(std::uint64_t)>& allow) {
    std::vector<std::pair<double, std::uint64_t>> scored;
    for (std::uint64_t id = 1; id < vectors.size(); ++id) {
        if (allow(id)) {
            scored.emplace_back(-cosine(query, vectors[id]), id);
        }
    }
    std::sort(scored.begin(), scored.end());
    std::vector<std::uint64_t> ids;
    for (std::size_t i = 0; i < std::min(k, scored.size()); ++i) {
        ids.push_back(scored[i].second);
    }
    return ids;
}

std::vector<std::uint64_t> ids_of(const std::vector<ScoredId>& hits) {
    std::vector<std::uint64_t> ids;
    for (const auto& hit : hits) {
        ids.push_back(hit.id);
    }
    return ids;
}

// Chunks as Index keeps them: `tenant` = id % 200 (15 chunks each), readable by group "staff",
// and every 150th also by principal "auditor" alone.
struct Chunks {
    std::vector<Metadata> metadata;
    std::vector<Acl> acl;
    FilterPostings postings;

    Chunks() : metadata(kVectors + 1), acl(kVectors + 1) {
        for (std::uint64_t id = 1; id <= kVectors; ++id) {
            metadata[id]["tenant"] = static_cast<double>(id % 200);
            acl[id].groups = {"staff"};
            if (id % 150 == 0) {
                acl[id].principals = {"auditor"};
            }
            postings.add(id, metadata[id], acl[id]);
        }
    }

    // The body of Index::admit.
    std::function<bool(std::uint64_t)> admit(const Filter& filter, const Reader& reader) const {
        return [this, &filter, &reader](std::uint64_t id) {
            return id >= 1 && id <= kVectors && acl[id].allows(reader) &&
                   filter.matches(metadata[id]);
        };
    }
};

// Runs `queries` searches; each one whose walk ran dry must have scanned `expected_candidates`
// ids and returned the brute-force top k. Returns how many ran dry.
int check_dry_walks(const VectorIndex& index, const std::vector<Vector>& vectors,
                    const std::function<bool(std::uint64_t)>& allow, const CandidateSource& source,
                    std::size_t expected_candidates) {
    std::mt19937 rng(12);
    int dry = 0;
    for (int trial = 0; trial < 20; ++trial) {
        Vector query = random_vector(rng);
        VectorIndex::SearchPlan plan;
        auto hits = index.search(query, 10, &allow, &plan, &source);
        REQUIRE(hits.ok());
        auto truth = brute_force(vectors, query, 10, allow);
        REQUIRE(truth.size() == 10);
        CHECK(ids_of(*hits) == truth);
        if (plan.ran_dry) {
            ++dry;
            CHECK(plan.exact);
            CHECK(plan.ef_search == 16);
            CHECK(plan.candidates == expected_candidates);
        }
    }
    return dry;
}

}  // namespace

TEST_CASE("a walk that runs dry scans the filter's candidates and returns the exact top k") {
    auto index = make_dry_walker();
    auto vectors = fill(*index);
    Chunks chunks;
    Filter filter = Filter::equals("tenant", 7.0);
    Reader reader{"someone", {"staff"}};
    auto allow = chunks.admit(filter, reader);
    CandidateSource source = chunks.postings.source(filter, reader);
    // 15 admitted of 3,000: the sample sees a few, the beam of 16 meets one or two of them.
    int dry = check_dry_walks(*index, vectors, allow, source, 15);
    MESSAGE(dry << " of 20 walks ran dry");
    CHECK(dry >= 10);
}

TEST_CASE("a dry walk under an access list alone scans the reader's chunks") {
    auto index = make_dry_walker();
    auto vectors = fill(*index);
    Chunks chunks;
    Filter everything;
    Reader reader{"auditor", {}};  // may read every 150th chunk: 20 of 3,000
    auto allow = chunks.admit(everything, reader);
    CandidateSource source = chunks.postings.source(everything, reader);
    auto listed = chunks.postings.candidates(everything, reader, kVectors);
    REQUIRE(listed.has_value());
    CHECK(listed->exact);
    int dry = check_dry_walks(*index, vectors, allow, source, 20);
    MESSAGE(dry << " of 20 walks ran dry");
    CHECK(dry >= 10);
}

TEST_CASE("candidates that are a superset are checked one by one after a dry walk") {
    auto index = make_dry_walker();
    auto vectors = fill(*index);
    // Admits 15 ids; the source names every even id (1,500) and says it is not exact, as an
    // `and` with a child too wide to narrow does.
    std::function<bool(std::uint64_t)> allow = [](std::uint64_t id) { return id % 200 == 8; };
    CandidateList evens;
    for (std::uint64_t id = 2; id <= kVectors; id += 2) {
        evens.ids.push_back(id);
    }
    CandidateSource source = [&](std::size_t limit) -> std::optional<CandidateList> {
        if (evens.ids.size() > limit) {
            return std::nullopt;
        }
        return evens;
    };
    int dry = check_dry_walks(*index, vectors, allow, source, evens.ids.size());
    MESSAGE(dry << " of 20 walks ran dry");
    CHECK(dry >= 10);
}

TEST_CASE("the candidates are asked for again only when the walk runs dry") {
    auto index = make_dry_walker();
    auto vectors = fill(*index);
    std::vector<std::size_t> limits;
    std::function<bool(std::uint64_t)> allow;
    CandidateSource source = [&](std::size_t limit) -> std::optional<CandidateList> {
        limits.push_back(limit);
        CandidateList list{{}, true};
        for (std::uint64_t id = 1; id <= kVectors; ++id) {
            if (allow(id)) {
                list.ids.push_back(id);
            }
        }
        if (list.ids.size() > limit) {
            return std::nullopt;
        }
        return list;
    };
    std::mt19937 rng(13);
    Vector query = random_vector(rng);

    // Half the vectors pass: the walk finds k of them, and the planning call (limited by the
    // budget, 0 here) is the only one.
    allow = [](std::uint64_t id) { return id % 2 == 0; };
    VectorIndex::SearchPlan plan;
    auto hits = index->search(query, 10, &allow, &plan, &source);
    REQUIRE(hits.ok());
    CHECK(hits->size() == 10);
    CHECK_FALSE(plan.ran_dry);
    CHECK_FALSE(plan.exact);
    CHECK(limits == std::vector<std::size_t>{0});

    // A tenth passes but k is 400: the walk (beam 400) can return at most the 300 admitted,
    // so it runs dry; the second call may name up to half the index, and the answer is every
    // admitted id in order.
    limits.clear();
    allow = [](std::uint64_t id) { return id % 10 == 3; };
    hits = index->search(query, 400, &allow, &plan, &source);
    REQUIRE(hits.ok());
    CHECK(plan.ran_dry);
    CHECK(plan.ef_search == 400);
    CHECK(plan.candidates == 300);
    CHECK(limits == std::vector<std::size_t>{0, kVectors / 2});
    CHECK(ids_of(*hits) == brute_force(vectors, query, 400, allow));

    // No predicate: no filter, so the source is never consulted.
    limits.clear();
    REQUIRE(index->search(query, 10, nullptr, &plan, &source).ok());
    CHECK(limits.empty());
}

TEST_CASE("lists over the budget outweigh a sample that saw few admitted, above the recall floor") {
    // Budget 100; the walk's recall floor is 3,000 x 16 / 2,048 = 23 admitted vectors.
    VectorIndexOptions options;
    options.factory = "HNSW16";
    options.dimension = kDim;
    options.hnsw_ef_search = 16;
    options.hnsw_ef_construction = 40;
    options.filter_exact_max = 100;
    // The recall floor at 3,000 x 16 / 2,048: about 23 admitted vectors.
    options.filter_max_ef = 2048;
    auto created = VectorIndex::create(options);
    REQUIRE(created.ok());
    auto& index = **created;
    auto vectors = fill(index);
    // The lists name every odd id (1,500, over the budget) and are a superset, as an `and`
    // with a child too wide to narrow gives.
    CandidateList odds;
    for (std::uint64_t id = 1; id <= kVectors; id += 2) {
        odds.ids.push_back(id);
    }
    CandidateSource source = [&](std::size_t limit) -> std::optional<CandidateList> {
        if (odds.ids.size() > limit) {
            return std::nullopt;
        }
        return odds;
    };
    std::mt19937 rng(14);
    Vector query = random_vector(rng);

    // 60 admitted (2%): under the budget by the sample, over the recall floor. Without lists the
    // sample's plan, a scan; with lists over the budget, the walk.
    std::function<bool(std::uint64_t)> two_percent = [](std::uint64_t id) { return id % 50 == 1; };
    VectorIndex::SearchPlan plan;
    REQUIRE(index.search(query, 10, &two_percent, &plan).ok());
    CHECK(plan.exact);
    CHECK(plan.ef_search == 0);
    auto hits = index.search(query, 10, &two_percent, &plan, &source);
    REQUIRE(hits.ok());
    CHECK(plan.ef_search > 16);
    REQUIRE(hits->size() == 10);
    for (const auto& hit : *hits) {
        CHECK(two_percent(hit.id));
    }

    // 6 admitted: below the recall floor the scan stays the plan, over the listed candidates.
    std::function<bool(std::uint64_t)> six = [](std::uint64_t id) { return id % 500 == 9; };
    hits = index.search(query, 10, &six, &plan, &source);
    REQUIRE(hits.ok());
    CHECK(plan.exact);
    CHECK_FALSE(plan.ran_dry);
    CHECK(plan.ef_search == 0);
    CHECK(plan.candidates == odds.ids.size());
    CHECK(ids_of(*hits) == brute_force(vectors, query, 10, six));
}
