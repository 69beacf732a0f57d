#pragma once
// ModelHost: the model `sluice serve` serves. It loads the configured checkpoint (weights,
// tokenizer.json, KV cache) into an inference::Engine and reports progress as the readiness check
// "model". Loading runs on its own thread so that the server listens, and /readyz explains,
// while a large checkpoint loads; a missing or broken checkpoint leaves the server up with
// /readyz saying why and the model routes answering 503.
//
// Thread safety: thread-safe. engine() hands out a shared pointer, so a request that holds one
// keeps the engine alive past a concurrent shutdown.

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "app/config.h"
#include "app/follower_node.h"
#include "app/readiness.h"
#include "app/structured_output.h"
#include "common/result.h"
#include "inference/backend_factory.h"
#include "inference/chat_template.h"
#include "inference/engine.h"

namespace sluice::app {

class ModelHost {
public:
    // `readiness` (may be null) must outlive the host. On node 1 and up of an engine spanning
    // several nodes (is_follower_node) the host runs no engine: loading joins the group through
    // `open_follower` and follows node 0's steps (follower_node.h), and the model routes answer
    // 503 saying to send requests to node 0.
    ModelHost(ModelSettings settings, Readiness* readiness,
              FollowerOpener open_follower = open_follower_for);
    ~ModelHost();
    ModelHost(const ModelHost&) = delete;
    ModelHost& operator=(const ModelHost&) = delete;

    // Loads on a background thread.
    void start_loading();
    // Loads on the calling thread; the error is also what unavailable() reports afterwards.
    Status load();

    // The engine, or null while not loaded.
    std::shared_ptr<inference::Engine> engine() const;
    // Compiled grammars for structured output over the engine's vocabulary; null while the
    // engine is.
    std::shared_ptr<GrammarCache> grammars() const;
    // kUnavailable saying why there is no engine (loading, or the load error).
    Status unavailable() const;

    const std::string& model_id() const { return model_id_; }
    // Unix seconds at which the engine was loaded (OpenAI's model `created`); 0 before.
    int64_t loaded_at() const;
    const ModelSettings& settings() const { return settings_; }
    const inference::ChatTemplate& chat_template() const { return template_; }

    // Engine metrics in the Prometheus text format (sluice_kv_blocks_in_use, ...).
    std::string metrics_text() const;

private:
    Result<std::shared_ptr<inference::Engine>> open_engine() const;

    ModelSettings settings_;
    Readiness* readiness_;
    std::string model_id_;
    inference::ChatTemplate template_;
    mutable std::mutex mutex_;
    std::shared_ptr<inference::Engine> engine_;  // guarded by mutex_
    std::shared_ptr<GrammarCache> grammars_;     // guarded by mutex_
    std::string reason_ = "model not loaded yet";  // guarded by mutex_
    int64_t loaded_at_ = 0;                        // guarded by mutex_
    std::unique_ptr<FollowerNode> follower_;       // node 1 and up of several; set at construction
    std::jthread loader_;
};

// The engine's backend options as the model settings give them (the engine on node 0 and the
// followers on the other nodes open theirs alike).
inference::BackendOptions backend_options_for(const ModelSettings& settings);

// The model id for a checkpoint folder: its last path component.
std::string model_id_for(const ModelSettings& settings);

}  // namespace sluice::app
