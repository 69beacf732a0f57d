#include "inference/cpu/ops.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace sluice::inference::cpu {

void layer_norm(const float* x, const float* weight, int64_t n, int64_t d, float eps, float* out) {
    for (int64_t i = 0; i < n; ++i) {
        const float* row = x + i * d;
        double sum = 0;
        for (int64_t j = 0; j < d; ++j) {
            sum += row[j];
        }
        const double mean = sum / static_cast<double>(d);
        double var = 0;
        for (int64_t j = 0; j < d; ++j) {
            const double centred = row[j] - mean;
            var += centred * centred;
        }
        var /= static_cast<double>(d);
        const auto inv_std = static_cast<float>(1.0 / std::sqrt(var + eps));
        const auto mean_f = static_cast<float>(mean);
        float* dst = out + i * d;
        for (int64_t j = 0; j < d; ++j) {
            dst[j] = (row[j] - mean_f) * inv_std * weight[j];
        }
    }
}

void rope_table(std::span<const int32_t> positions, int64_t head_dim, double theta,
                RopeTable* table) {
    const int64_t half = head_dim / 2;
    table->half = half;
    table->cos.resize(positions.size() * static_cast<size_t>(half));
    table->sin.resize(positions.size() * static_cast<size_t>(half));
    std::vector<float> inv_freq(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; ++i) {
        // The reference: 1.0 / (base ** (arange(0, dim, 2).float() / dim)), all in fp32.
        const auto exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
        inv_freq[static_cast<size_t>(i)] =
            1.0f / static_cast<float>(std::pow(static_cast<float>(theta), exponent));
    }
    for (size_t p = 0; p < positions.size(); ++p) {
        for (int64_t i = 0; i < half; ++i) {
            const float angle = static_cast<float>(positions[p]) * inv_freq[static_cast<size_t>(i)];
            table->cos[p * static_cast<size_t>(half) + static_cast<size_t>(i)] = std::cos(angle);
            table->sin[p * static_cast<size_t>(half) + static_cast<size_t>(i)] = std::sin(angle);
        }
    }
}

void rope_apply(float* x, const RopeTable& table, int64_t row) {
    const int64_t half = table.half;
    const float* cos = table.cos.data() + row * half;
    const float* sin = table.sin.data() + row * half;
    for (int64_t i = 0; i < half; ++i) {
        // q * cos + rotate_half(q) * sin, rotate_half(q) = [-q2, q1]
        const float a = x[i];
        const float b = x[i + half];
        x[i] = a * cos[i] - b * sin[i];
        x[i + half] = b * cos[i] + a * sin[i];
    }
}

void softmax(float* x, int64_t n) {
    float max_value = x[0];
    for (int64_t i = 1; i < n; ++i) {
        max_value = std::max(max_value, x[i]);
    }
    float sum = 0;
    for (int64_t i = 0; i < n; ++i) {
        x[i] = std::exp(x[i] - max_value);
        sum += x[i];
    }
    const float inv = 1.0f / sum;
    for (int64_t i = 0; i < n; ++i) {
        x[i] *= inv;
    }
}

void glu(float* gate, const float* up, int64_t n, Activation activation) {
    if (activation == Activation::kSilu) {
        for (int64_t i = 0; i < n; ++i) {
            gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
        }
        return;
    }
    // nn.GELU's exact form (ACT2FN["gelu"]), not the tanh approximation.
    for (int64_t i = 0; i < n; ++i) {
        const float g = gate[i];
        gate[i] = 0.5f * g * (1.0f + std::erf(g * 0.70710678118654752f)) * up[i];
    }
}

void route_top_k(const float* logits, int64_t n_expert, int64_t k, const ModelConfig& config,
                 int32_t* experts, float* weights) {
    std::vector<float> probs(logits, logits + n_expert);
    softmax(probs.data(), n_expert);
    std::vector<int32_t> order(static_cast<size_t>(n_expert));
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
        return probs[static_cast<size_t>(a)] > probs[static_cast<size_t>(b)] ||
               (probs[static_cast<size_t>(a)] == probs[static_cast<size_t>(b)] && a < b);
    });
    double norm = 1.0;
    if (config.expert_weights_norm_p) {
        const double p = *config.expert_weights_norm_p;
        double sum = 0;
        for (int64_t i = 0; i < k; ++i) {
            sum += std::pow(std::fabs(probs[static_cast<size_t>(order[static_cast<size_t>(i)])]), p);
        }
        norm = std::pow(sum, 1.0 / p);
    }
    for (int64_t i = 0; i < k; ++i) {
        experts[i] = order[static_cast<size_t>(i)];
        weights[i] = static_cast<float>(probs[static_cast<size_t>(experts[i])] / norm);
    }
}

}  // namespace sluice::inference::cpu
