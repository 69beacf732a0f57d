#include "app/http_embedder.h"

#include <httplib.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

namespace sluice::app {

HttpEmbedder::HttpEmbedder(std::string endpoint, std::string model, std::size_t dimension)
    : endpoint_(std::move(endpoint)), model_(std::move(model)), dimension_(dimension) {
    while (!endpoint_.empty() && endpoint_.back() == '/') {
        endpoint_.pop_back();
    }
}

std::string HttpEmbedder::id() const {
    return "http:" + endpoint_ + "|" + model_ + ":" + std::to_string(dimension_);
}

Result<std::vector<retrieval::Vector>> HttpEmbedder::embed(
    const std::vector<std::string>& texts) const {
    httplib::Client client(endpoint_);
    client.set_connection_timeout(5);
    client.set_read_timeout(60);
    nlohmann::json request = {{"model", model_}, {"input", texts}};
    auto response = client.Post("/v1/embeddings", request.dump(), "application/json");
    if (!response) {
        return unavailable("embeddings server " + endpoint_ + " cannot be reached: " +
                           httplib::to_string(response.error()));
    }
    if (response->status < 200 || response->status >= 300) {
        return unavailable("embeddings server " + endpoint_ + " answered " +
                           std::to_string(response->status) + ": " +
                           response->body.substr(0, 200));
    }
    auto body = nlohmann::json::parse(response->body, nullptr, false);
    if (body.is_discarded() || !body.contains("data") || !body["data"].is_array() ||
        body["data"].size() != texts.size()) {
        return data_loss("embeddings server " + endpoint_ + ": expected data[] with " +
                         std::to_string(texts.size()) + " embeddings");
    }
    std::vector<retrieval::Vector> out(texts.size());
    for (std::size_t i = 0; i < body["data"].size(); ++i) {
        const auto& item = body["data"][i];
        // "index" names the input an embedding belongs to; without it, the position does.
        // Checked before reading, as json::value would throw on a non-integer.
        std::size_t slot = i;
        if (item.is_object() && item.contains("index")) {
            if (!item["index"].is_number_integer()) {
                return data_loss("embeddings server " + endpoint_ + ": data[" +
                                 std::to_string(i) + "].index is not an integer");
            }
            auto index = item["index"].get<long long>();
            slot = index < 0 ? out.size() : static_cast<std::size_t>(index);
        }
        if (!item.is_object() || slot >= out.size() || !item.contains("embedding") ||
            !item["embedding"].is_array()) {
            return data_loss("embeddings server " + endpoint_ + ": malformed data[" +
                             std::to_string(i) + "]");
        }
        auto& vector = out[slot];
        if (!vector.empty()) {
            return data_loss("embeddings server " + endpoint_ + ": two embeddings for input " +
                             std::to_string(slot));
        }
        for (const auto& x : item["embedding"]) {
            if (!x.is_number()) {
                return data_loss("embeddings server " + endpoint_ + ": non-numeric embedding");
            }
            // As a float, 1e39 is infinity, which normalising turns into NaN: every score with
            // the vector would be NaN.
            if (!(std::fabs(x.get<double>()) <= std::numeric_limits<float>::max())) {
                return data_loss("embeddings server " + endpoint_ + ": data[" + std::to_string(i) +
                                 "] holds " + x.dump() + ", beyond a float's range");
            }
            vector.push_back(static_cast<float>(x.get<double>()));
        }
        if (vector.size() != dimension_) {
            return data_loss("embeddings server " + endpoint_ + " returned " +
                             std::to_string(vector.size()) + " dimensions, expected " +
                             std::to_string(dimension_));
        }
        retrieval::l2_normalize(vector);
    }
    return out;
}

retrieval::EmbedderFactory server_embedder_factory() {
    return [](const retrieval::IndexSettings& settings)
               -> Result<std::shared_ptr<const retrieval::Embedder>> {
        if (settings.embedder == "http") {
            return std::shared_ptr<const retrieval::Embedder>(std::make_shared<HttpEmbedder>(
                settings.embedder_endpoint, settings.embedder_model, settings.dimension));
        }
        if (settings.embedder == "model") {
            return not_supported("embedder 'model' needs a loaded model with embeddings; none "
                                 "is loaded in this process");
        }
        return retrieval::default_embedder_factory(settings);
    };
}

}  // namespace sluice::app
