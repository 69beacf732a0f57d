// Sampling: greedy, seeds, truncations, penalties and log-probabilities.
#include "inference/sampling.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <span>
#include <vector>

#include "inference/detail/sum_exp.h"

namespace sluice::inference {
namespace {

const std::vector<float> kLogits = {1.0f, 3.0f, 2.0f, 0.5f, 2.9f, -1.0f};

std::map<int32_t, int> histogram(const SamplingParams& params, int n) {
    Sampler sampler(params);
    std::map<int32_t, int> counts;
    for (int i = 0; i < n; ++i) {
        ++counts[sampler.sample(kLogits, {}, {}).id];
    }
    return counts;
}

}  // namespace

TEST_CASE("sampling: temperature 0 and top_k 1 are greedy") {
    SamplingParams greedy{.temperature = 0.0f};
    CHECK(Sampler(greedy).sample(kLogits, {}, {}).id == 1);
    SamplingParams top1{.temperature = 5.0f, .top_k = 1};
    CHECK(histogram(top1, 50) == std::map<int32_t, int>{{1, 50}});
}

TEST_CASE("sampling: a seed reproduces the same draws, another seed differs") {
    auto draws = [](uint64_t seed) {
        Sampler sampler(SamplingParams{.temperature = 1.5f, .seed = seed});
        std::vector<int32_t> ids;
        for (int i = 0; i < 64; ++i) {
            ids.push_back(sampler.sample(kLogits, {}, {}).id);
        }
        return ids;
    };
    CHECK(draws(7) == draws(7));
    CHECK(draws(7) != draws(8));
}

TEST_CASE("sampling: draws follow softmax(logits / T)") {
    const int n = 20000;
    auto counts = histogram(SamplingParams{.temperature = 1.0f, .seed = 3}, n);
    double z = 0;
    for (float l : kLogits) {
        z += std::exp(l);
    }
    for (size_t id = 0; id < kLogits.size(); ++id) {
        const double expected = std::exp(kLogits[id]) / z;
        CHECK(counts[static_cast<int32_t>(id)] / static_cast<double>(n) ==
              doctest::Approx(expected).epsilon(0.1));
    }
}

TEST_CASE("sampling: top-k, top-p and min-p keep only what they should") {
    auto only = [](const SamplingParams& params, std::vector<int32_t> allowed) {
        for (const auto& [id, count] : histogram(params, 2000)) {
            INFO("id " << id);
            CHECK(std::find(allowed.begin(), allowed.end(), id) != allowed.end());
        }
    };
    only({.temperature = 2.0f, .top_k = 2}, {1, 4});
    // softmax: p(1) ≈ 0.39, p(4) ≈ 0.35, p(2) ≈ 0.14 — 0.7 needs the first two.
    only({.temperature = 1.0f, .top_p = 0.7f}, {1, 4});
    only({.temperature = 1.0f, .top_p = 0.8f}, {1, 4, 2});
    // min_p 0.3: exp(l - 3) >= 0.3 keeps ids 1, 4, 2 (e^-1 = 0.37), not 0 (e^-2).
    only({.temperature = 1.0f, .min_p = 0.3f}, {1, 4, 2});
    CHECK(histogram({.temperature = 1.0f, .min_p = 0.3f, .seed = 1}, 2000).size() == 3);
}

TEST_CASE("sampling: penalties move the logits the documented way") {
    // Token 1 repeated three times: frequency 0.2 * 3 + presence 0.5 = 1.1 off 3.0 → 1.9 < 2.9.
    SamplingParams params{.temperature = 0.0f, .presence_penalty = 0.5f, .frequency_penalty = 0.2f};
    const std::vector<int32_t> generated = {1, 1, 1};
    CHECK(Sampler(params).sample(kLogits, {}, generated).id == 4);
    CHECK(Sampler(params).sample(kLogits, generated, {}).id == 1);  // prompt does not count

    // Repetition 2 over the prompt: 3.0 / 2 = 1.5 and 2.9 / 2 = 1.45, so id 2 (2.0) wins.
    SamplingParams repetition{.temperature = 0.0f, .repetition_penalty = 2.0f};
    const std::vector<int32_t> prompt = {1, 4};
    CHECK(Sampler(repetition).sample(kLogits, prompt, {}).id == 2);
}

TEST_CASE("sampling: log-probabilities are the model's log-softmax") {
    SamplingParams params{.temperature = 0.0f, .top_logprobs = 3};
    SampledToken token = Sampler(params).sample(kLogits, {}, {});
    double z = 0;
    for (float l : kLogits) {
        z += std::exp(l);
    }
    CHECK(token.logprob == doctest::Approx(3.0 - std::log(z)));
    REQUIRE(token.top.size() == 3);
    CHECK(token.top[0].id == 1);
    CHECK(token.top[1].id == 4);
    CHECK(token.top[2].id == 2);
    CHECK(token.top[1].logprob == doctest::Approx(2.9 - std::log(z)));
}

TEST_CASE("sampling: a draw then a choice given it is exactly sample()") {
    std::mt19937 gen(7);
    std::normal_distribution<float> normal(0.0f, 3.0f);
    std::vector<float> row(300);
    const std::vector<SamplingParams> cases = {
        {.temperature = 0.0f},
        {.temperature = 2.0f, .top_k = 1},
        {.temperature = 1.0f},
        {.temperature = 0.7f, .top_k = 40},
        {.temperature = 0.8f, .top_p = 0.9f},
        {.temperature = 1.3f, .top_k = 20, .top_p = 0.5f, .min_p = 0.05f},
        {.temperature = 1.0f, .min_p = 0.2f},
        {.temperature = 1.0f, .top_p = 0.001f},
    };
    for (size_t c = 0; c < cases.size(); ++c) {
        SamplingParams params = cases[c];
        params.seed = 100 + c;
        Sampler whole(params);
        Sampler drawn(params);
        Sampler chooser(params);
        for (int step = 0; step < 200; ++step) {
            for (float& value : row) {
                value = normal(gen);
            }
            const SampledToken expected = whole.sample(row, {}, {});
            const double u = drawn.greedy() ? 0.25 : drawn.next_uniform();
            const SampledToken split = chooser.sample_with_uniform(row, {}, {}, {}, u);
            CAPTURE(c);
            CAPTURE(step);
            REQUIRE(split.id == expected.id);
            REQUIRE(split.logprob == expected.logprob);
        }
    }
}

TEST_CASE("sampling: the choice given a uniform walks the cumulative mass in id order") {
    // Probabilities ∝ exp(logit): 1, 2, 1 (ids 0, 1, 2) → boundaries at 1/4 and 3/4.
    const std::vector<float> row = {0.0f, std::log(2.0f), 0.0f};
    Sampler sampler({.temperature = 1.0f});
    CHECK(sampler.sample_with_uniform(row, {}, {}, {}, 0.0).id == 0);
    CHECK(sampler.sample_with_uniform(row, {}, {}, {}, 0.2).id == 0);
    CHECK(sampler.sample_with_uniform(row, {}, {}, {}, 0.3).id == 1);
    CHECK(sampler.sample_with_uniform(row, {}, {}, {}, 0.7).id == 1);
    CHECK(sampler.sample_with_uniform(row, {}, {}, {}, 0.8).id == 2);
    CHECK(sampler.sample_with_uniform(row, {}, {}, {}, 0.9999999).id == 2);
}

TEST_CASE("sampling: plain and min-p draws walk the kept mass in id order, exactly") {
    // The definition, written out: probabilities exp((logit - max) / T) in float, those below
    // min_p dropped, the draw the first id where u x mass (in double) is used up.
    auto reference = [](std::span<const float> row, float temperature, float min_p, double u) {
        const float top = *std::max_element(row.begin(), row.end());
        std::vector<float> p;
        double mass = 0;
        for (float logit : row) {
            const float q = std::exp((logit - top) / temperature);
            p.push_back(q < min_p ? 0.0f : q);
            mass += p.back();
        }
        double target = u * mass;
        int32_t last = 0;
        for (size_t id = 0; id < p.size(); ++id) {
            target -= p[id];
            if (target < 0) {
                return static_cast<int32_t>(id);
            }
            last = p[id] > 0 ? static_cast<int32_t>(id) : last;
        }
        return last;
    };
    std::mt19937_64 gen(17);
    std::normal_distribution<float> logit(0.0f, 3.0f);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    for (int trial = 0; trial < 300; ++trial) {
        std::vector<float> row(static_cast<size_t>(50 + trial * 7));
        for (float& value : row) {
            value = logit(gen);
        }
        const float temperature = trial % 3 == 0 ? 0.7f : 1.3f;
        const float min_p = trial % 2 == 0 ? 0.0f : 0.05f;
        Sampler sampler({.temperature = temperature, .min_p = min_p});
        for (int draw = 0; draw < 5; ++draw) {
            const double u = uniform(gen);
            CHECK(sampler.sample_with_uniform(row, {}, {}, {}, u).id ==
                  reference(row, temperature, min_p, u));
        }
    }
}

TEST_CASE("sampling: invalid parameters are rejected naming them") {
    auto message = [](SamplingParams p) { return validate_sampling(p).message(); };
    CHECK(message({.temperature = -1.0f}).find("'temperature'") != std::string::npos);
    CHECK(message({.top_k = -2}).find("'top_k'") != std::string::npos);
    CHECK(message({.top_p = 0.0f}).find("'top_p'") != std::string::npos);
    CHECK(message({.min_p = 1.5f}).find("'min_p'") != std::string::npos);
    CHECK(message({.repetition_penalty = 0.0f}).find("'repetition_penalty'") != std::string::npos);
    CHECK(message({.top_logprobs = 21}).find("'top_logprobs'") != std::string::npos);
    CHECK(validate_sampling({}).ok());
}

TEST_CASE("sampling: a logit bias moves the choice and leaves the reported logprobs raw") {
    const std::vector<float> row = {0.0f, 3.0f, 1.0f, 2.5f};
    SUBCASE("-100 bans the greedy choice, +100 forces another") {
        Sampler banned({.temperature = 0.0f, .logit_bias = {{1, -100.0f}}});
        const SampledToken second = banned.sample(row, {}, {});
        CHECK(second.id == 3);
        // The model's own log-probability, before the bias.
        const double lse = std::log(1.0 + std::exp(3.0) + std::exp(1.0) + std::exp(2.5));
        CHECK(second.logprob == doctest::Approx(2.5 - lse).epsilon(1e-6));
        Sampler forced({.temperature = 0.0f, .logit_bias = {{0, 100.0f}}});
        CHECK(forced.sample(row, {}, {}).id == 0);
    }
    SUBCASE("a small bias shifts the distribution by exp(bias)") {
        // Ids 0 and 2 with logits 0 and 1; +1 on id 0 makes them equally likely.
        const std::vector<float> pair = {0.0f, 1.0f};
        Sampler plain({.temperature = 1.0f, .seed = 5});
        Sampler biased({.temperature = 1.0f, .seed = 5, .logit_bias = {{0, 1.0f}}});
        int plain_zero = 0;
        int biased_zero = 0;
        for (int i = 0; i < 4000; ++i) {
            plain_zero += plain.sample(pair, {}, {}).id == 0 ? 1 : 0;
            biased_zero += biased.sample(pair, {}, {}).id == 0 ? 1 : 0;
        }
        // P(0) = 1 / (1 + e) = 0.269 without, 0.5 with: 4,000 draws put both within ±0.04.
        CHECK(plain_zero == doctest::Approx(4000 * 0.2689).epsilon(0.15));
        CHECK(biased_zero == doctest::Approx(2000).epsilon(0.08));
    }
    SUBCASE("the bias is applied before the penalties") {
        // Repetition penalty 2 halves a positive logit: 3 + 1 = 4 → 2, below id 3's 2.5. Had
        // the bias come after, id 1 would have 3 / 2 + 1 = 2.5 and win the tie by its lower id.
        const std::vector<int32_t> seen = {1};
        Sampler sampler(
            {.temperature = 0.0f, .repetition_penalty = 2.0f, .logit_bias = {{1, 1.0f}}});
        CHECK(sampler.sample(row, seen, {}).id == 3);
    }
    SUBCASE("a grammar mask still wins over a positive bias") {
        Sampler sampler({.temperature = 0.0f, .logit_bias = {{1, 100.0f}}});
        const std::vector<uint64_t> allowed = {0b0101};  // ids 0 and 2
        CHECK(sampler.sample(row, {}, {}, allowed).id == 2);
    }
}

TEST_CASE("sampling: a logit bias outside its limits is rejected naming the token") {
    auto message = [](SamplingParams p, int64_t n_vocab = 0) {
        return validate_sampling(p, n_vocab).message();
    };
    CHECK(validate_sampling({.logit_bias = {{4, -100.0f}, {7, 100.0f}}}, 8).ok());
    CHECK(message({.logit_bias = {{-1, 1.0f}}}).find("token id -1") != std::string::npos);
    CHECK(message({.logit_bias = {{8, 1.0f}}}, 8).find("token id 8 outside [0, 8)") !=
          std::string::npos);
    CHECK(message({.logit_bias = {{3, 100.5f}}}).find("[-100, 100]") != std::string::npos);
    CHECK(message({.logit_bias = {{3, NAN}}}).find("[-100, 100]") != std::string::npos);
    CHECK(message({.logit_bias = {{3, 1.0f}, {2, 0.0f}, {3, -1.0f}}})
              .find("token 3 is named twice") != std::string::npos);
}

}  // namespace sluice::inference

namespace sluice::inference {

TEST_CASE("sampling: the vectorised sum of exponentials matches std::exp to 1e-14") {
    std::mt19937_64 gen(11);
    std::normal_distribution<float> normal(0.0f, 4.0f);
    // Ragged lengths (the four-wide loop's tail), wide and narrow spreads, values far below the
    // maximum (underflow), masked tokens (-inf).
    for (size_t n : {size_t{1}, size_t{3}, size_t{4}, size_t{7}, size_t{1001}, size_t{100352}}) {
        for (float spread : {1.0f, 30.0f, 400.0f}) {
            std::vector<float> row(n);
            for (float& value : row) {
                value = normal(gen) * spread / 4.0f;
            }
            if (n > 3) {
                row[1] = -std::numeric_limits<float>::infinity();
                row[2] = -800.0f;
            }
            const float max_value = *std::max_element(row.begin(), row.end());
            long double want = 0;
            for (float value : row) {
                want += std::exp(static_cast<long double>(value) - max_value);
            }
            const double got = detail::sum_exp(row, max_value);
            INFO("n " << n << " spread " << spread);
            CHECK(std::fabs(got - static_cast<double>(want)) <= 1e-14 * static_cast<double>(want));
            CHECK(detail::sum_exp_portable(row, max_value) ==
                  doctest::Approx(static_cast<double>(want)).epsilon(1e-14));
        }
    }
    const std::vector<float> with_nan = {0.0f, std::nanf(""), -1.0f, -2.0f, -3.0f};
    CHECK(std::isnan(detail::sum_exp(with_nan, 0.0)));
}

}  // namespace sluice::inference
