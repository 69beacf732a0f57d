#include "agents/evaluation/metrics.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>

namespace sluice::agents::evaluation {

std::string normalize_answer(std::string_view text) {
    // As evaluate-v2.0.py: lower, remove punctuation, remove articles, fix whitespace. Python's
    // string.punctuation is ASCII, so bytes of other scripts pass through unchanged.
    std::string lowered;
    for (char c : text) {
        auto byte = static_cast<unsigned char>(c);
        if (byte < 0x80 && std::ispunct(byte)) {
            continue;
        }
        lowered.push_back(byte < 0x80 ? static_cast<char>(std::tolower(byte)) : c);
    }
    std::string out;
    size_t at = 0;
    while (at < lowered.size()) {
        while (at < lowered.size() && std::isspace(static_cast<unsigned char>(lowered[at]))) {
            ++at;
        }
        size_t end = at;
        while (end < lowered.size() && !std::isspace(static_cast<unsigned char>(lowered[end]))) {
            ++end;
        }
        std::string word = lowered.substr(at, end - at);
        at = end;
        if (word.empty() || word == "a" || word == "an" || word == "the") {
            continue;
        }
        if (!out.empty()) {
            out.push_back(' ');
        }
        out += word;
    }
    return out;
}

std::vector<std::string> answer_tokens(std::string_view text) {
    std::string normalized = normalize_answer(text);
    std::vector<std::string> tokens;
    size_t at = 0;
    while (at < normalized.size()) {
        size_t space = normalized.find(' ', at);
        if (space == std::string::npos) {
            space = normalized.size();
        }
        tokens.push_back(normalized.substr(at, space - at));
        at = space + 1;
    }
    return tokens;
}

double exact_match(std::string_view prediction, const std::vector<std::string>& golds) {
    std::string predicted = normalize_answer(prediction);
    for (const auto& gold : golds) {
        if (normalize_answer(gold) == predicted) {
            return 1;
        }
    }
    return 0;
}

namespace {

double f1_one(const std::vector<std::string>& predicted, const std::vector<std::string>& gold) {
    if (predicted.empty() || gold.empty()) {
        return predicted.empty() && gold.empty() ? 1 : 0;
    }
    std::map<std::string, int> counts;
    for (const auto& token : gold) {
        ++counts[token];
    }
    int common = 0;
    for (const auto& token : predicted) {
        auto it = counts.find(token);
        if (it != counts.end() && it->second > 0) {
            --it->second;
            ++common;
        }
    }
    if (common == 0) {
        return 0;
    }
    double precision = static_cast<double>(common) / static_cast<double>(predicted.size());
    double recall = static_cast<double>(common) / static_cast<double>(gold.size());
    return 2 * precision * recall / (precision + recall);
}

bool relevant(const ContextChunk& chunk, const ContextChunk& expected) {
    if (!expected.doc_uri.empty()) {
        return chunk.doc_uri == expected.doc_uri;
    }
    return chunk.content.find(expected.content) != std::string::npos;
}

}  // namespace

double token_f1(std::string_view prediction, const std::vector<std::string>& golds) {
    std::vector<std::string> predicted = answer_tokens(prediction);
    double best = 0;
    for (const auto& gold : golds) {
        best = std::max(best, f1_one(predicted, answer_tokens(gold)));
    }
    return best;
}

RetrievalScores retrieval_scores(const std::vector<ContextChunk>& retrieved,
                                 const std::vector<ContextChunk>& expected, size_t k) {
    RetrievalScores scores;
    size_t n = std::min(k, retrieved.size());
    std::vector<bool> found(expected.size(), false);
    size_t relevant_chunks = 0;
    double dcg = 0;
    for (size_t rank = 0; rank < n; ++rank) {
        bool is_relevant = false;
        for (size_t e = 0; e < expected.size(); ++e) {
            if (relevant(retrieved[rank], expected[e])) {
                is_relevant = true;
                found[e] = true;
            }
        }
        if (is_relevant) {
            ++relevant_chunks;
            dcg += 1.0 / std::log2(static_cast<double>(rank) + 2);
        }
    }
    double ideal = 0;
    for (size_t rank = 0; rank < std::min(k, expected.size()); ++rank) {
        ideal += 1.0 / std::log2(static_cast<double>(rank) + 2);
    }
    scores.precision = n == 0 ? 0 : static_cast<double>(relevant_chunks) / static_cast<double>(n);
    scores.recall = static_cast<double>(std::count(found.begin(), found.end(), true)) /
                    static_cast<double>(expected.size());
    // Several chunks of one expected document can each count, so DCG may pass the ideal.
    scores.ndcg = ideal == 0 ? 0 : std::min(1.0, dcg / ideal);
    return scores;
}

}  // namespace sluice::agents::evaluation
