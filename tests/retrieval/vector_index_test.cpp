#include "retrieval/vector_index.h"

#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "temp_dir.h"

using namespace sluice::retrieval;
using sluice::StatusCode;
using sluice::retrieval::testing::numbered;
using sluice::retrieval::testing::TempDir;

namespace {

constexpr std::size_t kDim = 16;

Vector random_vector(std::mt19937& rng) {
    std::normal_distribution<float> normal;
    Vector v(kDim);
    for (float& x : v) {
        x = normal(rng);
    }
    return v;
}

std::unique_ptr<VectorIndex> make(const std::string& factory, Metric metric = Metric::kCosine) {
    VectorIndexOptions options;
    options.factory = factory;
    options.metric = metric;
    options.dimension = kDim;
    options.rebuild_min_vectors = 100;
    auto index = VectorIndex::create(options);
    REQUIRE_MESSAGE(index.ok(), index.status().to_string());
    return std::move(index).value();
}

// Adds ids 1..n with random vectors; returns them by id.
std::vector<Vector> fill(VectorIndex& index, std::size_t n, unsigned seed = 7) {
    std::mt19937 rng(seed);
    std::vector<Vector> vectors(n + 1);
    for (std::size_t id = 1; id <= n; ++id) {
        vectors[id] = random_vector(rng);
        REQUIRE(index.add(id, vectors[id]).ok());
    }
    return vectors;
}

}  // namespace

TEST_CASE("factory strings pick the kind; bad ones are refused") {
    CHECK(make("Flat")->kind() == VectorIndex::Kind::kIdMap);
    CHECK(make("HNSW16")->kind() == VectorIndex::Kind::kHnsw);
    CHECK(make("IVF4,PQ4")->kind() == VectorIndex::Kind::kIvf);
    VectorIndexOptions bad;
    bad.dimension = kDim;
    bad.factory = "NoSuchIndex";
    auto refused = VectorIndex::create(bad);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.status().code() == StatusCode::kInvalidArgument);
    bad.factory = "Flat";
    bad.dimension = 0;
    CHECK_FALSE(VectorIndex::create(bad).ok());
}

TEST_CASE("every kind finds a vector by itself, forgets removed ones and updates in place") {
    for (const char* factory : {"Flat", "HNSW16", "IVF4,PQ4", "IVF4,Flat"}) {
        CAPTURE(factory);
        auto index = make(factory);
        auto vectors = fill(*index, 600);
        auto hits = index->search(vectors[42], 5, nullptr);
        REQUIRE(hits.ok());
        REQUIRE(hits->size() == 5);
        CHECK((*hits)[0].id == 42);
        REQUIRE(index->remove(42).ok());
        hits = index->search(vectors[42], 5, nullptr);
        REQUIRE(hits.ok());
        for (const auto& hit : *hits) {
            CHECK(hit.id != 42);
        }
        // Update: id 7 now carries id 9's vector.
        REQUIRE(index->add(7, vectors[9]).ok());
        REQUIRE(index->remove(9).ok());
        hits = index->search(vectors[9], 1, nullptr);
        REQUIRE(hits.ok());
        CHECK((*hits)[0].id == 7);
        CHECK(index->size() == 598);
        CHECK_FALSE(index->add(1, Vector(3, 1.0f)).ok());
    }
}

TEST_CASE("a batch add and a batch remove leave the index as one call per vector does") {
    for (const char* factory : {"Flat", "HNSW16", "IVF4,Flat"}) {
        CAPTURE(factory);
        auto single = make(factory);
        auto batched = make(factory);
        std::mt19937 rng(11);
        std::vector<std::uint64_t> ids;
        std::vector<Vector> vectors;
        for (std::uint64_t id = 1; id <= 600; ++id) {
            ids.push_back(id);
            vectors.push_back(random_vector(rng));
            REQUIRE(single->add(id, vectors.back()).ok());
        }
        REQUIRE(batched->add_batch(ids, vectors).ok());
        CHECK(batched->size() == 600);
        // One batch that replaces 20 vectors, repeats an id (the last wins) and adds new ones.
        std::vector<std::uint64_t> next_ids;
        std::vector<Vector> next_vectors;
        for (std::uint64_t id = 590; id <= 620; ++id) {
            next_ids.push_back(id);
            next_vectors.push_back(random_vector(rng));
        }
        next_ids.push_back(600);
        next_vectors.push_back(vectors[0]);  // id 600 ends up with id 1's vector
        for (std::size_t i = 0; i < next_ids.size(); ++i) {
            REQUIRE(single->add(next_ids[i], next_vectors[i]).ok());
        }
        REQUIRE(batched->add_batch(next_ids, next_vectors).ok());
        // Scattered removes, some of absent ids: a code array compacts once.
        std::vector<std::uint64_t> removed;
        for (std::uint64_t id = 3; id <= 620; id += 7) {
            removed.push_back(id);
        }
        removed.push_back(9999);
        for (auto id : removed) {
            REQUIRE(single->remove(id).ok());
        }
        REQUIRE(batched->remove_batch(removed).ok());
        CHECK(batched->size() == single->size());
        // Every vector still held is found by itself, in both; removed ones never come back.
        for (std::uint64_t id = 1; id <= 620; ++id) {
            CAPTURE(id);
            bool gone = std::find(removed.begin(), removed.end(), id) != removed.end();
            const Vector& vector = id == 600  ? vectors[0]
                                   : id < 590 ? vectors[id - 1]
                                              : next_vectors[id - 590];
            auto ours = batched->search(vector, 2, nullptr);
            REQUIRE(ours.ok());
            std::set<std::uint64_t> found;
            for (const auto& hit : *ours) {
                found.insert(hit.id);
            }
            CHECK(found.count(id) == (gone ? 0u : 1u));
            for (auto id_gone : removed) {
                CHECK(found.count(id_gone) == 0);
            }
        }
        CHECK_FALSE(batched->add_batch({1, 2}, {Vector(kDim, 1.0f)}).ok());
        CHECK_FALSE(batched->add_batch({1, 2}, {Vector(kDim, 1.0f), Vector(3, 1.0f)}).ok());
        CHECK(batched->size() == single->size());
    }
}

TEST_CASE("a 1% filter still returns k results for every index kind") {
    for (const char* factory : {"Flat", "HNSW16", "IVF8,PQ4"}) {
        CAPTURE(factory);
        auto index = make(factory);
        auto vectors = fill(*index, 3000);
        std::function<bool(std::uint64_t)> one_percent = [](std::uint64_t id) {
            return id % 100 == 0;
        };
        std::mt19937 rng(99);
        for (int trial = 0; trial < 5; ++trial) {
            auto hits = index->search(random_vector(rng), 20, &one_percent);
            REQUIRE(hits.ok());
            CHECK(hits->size() == 20);
            for (const auto& hit : *hits) {
                CHECK(hit.id % 100 == 0);
            }
        }
        // Fewer matches than k: all of them, no more.
        std::function<bool(std::uint64_t)> three = [](std::uint64_t id) { return id <= 3; };
        auto few = index->search(vectors[1], 10, &three);
        REQUIRE(few.ok());
        CHECK(few->size() == 3);
    }
}

TEST_CASE("metrics: inner product, cosine and l2 rank as their definitions say") {
    auto ip = make("Flat", Metric::kInnerProduct);
    auto l2 = make("Flat", Metric::kL2);
    Vector small(kDim, 0.0f);
    small[0] = 1.0f;
    Vector big(kDim, 0.0f);
    big[0] = 10.0f;
    for (auto* index : {ip.get(), l2.get()}) {
        REQUIRE(index->add(1, small).ok());
        REQUIRE(index->add(2, big).ok());
    }
    // Query near `small`: L2 prefers 1, inner product prefers the longer 2.
    Vector query = small;
    query[1] = 0.1f;
    CHECK((*ip->search(query, 1, nullptr))[0].id == 2);
    auto nearest = l2->search(query, 2, nullptr);
    CHECK((*nearest)[0].id == 1);
    CHECK((*nearest)[0].score == doctest::Approx(1.0 / (1.0 + 0.01)));
}

TEST_CASE("a snapshot reloads and replays later changes; a mismatched one is refused") {
    TempDir dir("vectors-snapshot");
    auto path = dir.path() / "v.snap";
    for (const char* factory : {"Flat", "HNSW16", "IVF4,Flat"}) {
        CAPTURE(factory);
        auto index = make(factory);
        auto vectors = fill(*index, 500);
        REQUIRE(index->remove(5).ok());
        REQUIRE(index->save(path, 17).ok());
        CHECK_FALSE(std::filesystem::exists(dir.path() / "v.snap.tmp"));

        std::uint64_t sequence = 0;
        auto loaded = VectorIndex::load(path, index->options(), sequence);
        REQUIRE_MESSAGE(loaded.ok(), loaded.status().to_string());
        CHECK(sequence == 17);
        // After the snapshot: 6 was removed and 501 added. The live set says so.
        for (std::uint64_t id = 1; id <= 500; ++id) {
            if (id != 5 && id != 6) {
                (*loaded)->restore_live(id, vectors[id]);
            }
        }
        (*loaded)->restore_live(501, vectors[6]);
        REQUIRE((*loaded)->replay({501}, {6}).ok());
        auto fixed = (*loaded)->finish_restore();
        REQUIRE(fixed.ok());
        CHECK(*fixed == 0);
        auto hits = (*loaded)->search(vectors[6], 1, nullptr);
        REQUIRE(hits.ok());
        CHECK((*hits)[0].id == 501);
        CHECK((*loaded)->size() == 499);
    }
    VectorIndexOptions other;
    other.factory = "Flat";
    other.dimension = kDim + 1;
    std::uint64_t sequence = 0;
    auto refused = VectorIndex::load(path, other, sequence);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.status().code() == StatusCode::kFailedPrecondition);
    {
        std::ofstream truncate(path, std::ios::binary | std::ios::trunc);
        truncate << "junk";
    }
    auto corrupt = VectorIndex::load(path, make("Flat")->options(), sequence);
    REQUIRE_FALSE(corrupt.ok());
    CHECK(corrupt.status().code() == StatusCode::kDataLoss);
}

TEST_CASE("hnsw tombstones past the ratio trigger a background rebuild; queries keep running") {
    auto index = make("HNSW16");
    auto vectors = fill(*index, 1000);
    std::atomic<bool> stop{false};
    std::atomic<int> bad{0};
    std::jthread reader([&] {
        while (!stop.load()) {
            auto hits = index->search(vectors[999], 1, nullptr);
            if (!hits.ok() || hits->empty() || (*hits)[0].id != 999) {
                bad.fetch_add(1);
            }
        }
    });
    for (std::uint64_t id = 1; id <= 300; ++id) {
        REQUIRE(index->remove(id).ok());
    }
    index->wait_for_rebuild();
    stop.store(true);
    reader.join();
    CHECK(bad.load() == 0);
    CHECK(index->rebuilds_completed() >= 1);
    CHECK(index->tombstones() < 100);
    CHECK(index->size() == 700);
    auto hits = index->search(vectors[500], 3, nullptr);
    REQUIRE(hits.ok());
    CHECK((*hits)[0].id == 500);
}

namespace {

// The k best ids by cosine among 1..n that `allow` accepts, by brute force in double precision.
std::vector<std::uint64_t> brute_force(const std::vector<Vector>& vectors, const Vector& query,
                                       std::size_t k,
                                       const std::function<bool(std::uint64_t)>& allow) {
    auto cosine = [](const Vector& a, const Vector& b) {
        double dot = 0;
        double na = 0;
        double nb = 0;
        for (std::size_t i = 0; i < a.size(); ++i) {
            dot += static_cast<double>(a[i]) * b[i];
            na += static_cast<double>(a[i]) * a[i];
            nb += static_cast<double>(b[i]) * b[i];
        }
        return dot / std::sqrt(na * nb);
    };
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

std::unique_ptr<VectorIndex> make_planned(std::size_t exact_max, int ef, int max_ef) {
    VectorIndexOptions options;
    options.factory = "HNSW16";
    options.dimension = kDim;
    options.hnsw_ef_search = ef;
    // FAISS's own default: a graph modest enough that the beam width shows in recall.
    options.hnsw_ef_construction = 40;
    options.filter_exact_max = exact_max;
    options.filter_max_ef = max_ef;
    auto index = VectorIndex::create(options);
    REQUIRE_MESSAGE(index.ok(), index.status().to_string());
    return std::move(index).value();
}

}  // namespace

TEST_CASE("a tight filter is answered by an exact scan with the exact top k") {
    auto index = make_planned(100, 16, 2048);
    auto vectors = fill(*index, 3000);
    std::function<bool(std::uint64_t)> one_percent = [](std::uint64_t id) {
        return id % 100 == 0;
    };
    std::mt19937 rng(5);
    for (int trial = 0; trial < 10; ++trial) {
        Vector query = random_vector(rng);
        VectorIndex::SearchPlan plan;
        auto hits = index->search(query, 10, &one_percent, &plan);
        REQUIRE(hits.ok());
        CHECK(plan.exact);
        CHECK(plan.ef_search == 0);
        CHECK(plan.selectivity < 0.05);
        std::vector<std::uint64_t> ids;
        for (const auto& hit : *hits) {
            ids.push_back(hit.id);
        }
        CHECK(ids == brute_force(vectors, query, 10, one_percent));
    }
}

TEST_CASE("a loose filter walks the graph with the beam widened by its selectivity") {
    // Two indexes over the same vectors (the same graph): one may widen its beam of 16, the
    // other is capped at 16.
    auto index = make_planned(100, 16, 2048);
    auto narrow = make_planned(100, 16, 16);
    auto vectors = fill(*index, 3000);
    fill(*narrow, 3000);
    std::function<bool(std::uint64_t)> tenth = [](std::uint64_t id) { return id % 10 == 3; };
    std::mt19937 rng(6);
    double found_wide = 0;
    double found_narrow = 0;
    for (int trial = 0; trial < 50; ++trial) {
        Vector query = random_vector(rng);
        auto truth = brute_force(vectors, query, 10, tenth);
        VectorIndex::SearchPlan plan;
        auto hits = index->search(query, 10, &tenth, &plan);
        REQUIRE(hits.ok());
        REQUIRE(hits->size() == 10);
        CHECK_FALSE(plan.exact);
        // The sample finds about a tenth admitted, so the beam of 16 grows to about 160.
        CHECK(plan.selectivity == doctest::Approx(0.1).epsilon(0.3));
        CHECK(plan.ef_search >= 120);
        for (const auto& hit : *hits) {
            CHECK(hit.id % 10 == 3);
            found_wide += static_cast<double>(std::count(truth.begin(), truth.end(), hit.id));
        }
        VectorIndex::SearchPlan narrow_plan;
        auto narrow_hits = narrow->search(query, 10, &tenth, &narrow_plan);
        REQUIRE(narrow_hits.ok());
        for (const auto& hit : *narrow_hits) {
            found_narrow += static_cast<double>(std::count(truth.begin(), truth.end(), hit.id));
        }
        if (!narrow_plan.exact) {
            CHECK(narrow_plan.ef_search == 16);
        }
    }
    // FAISS 1.7 keeps the beam at the index's efSearch and only lifts the early stop, so the
    // widened walk finds at least what the capped one does.
    CHECK(found_wide >= found_narrow);

    // No filter: the configured beam, no sampling; the beam can change while serving.
    VectorIndex::SearchPlan plain;
    REQUIRE(index->search(vectors[5], 10, nullptr, &plain).ok());
    CHECK_FALSE(plain.exact);
    CHECK(plain.selectivity == 1.0);
    CHECK(plain.ef_search == 16);
    index->set_hnsw_ef_search(32);
    REQUIRE(index->search(vectors[5], 10, nullptr, &plain).ok());
    CHECK(plain.ef_search == 32);
}

TEST_CASE("the configured efSearch reaches FAISS: a wider beam finds more true neighbours") {
    auto index = make_planned(100, 16, 2048);
    auto vectors = fill(*index, 3000);
    std::function<bool(std::uint64_t)> all = [](std::uint64_t) { return true; };
    auto recall = [&](int ef) {
        index->set_hnsw_ef_search(ef);
        CHECK(index->hnsw_ef_search() == ef);
        std::mt19937 rng(6);
        double found = 0;
        for (int trial = 0; trial < 50; ++trial) {
            Vector query = random_vector(rng);
            auto truth = brute_force(vectors, query, 10, all);
            auto hits = index->search(query, 10, nullptr);
            REQUIRE(hits.ok());
            for (const auto& hit : *hits) {
                found += static_cast<double>(std::count(truth.begin(), truth.end(), hit.id));
            }
        }
        return found / 500;
    };
    double narrow = recall(10);
    double wide = recall(256);
    MESSAGE("recall@10 at efSearch 10: " << narrow << ", at 256: " << wide);
    CHECK(wide > narrow);
    CHECK(wide >= 0.99);
}

TEST_CASE("the exact-scan budget follows the cost model and its cap") {
    // HNSW: max(n * ef / max_ef, sqrt(w * ef * n * 2M)), at most n and filter_exact_max.
    auto hnsw = make_planned(std::numeric_limits<std::size_t>::max(), 16, 2048);
    fill(*hnsw, 3000);
    const double w = 0.3;  // the model's cost of a walk's visit against a scanned candidate
    auto expected = static_cast<std::size_t>(std::sqrt(w * 16.0 * 3000 * 32));  // HNSW16: 32
    CHECK(hnsw->exact_scan_budget(10) == expected);
    // k above efSearch widens the walk, so the scan may cover more.
    CHECK(hnsw->exact_scan_budget(64) ==
          static_cast<std::size_t>(std::sqrt(w * 64.0 * 3000 * 32)));
    // A beam that cannot widen (max_ef = ef) leaves the walk unusable under any filter.
    auto capped_walk = make_planned(std::numeric_limits<std::size_t>::max(), 16, 16);
    fill(*capped_walk, 3000);
    CHECK(capped_walk->exact_scan_budget(10) == 3000);
    auto capped = make_planned(100, 16, 2048);
    fill(*capped, 3000);
    CHECK(capped->exact_scan_budget(10) == 100);
    VectorIndex::SearchPlan plan;
    std::function<bool(std::uint64_t)> tenth = [](std::uint64_t id) { return id % 10 == 3; };
    REQUIRE(hnsw->search(Vector(kDim, 0.25f), 10, &tenth, &plan).ok());
    CHECK(plan.exact_budget == expected);
    // 300 admitted of 3,000 is under the budget of 678: an exact scan.
    CHECK(plan.exact);
    // Flat: a candidate list is always cheaper than the scan of everything.
    VectorIndexOptions flat_options;
    flat_options.factory = "Flat";
    flat_options.dimension = kDim;
    auto flat = VectorIndex::create(flat_options);
    REQUIRE(flat.ok());
    fill(**flat, 500);
    CHECK((*flat)->exact_scan_budget(10) == 500);
}
