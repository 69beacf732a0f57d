#include "app/ann_dataset.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <unordered_set>

namespace sluice::app {
namespace {

void normalise(float* row, std::size_t dimension) {
    double norm = 0;
    for (std::size_t j = 0; j < dimension; ++j) {
        norm += static_cast<double>(row[j]) * row[j];
    }
    if (norm <= 0) {
        return;
    }
    auto scale = static_cast<float>(1.0 / std::sqrt(norm));
    for (std::size_t j = 0; j < dimension; ++j) {
        row[j] *= scale;
    }
}

// [centres, dimension], each row N(0, I). std::mt19937_64 and our own Box-Muller keep the bytes
// the same across standard libraries (std::normal_distribution's algorithm is unspecified).
class Normal {
public:
    explicit Normal(std::uint64_t seed) : random_(seed) {}
    double next() {
        if (has_spare_) {
            has_spare_ = false;
            return spare_;
        }
        constexpr double kTwoPi = 6.283185307179586;
        double u1 = (static_cast<double>(random_() >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
        double u2 = static_cast<double>(random_() >> 11) * 0x1.0p-53;
        double radius = std::sqrt(-2.0 * std::log(u1));
        spare_ = radius * std::sin(kTwoPi * u2);
        has_spare_ = true;
        return radius * std::cos(kTwoPi * u2);
    }
    std::uint64_t bits() { return random_(); }

private:
    std::mt19937_64 random_;
    double spare_ = 0;
    bool has_spare_ = false;
};

std::vector<float> make_centres(const AnnDataSpec& spec) {
    Normal normal(spec.seed);
    std::vector<float> centres(spec.centres * spec.dimension);
    for (auto& value : centres) {
        value = static_cast<float>(normal.next());
    }
    return centres;
}

// Rows of centre + noise: the noise per coordinate has standard deviation `spread`, so a row's
// noise has about the norm of its centre (both near sqrt(dimension)) when spread is 1.
std::vector<float> draw_rows(const AnnDataSpec& spec, const std::vector<float>& centres,
                             std::size_t count, Normal& normal) {
    std::vector<float> rows(count * spec.dimension);
    for (std::size_t i = 0; i < count; ++i) {
        std::size_t centre = normal.bits() % spec.centres;
        const float* c = centres.data() + centre * spec.dimension;
        float* row = rows.data() + i * spec.dimension;
        for (std::size_t j = 0; j < spec.dimension; ++j) {
            row[j] = c[j] + static_cast<float>(spec.spread * normal.next());
        }
        normalise(row, spec.dimension);
    }
    return rows;
}

}  // namespace

AnnData make_ann_data(const AnnDataSpec& spec) {
    std::vector<float> centres = make_centres(spec);
    Normal normal(spec.seed + 1);
    AnnData data;
    data.vectors = draw_rows(spec, centres, spec.n, normal);
    Normal attributes(spec.seed + 2);
    data.tenant.resize(spec.n);
    data.year.resize(spec.n);
    for (std::size_t i = 0; i < spec.n; ++i) {
        data.tenant[i] = static_cast<std::uint8_t>(1 + attributes.bits() % 100);
        data.year[i] = static_cast<std::uint16_t>(2015 + attributes.bits() % 10);
    }
    return data;
}

std::vector<float> make_ann_queries(const AnnDataSpec& spec, std::size_t count) {
    std::vector<float> centres = make_centres(spec);
    Normal normal(spec.seed + 3);
    return draw_rows(spec, centres, count, normal);
}

double ann_recall(const std::vector<std::uint64_t>& found,
                  const std::vector<std::uint64_t>& truth, std::size_t k) {
    std::size_t wanted = std::min(k, truth.size());
    if (wanted == 0) {
        return 1.0;
    }
    std::unordered_set<std::uint64_t> nearest(truth.begin(),
                                              truth.begin() + static_cast<std::ptrdiff_t>(wanted));
    std::size_t hits = 0;
    std::size_t limit = std::min(k, found.size());
    for (std::size_t i = 0; i < limit; ++i) {
        hits += nearest.count(found[i]);
    }
    return static_cast<double>(hits) / static_cast<double>(wanted);
}

}  // namespace sluice::app
