// The configured model for commands without the server: a "model" index opens with the
// checkpoint's width and loads the weights at its first embedding only; it embeds under the
// server's cache keys, so the server's path finds what was embedded offline; a model that cannot
// load is an error naming the index and the folder, remembered rather than retried.
#include "app/offline_model.h"

#include <doctest/doctest.h>

#include <filesystem>

#include "app/engine_embedder.h"
#include "app/index_deps.h"
#include "inference/model_config.h"
#include "retrieval/index.h"
#include "tiny_model_folder.h"

using namespace sluice;
using namespace sluice::app;

namespace {

retrieval::Document doc(const std::string& key, const std::string& text) {
    retrieval::Document d;
    d.key = key;
    d.uri = "mem://" + key;
    d.text = text;
    d.acl = retrieval::Acl{{}, {"staff"}};
    return d;
}

// How messages name a folder. Appended piece by piece: GCC 12 warns (-Wrestrict, wrongly)
// on "'" + path + "'".
std::string quoted(const std::filesystem::path& path) {
    std::string out = "'";
    out += path.string();
    out += '\'';
    return out;
}

retrieval::IndexSettings settings_of(const std::string& name, const std::string& embedder) {
    retrieval::IndexSettings settings;
    settings.name = name;
    settings.embedder = embedder;
    if (embedder == "model") {
        settings.dimension = retrieval::kEmbedderDimension;
    }
    return settings;
}

}  // namespace

TEST_CASE("offline model: loaded at a model index's first embedding, under the server's keys") {
    testing::TinyModelFolder folder("sluice-offline-model");
    ModelSettings model;
    model.path = folder.model_dir();
    auto offline = std::make_shared<OfflineModel>(model);
    const retrieval::IndexDeps deps = offline_index_deps(offline);

    // An index of another embedder, and opening a model index, need no weights.
    auto lexical = retrieval::Index::create(folder.path / "lexical",
                                            settings_of("lexical", "lexical-hash"), deps);
    REQUIRE_MESSAGE(lexical.ok(), lexical.status().to_string());
    REQUIRE((*lexical)->upsert({doc("a", "Rivers run to the sea.")}).ok());
    auto created = retrieval::Index::create(folder.path / "notes", settings_of("notes", "model"),
                                            deps);
    REQUIRE_MESSAGE(created.ok(), created.status().to_string());
    auto config = inference::load_model_config(model.path);
    REQUIRE(config.ok());
    CHECK((*created)->settings().dimension == static_cast<std::size_t>(config->d_model));
    CHECK_FALSE(offline->load_tried());

    auto upserted = (*created)->upsert(
        {doc("rivers", "Rivers run to the sea."), doc("deserts", "Deserts are dry and wide.")});
    REQUIRE_MESSAGE(upserted.ok(), upserted.status().to_string());
    CHECK(upserted->embedded == 2);
    CHECK(offline->load_tried());
    auto chunks = (*created)->chunks_of("rivers");
    REQUIRE(chunks.ok());
    REQUIRE(chunks->size() == 1);
    CHECK(chunks->front().vector_source == "model:" + model_id_for(model));
    created->reset();

    // The server's path (its own engine, lent through a slot) finds those vectors in the cache.
    ModelHost host(model, nullptr);
    REQUIRE(host.load().ok());
    auto slot = std::make_shared<EngineSlot>();
    EngineSlot::Lending lending(*slot, [&host]() -> Result<std::shared_ptr<inference::Engine>> {
        return host.engine();
    });
    auto served = retrieval::Index::open(folder.path / "notes", server_index_deps(slot, model));
    REQUIRE_MESSAGE(served.ok(), served.status().to_string());
    CHECK((*served)->stats().vectors == 2);
    auto again = (*served)->upsert({doc("copy", "Rivers run to the sea.")});
    REQUIRE_MESSAGE(again.ok(), again.status().to_string());
    CHECK(again->embedded == 0);
    CHECK(again->embedding_cache_hits == 1);
    retrieval::Query query;
    query.text = "Deserts are dry and wide.";
    query.mode = retrieval::QueryMode::kAnn;
    query.k = 1;
    auto hits = (*served)->query(query, retrieval::Reader{"u", {"staff"}});
    REQUIRE_MESSAGE(hits.ok(), hits.status().to_string());
    REQUIRE(hits->size() == 1);
    CHECK(hits->front().chunk.doc_key == "deserts");
}

TEST_CASE("offline model: a model that cannot load names the index and the folder, once") {
    testing::TinyModelFolder folder("sluice-offline-model-broken");
    // The config without the weights: the width is known, the model never loads.
    const auto weightless = folder.path / "weightless";
    std::filesystem::create_directories(weightless);
    std::filesystem::copy_file(std::filesystem::path(folder.model_dir()) / "config.json",
                               weightless / "config.json");
    ModelSettings model;
    model.path = weightless.string();
    auto offline = std::make_shared<OfflineModel>(model);
    const retrieval::IndexDeps deps = offline_index_deps(offline);
    auto index = retrieval::Index::create(folder.path / "kb", settings_of("kb", "model"), deps);
    REQUIRE_MESSAGE(index.ok(), index.status().to_string());

    auto first = (*index)->upsert({doc("a", "Rivers run to the sea.")});
    REQUIRE_FALSE(first.ok());
    CHECK(first.status().code() == StatusCode::kFailedPrecondition);
    const std::string& message = first.status().message();
    CHECK(message.find("index 'kb'") != std::string::npos);
    CHECK(message.find(quoted(weightless)) != std::string::npos);
    // The failure is kept: weights that appear later are not read by this command (a sync
    // does not load a large model again for every batch).
    for (const auto& entry : std::filesystem::directory_iterator(folder.model_dir())) {
        std::filesystem::copy(entry.path(), weightless / entry.path().filename(),
                              std::filesystem::copy_options::overwrite_existing);
    }
    auto host = offline->host();
    REQUIRE_FALSE(host.ok());
    CHECK(message.ends_with(host.status().message()));
    auto second = (*index)->upsert({doc("b", "Deserts are dry and wide.")});
    CHECK(second.status() == first.status());

    // Without a readable config.json there is no width to give a new index: refused by name.
    ModelSettings missing;
    missing.path = (folder.path / "no-such-model").string();
    auto nowhere = retrieval::Index::create(
        folder.path / "later", settings_of("later", "model"),
        offline_index_deps(std::make_shared<OfflineModel>(missing)));
    CHECK(nowhere.status().code() == StatusCode::kFailedPrecondition);
    CHECK(nowhere.status().message().find("index 'later'") != std::string::npos);
}
