// The "model" index embedder on the real engine with the random tiny model: its vectors mean
// nothing, but they are the engine's, deterministic per text, of the model's width, and an index
// built on them finds a document by its own text. The slot through which the server lends its
// engine says why there is none and keeps the engine from stopping under an embedding.
#include "app/engine_embedder.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <thread>

#include "app/model_host.h"
#include "retrieval/index.h"
#include "tiny_model_folder.h"

using namespace sluice;
using namespace sluice::app;

namespace {

std::unique_ptr<ModelHost> tiny_host(const testing::TinyModelFolder& folder) {
    ModelSettings settings;
    settings.path = folder.model_dir();
    settings.max_queued_requests = 64;
    auto host = std::make_unique<ModelHost>(settings, nullptr);
    REQUIRE(host->load().ok());
    return host;
}

retrieval::Document doc(const std::string& key, const std::string& text) {
    retrieval::Document d;
    d.key = key;
    d.uri = "mem://" + key;
    d.text = text;
    d.acl = retrieval::Acl{{}, {"staff"}};
    return d;
}

}  // namespace

TEST_CASE("the model embedder: the engine's vectors in an index, found by their own text") {
    testing::TinyModelFolder folder("sluice-engine-embedder");
    auto host = tiny_host(folder);
    auto engine = host->engine();
    const auto width = static_cast<std::size_t>(engine->model_config().d_model);

    EngineEmbeddingModel model(engine, host->model_id(), 16);
    CHECK(model.dimension() == width);
    auto twice = model.embed({"rivers run to the sea", "rivers run to the sea", "dry desert"});
    REQUIRE_MESSAGE(twice.ok(), twice.status().to_string());
    REQUIRE(twice->size() == 3);
    CHECK((*twice)[0].size() == width);
    // The same text twice agrees to float rounding: whether the two prompts share a prefill
    // step depends on timing, and the sums then run in another order (seen: 1.2e-6).
    double max_diff = 0;
    double distinct = 0;
    for (std::size_t i = 0; i < width; ++i) {
        max_diff =
            std::max(max_diff, std::abs(static_cast<double>((*twice)[0][i]) - (*twice)[1][i]));
        distinct =
            std::max(distinct, std::abs(static_cast<double>((*twice)[0][i]) - (*twice)[2][i]));
    }
    CHECK(max_diff < 1e-4);
    CHECK(distinct > 1e-2);

    retrieval::IndexSettings settings;
    settings.name = "by-model";
    settings.embedder = "model";
    settings.dimension = width;
    retrieval::IndexDeps deps;
    deps.embedders = embedder_factory_with_model(engine, host->model_id(), 16);
    auto index = retrieval::Index::create(folder.path / "index", settings, deps);
    REQUIRE_MESSAGE(index.ok(), index.status().to_string());
    auto upserted = (*index)->upsert({doc("a", "Rivers run to the sea."),
                                      doc("b", "Mountains stand still in the cold."),
                                      doc("c", "Deserts are dry and wide.")});
    REQUIRE_MESSAGE(upserted.ok(), upserted.status().to_string());
    CHECK(upserted->embedded == 3);
    retrieval::Query query;
    query.text = "Mountains stand still in the cold.";
    query.mode = retrieval::QueryMode::kAnn;
    query.k = 1;
    auto hits = (*index)->query(query, retrieval::Reader{"u", {"staff"}});
    REQUIRE_MESSAGE(hits.ok(), hits.status().to_string());
    REQUIRE(hits->size() == 1);
    CHECK(hits->front().chunk.doc_key == "b");
    CHECK(hits->front().chunk.vector_source == "model:" + host->model_id());

    // An index whose dimension is not the model's is refused when it opens.
    settings.name = "wrong-width";
    settings.dimension = width + 1;
    auto wrong = retrieval::Index::create(folder.path / "wrong", settings, deps);
    CHECK(wrong.status().code() == StatusCode::kFailedPrecondition);
}

TEST_CASE("the engine slot: why there is no engine, and close() waits for the uses in flight") {
    auto slot = std::make_shared<EngineSlot>();
    const EngineEmbeddingModel model(slot, "tiny", 64, 16, "index 'docs'");
    auto before = model.embed({"a"});
    CHECK(before.status().code() == StatusCode::kUnavailable);
    CHECK(before.status().message() ==
          "index 'docs': embedder 'model' (tiny): no model is served here yet");

    slot->open([]() -> Result<std::shared_ptr<inference::Engine>> {
        return unavailable("model tiny is loading from /models/tiny");
    });
    auto loading = model.embed({"a"});
    CHECK(loading.status().code() == StatusCode::kUnavailable);
    CHECK(loading.status().message() ==
          "index 'docs': embedder 'model' (tiny): model tiny is loading from /models/tiny");

    testing::TinyModelFolder folder("sluice-engine-slot");
    auto host = tiny_host(folder);
    std::shared_ptr<inference::Engine> engine = host->engine();
    slot->open([engine]() -> Result<std::shared_ptr<inference::Engine>> { return engine; });
    auto vectors = model.embed({"rivers run to the sea"});
    REQUIRE_MESSAGE(vectors.ok(), vectors.status().to_string());
    CHECK(vectors->front().size() == static_cast<std::size_t>(engine->model_config().d_model));

    // A use in flight holds close() until it ends; the engine it held is released by then.
    std::atomic<bool> closed{false};
    {
        auto use = slot->acquire();
        REQUIRE(use.ok());
        std::thread closer([&] {
            slot->close();
            closed = true;
        });
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        CHECK_FALSE(closed.load());
        { auto ended = std::move(*use); }
        closer.join();
    }
    CHECK(closed.load());
    engine.reset();
    CHECK(slot->acquire().status().message() == "the server is stopping");
    CHECK_FALSE(slot->back_off(std::chrono::milliseconds(10)));
    CHECK(model.embed({"a"}).status().message() ==
          "index 'docs': embedder 'model' (tiny): the server is stopping");
}

TEST_CASE("the model embedder waits out a full engine queue instead of failing") {
    testing::TinyModelFolder folder("sluice-engine-queue");
    ModelSettings settings;
    settings.path = folder.model_dir();
    settings.max_running = 1;
    settings.max_queued_requests = 1;
    ModelHost host(settings, nullptr);
    REQUIRE(host.load().ok());
    std::shared_ptr<inference::Engine> engine = host.engine();

    // One long generation runs (no stop token, thousands of steps), a second one waits: the
    // queue of one is full.
    inference::EngineRequest long_one;
    long_one.prompt = {9906, 1917};
    long_one.max_tokens = 4000;
    auto running = engine->submit(long_one);
    REQUIRE_MESSAGE(running.ok(), running.status().to_string());
    for (int i = 0; i < 2000 && engine->stats().scheduler.running == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    REQUIRE(engine->stats().scheduler.running == 1);
    auto waiting = engine->submit(long_one);
    REQUIRE_MESSAGE(waiting.ok(), waiting.status().to_string());

    const EngineEmbeddingModel model(engine, host.model_id(), 1);
    Result<std::vector<retrieval::Vector>> embedded = unavailable("not run");
    std::thread embedder([&] { embedded = model.embed({"rivers run to the sea"}); });
    // Once the embedding has been refused for the full queue, the queue is freed.
    for (int i = 0; i < 2000 && engine->stats().requests_rejected == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    CHECK(engine->stats().requests_rejected >= 1);
    waiting->cancel();
    running->cancel();
    embedder.join();
    REQUIRE_MESSAGE(embedded.ok(), embedded.status().to_string());
    CHECK(embedded->front().size() == static_cast<std::size_t>(engine->model_config().d_model));
}
