#include "app/ann_dataset.h"

#include <doctest/doctest.h>

#include <cmath>

using sluice::app::AnnData;
using sluice::app::AnnDataSpec;
using sluice::app::ann_recall;
using sluice::app::make_ann_data;
using sluice::app::make_ann_queries;

namespace {

AnnDataSpec spec(std::uint64_t seed) {
    AnnDataSpec out;
    out.n = 20000;
    out.dimension = 32;
    out.centres = 16;
    out.seed = seed;
    return out;
}

}  // namespace

TEST_CASE("ann data is a pure function of its spec") {
    AnnData a = make_ann_data(spec(3));
    AnnData b = make_ann_data(spec(3));
    CHECK(a.vectors == b.vectors);
    CHECK(a.tenant == b.tenant);
    CHECK(a.year == b.year);
    CHECK(make_ann_queries(spec(3), 50) == make_ann_queries(spec(3), 50));
    CHECK(make_ann_data(spec(4)).vectors != a.vectors);
}

TEST_CASE("ann rows are unit vectors; metadata has the documented selectivities") {
    AnnData data = make_ann_data(spec(1));
    REQUIRE(data.vectors.size() == 20000 * 32);
    for (std::size_t i = 0; i < 20000; i += 997) {
        double norm = 0;
        for (std::size_t j = 0; j < 32; ++j) {
            norm += static_cast<double>(data.vectors[i * 32 + j]) * data.vectors[i * 32 + j];
        }
        CHECK(std::sqrt(norm) == doctest::Approx(1.0).epsilon(1e-5));
    }
    std::size_t tenant_7 = 0;
    std::size_t year_2020 = 0;
    for (std::size_t i = 0; i < 20000; ++i) {
        REQUIRE(data.tenant[i] >= 1);
        REQUIRE(data.tenant[i] <= 100);
        REQUIRE(data.year[i] >= 2015);
        REQUIRE(data.year[i] <= 2024);
        tenant_7 += data.tenant[i] == 7 ? 1 : 0;
        year_2020 += data.year[i] == 2020 ? 1 : 0;
    }
    CHECK(tenant_7 > 120);  // 1% of 20,000 is 200
    CHECK(tenant_7 < 280);
    CHECK(year_2020 > 1700);  // 10% is 2,000
    CHECK(year_2020 < 2300);
    // Queries are new draws, not rows of the data.
    auto queries = make_ann_queries(spec(1), 3);
    CHECK(std::vector<float>(queries.begin(), queries.begin() + 32) !=
          std::vector<float>(data.vectors.begin(), data.vectors.begin() + 32));
}

TEST_CASE("ann recall counts the true neighbours among the first k found") {
    CHECK(ann_recall({1, 2, 3}, {1, 2, 3}, 3) == 1.0);
    CHECK(ann_recall({3, 2, 1}, {1, 2, 3}, 3) == 1.0);  // order inside the top k is free
    CHECK(ann_recall({1, 9, 8, 2}, {1, 2, 3, 4}, 4) == 0.5);
    CHECK(ann_recall({9, 8, 1}, {1, 2}, 2) == 0.0);  // 1 is found past k
    CHECK(ann_recall({1}, {1, 2}, 10) == 0.5);       // fewer found than exist
    CHECK(ann_recall({5}, {5}, 10) == 1.0);          // fewer exist than k
    CHECK(ann_recall({}, {}, 10) == 1.0);
}
