#include "retrieval/index_settings.h"

#include <charconv>
#include <cstdio>
#include <iomanip>
#include <sstream>
#include <utility>

#include "retrieval/text_analyzer.h"
#include "retrieval/vector_factory.h"

namespace sluice::retrieval {
namespace {

Result<double> parse_number(const std::string& key, const std::string& value) {
    double out = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), out);
    if (ec != std::errc() || end != value.data() + value.size()) {
        return data_loss("index setting '" + key + "' is '" + value + "', expected a number");
    }
    return out;
}

}  // namespace

Status validate_index_name(const std::string& name) {
    if (name.empty() || name.size() > 128 || name.front() == '.') {
        return invalid_argument("index name '" + name +
                                "': expected 1 to 128 of [A-Za-z0-9_.-], not starting with '.'");
    }
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || c == '.';
        if (!ok) {
            return invalid_argument("index name '" + name + "' has '" + std::string(1, c) +
                                    "', expected only [A-Za-z0-9_.-]");
        }
    }
    return Status::ok_status();
}

Status validate(const IndexSettings& settings) {
    SLUICE_RETURN_IF_ERROR(validate_index_name(settings.name));
    if (settings.chunking) {
        SLUICE_RETURN_IF_ERROR(validate(settings.chunk));
    }
    if (settings.embedder != "lexical-hash" && settings.embedder != "http" &&
        settings.embedder != "model" && settings.embedder != "none") {
        return invalid_argument("embedder '" + settings.embedder +
                                "', expected lexical-hash, http, model or none");
    }
    if (settings.embedder == "http" && settings.embedder_endpoint.empty()) {
        return invalid_argument("embedder http needs an endpoint");
    }
    // The stored form is one key=value per line (encode_settings): a line break inside a value
    // would read back as a setting of its own ("name=other" made an index answer to, and be
    // dropped as, another index's name). Neither a URL nor a model name holds control bytes.
    for (const auto& [key, value] : {std::pair<const char*, const std::string&>{
                                         "embedder_endpoint", settings.embedder_endpoint},
                                     {"embedder_model", settings.embedder_model}}) {
        for (std::size_t at = 0; at < value.size(); ++at) {
            const auto byte = static_cast<unsigned char>(value[at]);
            if (byte < 0x20 || byte == 0x7f) {
                char found[8];
                std::snprintf(found, sizeof(found), "0x%02x", byte);
                return invalid_argument(std::string(key) + " holds the control byte " + found +
                                        " at offset " + std::to_string(at) +
                                        ", expected printable text");
            }
        }
    }
    // Only the model says how wide its vectors are; every other embedder is told.
    const bool embedder_width =
        settings.dimension == kEmbedderDimension && settings.embedder == "model";
    if ((settings.dimension == 0 && !embedder_width) || settings.dimension > 65536) {
        return invalid_argument("dimension " + std::to_string(settings.dimension) +
                                ", expected 1 to 65536 (or none, for embedder model)");
    }
    if (settings.embedder == "lexical-hash" && settings.dimension < 16) {
        return invalid_argument("lexical-hash dimension " + std::to_string(settings.dimension) +
                                ", expected at least 16");
    }
    // The vector index is built from the factory string at every open, so a string FAISS
    // accepts but crashes on must never be stored: build one now, empty, and keep it only for
    // its verdict. The model's own width is known only once Index::create asks the model, which
    // checks again then.
    if (settings.dimension == kEmbedderDimension) {
        SLUICE_RETURN_IF_ERROR(validate_vector_factory(settings.factory, 0));
    } else if (auto built = VectorIndex::create(vector_options(settings)); !built.ok()) {
        return built.status();
    }
    if (settings.bm25.k1 < 0 || settings.bm25.b < 0 || settings.bm25.b > 1) {
        return invalid_argument("bm25 k1 must be >= 0 and b in [0, 1]");
    }
    if (settings.vector_weight) {
        if (!(*settings.vector_weight >= 0.0 && *settings.vector_weight <= 1.0)) {
            return invalid_argument("vector_weight must be from 0 to 1");
        }
        if (hybrid_fusion(settings).method != FusionMethod::kWeighted) {
            return invalid_argument("vector_weight applies to weighted fusion only");
        }
    }
    auto analyzer = TextAnalyzer::create(settings.language);
    return analyzer.ok() ? Status::ok_status() : analyzer.status();
}

std::string encode_settings(const IndexSettings& s) {
    std::ostringstream out;
    out << "name=" << s.name << "\n"
        << "language=" << s.language << "\n"
        << "chunking=" << (s.chunking ? 1 : 0) << "\n"
        << "chunk.max_tokens=" << s.chunk.max_tokens << "\n"
        << "chunk.overlap_tokens=" << s.chunk.overlap_tokens << "\n"
        << "embedder=" << s.embedder << "\n"
        << "embedder.endpoint=" << s.embedder_endpoint << "\n"
        << "embedder.model=" << s.embedder_model << "\n"
        << "dimension=" << s.dimension << "\n"
        << "factory=" << s.factory << "\n"
        << "metric=" << metric_name(s.metric) << "\n"
        << "bm25.k1=" << s.bm25.k1 << "\n"
        << "bm25.b=" << s.bm25.b << "\n";
    // Written only when chosen, so that an index without them stays readable by releases
    // that predate them.
    if (s.fusion) {
        out << "fusion=" << fusion_method_name(*s.fusion) << "\n";
    }
    if (s.vector_weight) {
        out << "vector_weight=" << std::setprecision(17) << *s.vector_weight << "\n";
    }
    return out.str();
}

Result<IndexSettings> decode_settings(const std::string& text) {
    IndexSettings s;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (line.empty()) {
            continue;
        }
        auto eq = line.find('=');
        if (eq == std::string::npos) {
            return data_loss("index settings line '" + line + "' has no '='");
        }
        std::string key = line.substr(0, eq);
        std::string value = line.substr(eq + 1);
        if (key == "name") {
            s.name = value;
        } else if (key == "language") {
            s.language = value;
        } else if (key == "embedder") {
            s.embedder = value;
        } else if (key == "embedder.endpoint") {
            s.embedder_endpoint = value;
        } else if (key == "embedder.model") {
            s.embedder_model = value;
        } else if (key == "factory") {
            s.factory = value;
        } else if (key == "fusion") {
            auto fusion = parse_fusion_method(value);
            if (!fusion) {
                return data_loss("index setting fusion: " + fusion.status().message());
            }
            s.fusion = *fusion;
        } else if (key == "metric") {
            auto metric = parse_metric(value);
            if (!metric) {
                return data_loss("index setting metric: " + metric.status().message());
            }
            s.metric = *metric;
        } else {
            SLUICE_ASSIGN_OR_RETURN(double number, parse_number(key, value));
            if (key == "chunking") {
                s.chunking = number != 0;
            } else if (key == "chunk.max_tokens") {
                s.chunk.max_tokens = static_cast<std::size_t>(number);
            } else if (key == "chunk.overlap_tokens") {
                s.chunk.overlap_tokens = static_cast<std::size_t>(number);
            } else if (key == "dimension") {
                s.dimension = static_cast<std::size_t>(number);
            } else if (key == "bm25.k1") {
                s.bm25.k1 = number;
            } else if (key == "bm25.b") {
                s.bm25.b = number;
            } else if (key == "vector_weight") {
                s.vector_weight = number;
            } else {
                return data_loss("unknown index setting '" + key + "'");
            }
        }
    }
    return s;
}

FusionChoice hybrid_fusion(const IndexSettings& settings) {
    FusionChoice choice;
    const bool lexical_hash = settings.embedder == "lexical-hash";
    // A weight alone asks for weighted fusion, as it does in a query.
    choice.method = settings.fusion.value_or(
        lexical_hash || settings.vector_weight ? FusionMethod::kWeighted : FusionMethod::kRrf);
    choice.vector_weight =
        settings.vector_weight.value_or(lexical_hash ? 0.2 : kDefaultVectorWeight);
    return choice;
}

VectorIndexOptions vector_options(const IndexSettings& settings) {
    VectorIndexOptions options;
    options.factory = settings.factory;
    options.metric = settings.metric;
    options.dimension = settings.dimension;
    return options;
}

}  // namespace sluice::retrieval
