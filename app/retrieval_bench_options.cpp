#include "app/retrieval_bench_options.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <sstream>

namespace sluice::app {
namespace {

bool is_one_of(const std::string& value, std::initializer_list<const char*> allowed) {
    return std::any_of(allowed.begin(), allowed.end(),
                       [&](const char* name) { return value == name; });
}

// Weights print with two decimals in labels, so two weights closer than that would share one.
std::string weight_text(double weight) {
    char text[16];
    std::snprintf(text, sizeof text, "%.2f", weight);
    return text;
}

}  // namespace

Status validate(const RetrievalBenchOptions& options) {
    if (options.modes.empty()) {
        return invalid_argument("--mode: expected one or more of lexical, vector, hybrid");
    }
    for (const auto& mode : options.modes) {
        if (!is_one_of(mode, {"lexical", "vector", "hybrid"})) {
            return invalid_argument("--mode '" + mode + "': expected lexical, vector or hybrid");
        }
    }
    if (options.fusions.empty()) {
        return invalid_argument("--fusion: expected one or more of index, rrf, weighted");
    }
    for (const auto& fusion : options.fusions) {
        if (!is_one_of(fusion, {"index", "rrf", "weighted"})) {
            return invalid_argument("--fusion '" + fusion + "': expected index, rrf or weighted");
        }
    }
    for (double weight : options.vector_weights) {
        if (!(weight >= 0.0 && weight <= 1.0)) {
            return invalid_argument("--vector-weight " + std::to_string(weight) +
                                    ": expected a number from 0 to 1");
        }
    }
    if (options.candidates.empty()) {
        return invalid_argument("--candidates: expected one or more depths (0: the default)");
    }
    for (std::size_t depth : options.candidates) {
        // The rankers go max(k, depth) deep and the bench's k is 100, so a depth below 100
        // would measure the default under another name. Index::query caps k at 1000, so a
        // deeper list could never be asked for through the product's API.
        if (depth != 0 && (depth < kRetrievalBenchK || depth > 1000)) {
            return invalid_argument("--candidates " + std::to_string(depth) +
                                    ": expected 0 (the default) or " +
                                    std::to_string(kRetrievalBenchK) + " (the bench's k) to 1000");
        }
    }
    if (!is_one_of(options.query_split, {"all", "even", "odd"})) {
        return invalid_argument("--query-split '" + options.query_split +
                                "': expected all, even or odd");
    }
    if (!is_one_of(options.embedder, {"lexical-hash", "http"})) {
        return invalid_argument("--embedder '" + options.embedder +
                                "': expected lexical-hash or http");
    }
    if (options.embedder == "http") {
        const auto& url = options.embedder_endpoint;
        if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
            return invalid_argument(
                "--embedder http needs --embedder-endpoint, a base URL such as "
                "http://127.0.0.1:8011 (found '" +
                url + "')");
        }
        if (options.embedder_model.empty()) {
            return invalid_argument(
                "--embedder http needs --embedder-model, the \"model\" field of each request");
        }
        if (!options.dimension_given) {
            return invalid_argument(
                "--embedder http needs --dim, the width of the server's embeddings");
        }
    } else if (!options.embedder_endpoint.empty() || !options.embedder_model.empty()) {
        return invalid_argument(
            "--embedder-endpoint and --embedder-model are for --embedder "
            "http, not '" +
            options.embedder + "'");
    }
    auto settings = bench_index_settings(options);
    return retrieval::validate(settings);
}

retrieval::IndexSettings bench_index_settings(const RetrievalBenchOptions& options) {
    retrieval::IndexSettings settings;
    settings.name = "bench";
    settings.language = options.language;
    settings.chunking = options.chunking;
    settings.embedder = options.embedder;
    settings.embedder_endpoint = options.embedder_endpoint;
    settings.embedder_model = options.embedder_model;
    settings.dimension = options.dimension;
    settings.factory = options.factory;
    return settings;
}

Status check_reusable(const retrieval::IndexSettings& stored,
                      const retrieval::IndexSettings& requested) {
    std::istringstream have(retrieval::encode_settings(stored));
    std::istringstream want(retrieval::encode_settings(requested));
    std::string have_line;
    std::string want_line;
    while (true) {
        bool more_have = static_cast<bool>(std::getline(have, have_line));
        bool more_want = static_cast<bool>(std::getline(want, want_line));
        if (!more_have && !more_want) {
            return Status::ok_status();
        }
        if (have_line != want_line || more_have != more_want) {
            return failed_precondition(
                "the index in --index-dir was built with other settings: stored '" +
                (more_have ? have_line : std::string("(nothing)")) + "', requested '" +
                (more_want ? want_line : std::string("(nothing)")) +
                "'; use another folder or remove this one");
        }
    }
}

Result<bool> in_query_split(const std::string& query_id, const std::string& split) {
    if (split == "all") {
        return true;
    }
    long long value = 0;
    auto [end, ec] = std::from_chars(query_id.data(), query_id.data() + query_id.size(), value);
    if (query_id.empty() || ec != std::errc() || end != query_id.data() + query_id.size()) {
        return invalid_argument("--query-split " + split + " needs integer query ids; '" +
                                query_id + "' is not one");
    }
    bool even = value % 2 == 0;
    return split == "even" ? even : !even;
}

std::string RetrievalRun::label() const {
    if (mode != "hybrid") {
        return mode;
    }
    std::string out = "hybrid " + fusion;
    if (fusion == "weighted") {
        out += " w=" + weight_text(vector_weight);
    }
    if (index_default) {
        out += " (index default)";
    }
    if (candidates != 0) {
        out += " depth " + std::to_string(candidates);
    }
    return out;
}

retrieval::Query RetrievalRun::query_template() const {
    retrieval::Query query;
    query.k = kRetrievalBenchK;
    query.mode = mode == "lexical"  ? retrieval::QueryMode::kLexical
                 : mode == "vector" ? retrieval::QueryMode::kAnn
                                    : retrieval::QueryMode::kHybrid;
    if (mode == "hybrid") {
        if (!index_default) {
            query.fusion = fusion == "weighted" ? retrieval::FusionMethod::kWeighted
                                                : retrieval::FusionMethod::kRrf;
            if (fusion == "weighted") {
                query.vector_weight = vector_weight;
            }
        }
        query.candidates = candidates;
    }
    return query;
}

std::vector<RetrievalRun> expand_runs(const RetrievalBenchOptions& options,
                                      const retrieval::FusionChoice& index_fusion) {
    std::vector<double> weights = options.vector_weights;
    if (weights.empty()) {
        weights.push_back(index_fusion.vector_weight);
    }
    std::vector<RetrievalRun> runs;
    for (const auto& mode : options.modes) {
        if (mode != "hybrid") {
            runs.push_back(RetrievalRun{mode, "", 0, 0, false});
            continue;
        }
        for (const auto& fusion : options.fusions) {
            for (std::size_t depth : options.candidates) {
                if (fusion == "index") {
                    const bool weighted = index_fusion.method == retrieval::FusionMethod::kWeighted;
                    runs.push_back(RetrievalRun{mode, weighted ? "weighted" : "rrf",
                                                weighted ? index_fusion.vector_weight : 0, depth,
                                                true});
                    continue;
                }
                if (fusion == "rrf") {
                    runs.push_back(RetrievalRun{mode, fusion, 0, depth, false});
                    continue;
                }
                for (double weight : weights) {
                    runs.push_back(RetrievalRun{mode, fusion, weight, depth, false});
                }
            }
        }
    }
    return runs;
}

}  // namespace sluice::app
