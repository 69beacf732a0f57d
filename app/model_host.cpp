#include "app/model_host.h"

#include <chrono>
#include <filesystem>
#include <sstream>

#include "common/log.h"
#include "inference/backend_factory.h"
#include "inference/hf_tokenizer.h"

namespace sluice::app {
namespace {

inference::WeightFormat weight_format(const std::string& name) {
    if (name == "f32") {
        return inference::WeightFormat::kF32;
    }
    if (name == "bf16") {
        return inference::WeightFormat::kBF16;
    }
    if (name == "int8") {
        return inference::WeightFormat::kInt8;
    }
    if (name == "fp8") {
        return inference::WeightFormat::kF8E4M3;
    }
    if (name == "int4") {
        return inference::WeightFormat::kInt4;
    }
    return inference::WeightFormat::kAsStored;  // "auto"; the config allows nothing else
}

inference::ChatTemplateOptions template_options(const ModelSettings& settings) {
    inference::ChatTemplateOptions options;
    if (!settings.system_prompt.empty()) {
        options.default_system_prompt = settings.system_prompt;
    }
    return options;
}

// Positions per KV block: 16 balances paging waste against block-table length (vLLM's default).
constexpr int32_t kBlockSize = 16;
// Distinct schemas and tool lists kept compiled. Each holds 0.2-45 MB of masks (docs/grammar.md),
// so the bound is small; clients usually reuse a handful of schemas.
constexpr size_t kGrammarCacheEntries = 32;

}  // namespace

std::string model_id_for(const ModelSettings& settings) {
    if (!settings.name.empty()) {
        return settings.name;
    }
    std::filesystem::path path = std::filesystem::path(settings.path).lexically_normal();
    std::string name = path.filename().string();
    if (name.empty()) {
        name = path.parent_path().filename().string();
    }
    return name.empty() || name == "." ? "dbrx" : name;
}

inference::BackendOptions backend_options_for(const ModelSettings& settings) {
    return {inference::parse_backend_kind(settings.backend).value_or(inference::BackendKind::kAuto),
            weight_format(settings.weights),
            settings.threads,
            settings.max_batch_tokens,
            settings.max_running,
            settings.parallel,
            settings.cuda_graphs};
}

ModelHost::ModelHost(ModelSettings settings, Readiness* readiness, FollowerOpener open_follower)
    : settings_(std::move(settings)),
      readiness_(readiness),
      model_id_(model_id_for(settings_)),
      template_(template_options(settings_)) {
    if (readiness_ != nullptr) {
        readiness_->set("model", false, "model not loaded yet");
    }
    if (is_follower_node(settings_)) {
        follower_ = std::make_unique<FollowerNode>(settings_, readiness_, std::move(open_follower));
    }
}

ModelHost::~ModelHost() {
    if (loader_.joinable()) {
        loader_.join();
    }
}

void ModelHost::start_loading() {
    loader_ = std::jthread([this] { (void)load(); });
}

Result<std::shared_ptr<inference::Engine>> ModelHost::open_engine() const {
    const std::filesystem::path dir(settings_.path);
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) {
        return not_found("model folder '" + settings_.path +
                         "' does not exist; create one with `sluice model init-tiny --out " +
                         settings_.path + "` or point /model/path at a DBRX checkpoint");
    }
    SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<inference::Tokenizer> tokenizer,
                            inference::open_hf_tokenizer(dir));
    SLUICE_ASSIGN_OR_RETURN(
        std::unique_ptr<inference::Backend> backend,
        inference::open_backend(settings_.path, backend_options_for(settings_)));
    log::info("model", "backend opened", {{"backend", backend->name()}, {"path", settings_.path}});
    const int64_t block_bytes = backend->config().kv_bytes_per_token(4) * kBlockSize;
    int64_t n_blocks = settings_.kv_cache_blocks > 0 ? settings_.kv_cache_blocks
                                                     : settings_.kv_cache_bytes / block_bytes;
    if (n_blocks < 1) {
        return invalid_argument("/model/kv_cache_bytes: " +
                                std::to_string(settings_.kv_cache_bytes) +
                                " bytes hold no KV block of " + std::to_string(block_bytes) +
                                " bytes");
    }
    inference::EngineOptions options;
    options.kv_cache = {kBlockSize, static_cast<int32_t>(std::min<int64_t>(n_blocks, 1 << 24))};
    options.scheduler.max_batch_tokens = settings_.max_batch_tokens;
    options.scheduler.max_running = settings_.max_running;
    options.scheduler.prefix_caching = settings_.prefix_caching;
    options.scheduler.overlap_output = settings_.overlap_output;
    options.scheduler.host_sampling_threads = settings_.host_sampling_threads;
    options.max_queued = settings_.max_queued_requests;
    // A backend that stops for good (a failed rank of a parallel engine) turns /readyz red with
    // its reason; requests already get the engine's error.
    Readiness* readiness = readiness_;
    options.on_failure = [readiness](const Status& why) {
        if (readiness != nullptr) {
            readiness->set("model", false, why.message());
        }
    };
    SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<inference::Engine> engine,
                            inference::Engine::open(std::move(backend), std::move(tokenizer),
                                                    options));
    return std::shared_ptr<inference::Engine>(std::move(engine));
}

Status ModelHost::load() {
    if (follower_ != nullptr) {
        return follower_->start();
    }
    if (readiness_ != nullptr) {
        readiness_->set("model", false, "loading " + settings_.path);
    }
    {
        std::lock_guard lock(mutex_);
        reason_ = "model " + model_id_ + " is loading from " + settings_.path;
    }
    Result<std::shared_ptr<inference::Engine>> engine = open_engine();
    // The vocabulary trie (about 40 ms for 100k tokens) is built once, before serving.
    std::shared_ptr<GrammarCache> grammars;
    if (engine.ok() && (*engine)->tokenizer() != nullptr) {
        grammars = std::make_shared<GrammarCache>(*(*engine)->tokenizer(), kGrammarCacheEntries);
    }
    std::lock_guard lock(mutex_);
    if (!engine.ok()) {
        reason_ = "model " + model_id_ + " is not loaded: " + engine.status().message();
        log::error("model", "cannot load the model",
                   {{"path", settings_.path}, {"error", engine.status().message()}});
        if (readiness_ != nullptr) {
            readiness_->set("model", false, reason_);
        }
        return engine.status();
    }
    engine_ = std::move(*engine);
    grammars_ = std::move(grammars);
    loaded_at_ = std::chrono::duration_cast<std::chrono::seconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
    const inference::ModelConfig& config = engine_->model_config();
    const int32_t blocks = engine_->kv_cache_spec().n_blocks;
    log::info("model", "model loaded",
              {{"model", model_id_},
               {"path", settings_.path},
               {"params", config.n_params_total()},
               {"kv_blocks", blocks},
               {"kv_positions", static_cast<int64_t>(blocks) * kBlockSize}});
    if (readiness_ != nullptr) {
        readiness_->set("model", true,
                        "model " + model_id_ + " loaded from " + settings_.path + " (" +
                            std::to_string(blocks) + " KV blocks of " +
                            std::to_string(kBlockSize) + " positions)");
    }
    return Status::ok_status();
}

int64_t ModelHost::loaded_at() const {
    std::lock_guard lock(mutex_);
    return loaded_at_;
}

std::shared_ptr<inference::Engine> ModelHost::engine() const {
    std::lock_guard lock(mutex_);
    return engine_;
}

std::shared_ptr<GrammarCache> ModelHost::grammars() const {
    std::lock_guard lock(mutex_);
    return grammars_;
}

Status ModelHost::unavailable() const {
    if (follower_ != nullptr) {
        return sluice::unavailable(follower_->unavailable_reason());
    }
    std::lock_guard lock(mutex_);
    return sluice::unavailable(reason_);
}

std::string ModelHost::metrics_text() const {
    std::shared_ptr<inference::Engine> engine = this->engine();
    std::ostringstream out;
    auto metric = [&](const char* name, const char* type, const char* help, auto value) {
        out << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n"
            << name << " " << value << "\n";
    };
    metric("sluice_model_loaded", "gauge", "1 when the model is loaded and serving.",
           engine ? 1 : 0);
    if (follower_ != nullptr) {
        metric("sluice_follower_following", "gauge", "1 while this node follows node 0's steps.",
               follower_->following() ? 1 : 0);
        metric("sluice_follower_calls_total", "counter", "Calls of node 0 this node has run.",
               follower_->calls());
    }
    if (!engine) {
        return out.str();
    }
    const inference::EngineStats stats = engine->stats();
    const inference::SchedulerStats& s = stats.scheduler;
    metric("sluice_kv_blocks_total", "gauge", "KV-cache blocks.", s.blocks.n_blocks);
    metric("sluice_kv_blocks_in_use", "gauge", "KV-cache blocks referenced by sequences.",
           s.blocks.n_in_use);
    metric("sluice_kv_blocks_cached", "gauge", "KV-cache blocks in the prefix cache.",
           s.blocks.n_cached);
    metric("sluice_kv_blocks_free", "gauge", "KV-cache blocks on the free list.",
           s.blocks.n_free);
    metric("sluice_engine_sequences_running", "gauge", "Sequences in the running batch.",
           s.running);
    metric("sluice_engine_requests_queued", "gauge", "Requests waiting for admission.",
           stats.queued);
    metric("sluice_engine_requests_submitted_total", "counter", "Requests accepted.",
           stats.requests_submitted);
    metric("sluice_engine_requests_rejected_total", "counter",
           "Requests refused because the queue was full.", stats.requests_rejected);
    metric("sluice_engine_preemptions_total", "counter",
           "Sequences preempted for KV-cache space.", s.preemptions);
    metric("sluice_engine_steps_total", "counter", "Forward steps run.", s.steps);
    metric("sluice_engine_prompt_tokens_total", "counter", "Prompt tokens computed.",
           s.prompt_tokens);
    metric("sluice_engine_cached_prompt_tokens_total", "counter",
           "Prompt tokens served from the prefix cache.", s.cached_prompt_tokens);
    metric("sluice_engine_generated_tokens_total", "counter", "Tokens generated.",
           s.generated_tokens);
    metric("sluice_engine_decode_only_steps_total", "counter",
           "Forward steps that only decoded (one new token per sequence).", s.decode_only_steps);
    metric("sluice_engine_mixed_steps_total", "counter",
           "Forward steps that also computed prompt chunks.", s.mixed_steps);
    metric("sluice_engine_decode_rows_total", "counter",
           "Decode rows computed (sequences taking one new token in a step).", s.decode_rows);
    metric("sluice_engine_decode_only_step_seconds_total", "counter",
           "Seconds in the forward pass of decode-only steps.", s.decode_only_seconds);
    metric("sluice_engine_mixed_step_seconds_total", "counter",
           "Seconds in the forward pass of steps with prompt chunks.", s.mixed_seconds);
    metric("sluice_engine_longest_step_seconds", "gauge",
           "The longest forward pass so far, in seconds.", s.longest_step_seconds);
    metric("sluice_engine_host_step_seconds_total", "counter",
           "Seconds of steps outside the forward pass (planning, sampling, output).",
           s.host_seconds);
    metric("sluice_engine_overlapped_outputs_total", "counter",
           "Tokens whose text was released while a later forward pass ran.", s.overlapped_outputs);
    return out.str();
}

}  // namespace sluice::app
