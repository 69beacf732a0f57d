#pragma once
// The model a benchmark drives through the agents' chat interface (`sluice bench eval`, `bench qa`):
// the checkpoint the user names, or the embedded tiny preset written into a scratch folder, served
// by a ModelHost as `sluice serve` would serve it.
//
// Thread safety: BenchModel is owned by the benchmark's thread; its chat model is thread-safe.

#include <filesystem>
#include <memory>
#include <string>

#include "agents/engine_chat_model.h"
#include "app/model_host.h"
#include "common/result.h"

namespace sluice::app {

// A folder under the system's temporary directory, removed with its contents when it goes.
class BenchScratch {
public:
    explicit BenchScratch(const std::string& name);
    ~BenchScratch();
    BenchScratch(const BenchScratch&) = delete;
    BenchScratch& operator=(const BenchScratch&) = delete;

    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

struct BenchModelOptions {
    std::string model_dir;  // a checkpoint; empty: the tiny preset, written under `scratch`
    int max_running = 16;
    int max_queued = 64;
};

struct BenchModel {
    std::unique_ptr<ModelHost> host;
    std::shared_ptr<agents::EngineChatModel> chat;
};

// Loads the model on the calling thread.
Result<BenchModel> open_bench_model(const BenchModelOptions& options,
                                    const std::filesystem::path& scratch);

}  // namespace sluice::app
