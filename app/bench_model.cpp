#include "app/bench_model.h"

#include <random>
#include <system_error>

#include "app/tokenize_command.h"
#include "inference/hf_tokenizer.h"
#include "inference/tiny_model.h"

namespace sluice::app {

BenchScratch::BenchScratch(const std::string& name)
    : path_(std::filesystem::temp_directory_path() /
            ("sluice-bench-" + name + "-" + std::to_string(std::random_device{}()))) {
    std::filesystem::create_directories(path_);
}

BenchScratch::~BenchScratch() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

Result<BenchModel> open_bench_model(const BenchModelOptions& options,
                                    const std::filesystem::path& scratch) {
    std::string model_dir = options.model_dir;
    if (model_dir.empty()) {
        // The tiny preset, as `sluice model init-tiny` writes it.
        model_dir = (scratch / "tiny").string();
        SLUICE_ASSIGN_OR_RETURN(auto tokenizer, open_cli_tokenizer({}));
        inference::TinyModelOptions tiny{.preset = inference::TinyPreset::kTiny};
        tiny.write_tokenizer = [&](const std::string& out) {
            return inference::write_hf_tokenizer_files(*tokenizer, out);
        };
        SLUICE_RETURN_IF_ERROR(inference::write_tiny_model(model_dir, tiny).status());
    }
    ModelSettings settings;
    settings.path = model_dir;
    settings.max_running = options.max_running;
    settings.max_queued_requests = options.max_queued;
    BenchModel model;
    model.host = std::make_unique<ModelHost>(settings, nullptr);
    SLUICE_RETURN_IF_ERROR(model.host->load());
    SLUICE_ASSIGN_OR_RETURN(auto chat,
                            agents::EngineChatModel::make(model.host->engine(),
                                                          model.host->chat_template(),
                                                          model.host->model_id()));
    model.chat = std::move(chat);
    return model;
}

}  // namespace sluice::app
