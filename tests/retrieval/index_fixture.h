#pragma once
// What the Index tests share: small settings, documents, a reader, and a log capture.

#include <doctest/doctest.h>

#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/log.h"
#include "retrieval/index.h"
#include "temp_dir.h"

namespace sluice::retrieval::testing {

inline IndexSettings small_settings(const std::string& factory = "Flat") {
    IndexSettings settings;
    settings.name = "test";
    settings.dimension = 256;
    settings.factory = factory;
    settings.chunk = ChunkingOptions{64, 8};
    return settings;
}

inline std::unique_ptr<Index> create(const TempDir& dir, const IndexSettings& settings) {
    auto index = Index::create(dir.path() / settings.name, settings, IndexDeps{});
    REQUIRE_MESSAGE(index.ok(), index.status().to_string());
    return std::move(index).value();
}

inline Document doc(const std::string& key, const std::string& text, Acl acl,
                    Metadata metadata = {}) {
    Document d;
    d.key = key;
    d.uri = "mem://" + key;
    d.title = "doc " + key;
    d.text = text;
    d.acl = std::move(acl);
    d.metadata = std::move(metadata);
    return d;
}

inline Acl everyone() { return Acl{{}, {"everyone"}}; }
inline const Reader kUser{"user", {"everyone"}};

inline std::set<std::string> keys_of(const std::vector<Hit>& hits) {
    std::set<std::string> keys;
    for (const auto& hit : hits) {
        keys.insert(hit.chunk.doc_key);
    }
    return keys;
}

inline std::vector<Hit> run(const Index& index, const std::string& text, QueryMode mode,
                            const Reader& reader, std::size_t k = 10, Filter filter = {}) {
    Query query;
    query.text = text;
    query.mode = mode;
    query.k = k;
    query.filter = std::move(filter);
    auto hits = index.query(query, reader);
    REQUIRE_MESSAGE(hits.ok(), hits.status().to_string());
    return *hits;
}

// Captures every log record, at every level, as text.
class CaptureSink final : public sluice::log::Sink {
public:
    void write(const sluice::log::Record& record) override {
        std::lock_guard lock(mutex);
        std::string line = std::string(record.message);
        for (const auto& field : record.fields) {
            line += " " + field.key + "=" + field.value;
        }
        lines.push_back(line);
    }
    std::mutex mutex;
    std::vector<std::string> lines;
};

}  // namespace sluice::retrieval::testing
