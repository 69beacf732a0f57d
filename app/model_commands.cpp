#include "app/model_commands.h"

#include <charconv>
#include <iostream>
#include <map>
#include <memory>

#include <nlohmann/json.hpp>

#include "app/bench_report.h"
#include "inference/cpu_backend.h"
#include "inference/dbrx_layout.h"
#include "inference/generator.h"
#include "inference/model_config.h"
#include "inference/safetensors.h"
#include "inference/tiny_model.h"

namespace sluice::app {

namespace {

using nlohmann::json;

int fail(const std::string& command, const Status& status) {
    std::cerr << "sluice " << command << ": " << status.to_string() << "\n";
    return 1;
}

const std::map<std::string, inference::WeightFormat>& weight_formats() {
    static const std::map<std::string, inference::WeightFormat> formats = {
        {"stored", inference::WeightFormat::kAsStored},
        {"f32", inference::WeightFormat::kF32},
        {"bf16", inference::WeightFormat::kBF16},
        {"int8", inference::WeightFormat::kInt8}};
    return formats;
}

void add_weights_option(CLI::App* command, std::string* weights) {
    command->add_option("--weights", *weights, "Weight format: stored, f32, bf16 or int8")
        ->check(CLI::IsMember({"stored", "f32", "bf16", "int8"}));
}

// Opens the model with a KV cache big enough for `n_positions` positions per sequence.
Result<std::unique_ptr<inference::Backend>> open_model(const std::string& dir,
                                                       const std::string& weights,
                                                       int64_t n_positions, int32_t block_size) {
    SLUICE_ASSIGN_OR_RETURN(auto backend,
                            inference::open_cpu_backend(dir, {weight_formats().at(weights), 0}));
    n_positions = std::min(n_positions, backend->config().max_seq_len);
    const auto n_blocks = static_cast<int32_t>((n_positions + block_size - 1) / block_size);
    SLUICE_RETURN_IF_ERROR(backend->configure_kv_cache({block_size, std::max(n_blocks, 1)}));
    return backend;
}

int run_inspect(const std::string& dir, bool as_json) {
    auto config = inference::load_model_config(dir);
    if (!config.ok()) {
        return fail("model inspect", config.status());
    }
    auto checkpoint = inference::Checkpoint::open(dir);
    if (!checkpoint.ok()) {
        return fail("model inspect", checkpoint.status());
    }
    Status layout = inference::check_dbrx_checkpoint(**checkpoint, *config);
    std::map<std::string, int64_t> bytes_per_dtype;
    json tensors = json::array();
    for (const auto& [name, view] : (*checkpoint)->tensors()) {
        bytes_per_dtype[std::string(inference::dtype_name(view.dtype))] += view.n_bytes;
        tensors.push_back({{"name", name},
                           {"dtype", inference::dtype_name(view.dtype)},
                           {"shape", view.shape}});
    }
    const json out = {
        {"config", inference::model_config_to_json(*config)},
        {"params_total", config->n_params_total()},
        {"params_active", config->n_params_active()},
        {"files", (*checkpoint)->n_files()},
        {"bytes_per_dtype", bytes_per_dtype},
        {"kv_cache_bytes_per_token", {{"f32", config->kv_bytes_per_token(4)},
                                      {"bf16", config->kv_bytes_per_token(2)}}},
        {"layout_check", layout.ok() ? "ok" : layout.message()},
        {"tensors", tensors}};
    if (as_json) {
        std::cout << out.dump() << "\n";
        return layout.ok() ? 0 : 1;
    }
    std::cout << "model         " << dir << "\n"
              << "shape         d_model " << config->d_model << ", " << config->n_layer
              << " layers, " << config->n_head << " heads (" << config->n_head_kv
              << " kv, head_dim " << config->head_dim() << "), vocab " << config->n_vocab << "\n"
              << "experts       " << config->n_expert << " of ffn " << config->n_ff << ", top-"
              << config->n_expert_used << "\n"
              << "parameters    " << config->n_params_total() << " total, "
              << config->n_params_active() << " active per token\n"
              << "kv cache      " << config->kv_bytes_per_token(4) << " bytes/token (f32), "
              << config->kv_bytes_per_token(2) << " (bf16)\n"
              << "files         " << (*checkpoint)->n_files() << "\n";
    for (const auto& [dtype, bytes] : bytes_per_dtype) {
        std::cout << "bytes " << dtype << std::string(8 - std::min<size_t>(dtype.size(), 7), ' ')
                  << bytes << "\n";
    }
    std::cout << "layout        " << (layout.ok() ? "ok" : layout.message()) << "\n";
    for (const auto& tensor : tensors) {
        std::cout << "  " << tensor["name"].get<std::string>() << "  "
                  << tensor["dtype"].get<std::string>() << " "
                  << inference::format_shape(tensor["shape"].get<std::vector<int64_t>>()) << "\n";
    }
    return layout.ok() ? 0 : 1;
}

int run_forward(const std::string& dir, const std::string& ids_text, const std::string& weights) {
    auto ids = parse_id_list(ids_text);
    if (!ids.ok()) {
        return fail("model forward", ids.status());
    }
    auto backend = open_model(dir, weights, static_cast<int64_t>(ids->size()), 16);
    if (!backend.ok()) {
        return fail("model forward", backend.status());
    }
    std::vector<int32_t> blocks(static_cast<size_t>((*backend)->kv_cache_spec().n_blocks));
    for (size_t i = 0; i < blocks.size(); ++i) {
        blocks[i] = static_cast<int32_t>(i);
    }
    inference::ForwardBatch batch;
    batch.sequences.push_back({*ids, 0, blocks, inference::LogitsRows::kAll});
    auto out = (*backend)->forward(batch);
    if (!out.ok()) {
        return fail("model forward", out.status());
    }
    json rows = json::array();
    for (int64_t i = 0; i < out->n_rows[0]; ++i) {
        auto row = out->row(0, i);
        rows.push_back(std::vector<float>(row.begin(), row.end()));
    }
    std::cout << json{{"logits", rows}}.dump() << "\n";
    return 0;
}

int run_init_tiny(const std::string& out_dir, const std::string& preset, uint64_t seed,
                  const std::string& dtype) {
    inference::TinyModelOptions options;
    options.preset = *inference::parse_tiny_preset(preset);
    options.seed = seed;
    options.dtype = dtype == "f32" ? inference::DType::kF32 : inference::DType::kBF16;
    // Tokenizer files come from the tokenizer module's writer, plugged in here once available;
    // until then the folder holds weights only and prompts are given as token ids.
    auto summary = inference::write_tiny_model(out_dir, options);
    if (!summary.ok()) {
        return fail("model init-tiny", summary.status());
    }
    std::cout << "wrote " << out_dir << ": " << preset << " preset, "
              << summary->config.n_params_total() << " parameters ("
              << summary->config.n_params_active() << " active), " << summary->bytes_written
              << " bytes of " << dtype << " weights"
              << (summary->tokenizer_written ? ", tokenizer" : ", no tokenizer files") << "\n";
    return 0;
}

struct GenerateOptions {
    std::string model;
    std::string prompt_ids;
    std::string weights = "stored";
    int32_t max_tokens = 16;
    inference::SamplingParams sampling;
    std::vector<int32_t> stop_ids;
    bool json = false;
};

int run_generate(const GenerateOptions& options) {
    auto prompt = parse_id_list(options.prompt_ids);
    if (!prompt.ok()) {
        return fail("generate", prompt.status());
    }
    constexpr int32_t kBlockSize = 16;
    const int64_t positions = static_cast<int64_t>(prompt->size()) + options.max_tokens;
    auto backend = open_model(options.model, options.weights, positions, kBlockSize);
    if (!backend.ok()) {
        return fail("generate", backend.status());
    }
    inference::KvBlockPool pool((*backend)->kv_cache_spec().n_blocks, kBlockSize);
    inference::GenerationRequest request;
    request.prompt = *prompt;
    request.sampling = options.sampling;
    request.max_tokens = options.max_tokens;
    request.stop_tokens = options.stop_ids;
    inference::Timings timings;
    auto result = inference::generate(**backend, pool, request, &timings);
    if (!result.ok()) {
        return fail("generate", result.status());
    }
    const json usage = {{"prompt_tokens", result->usage.prompt_tokens},
                        {"completion_tokens", result->usage.completion_tokens},
                        {"total_tokens",
                         result->usage.prompt_tokens + result->usage.completion_tokens}};
    const json timing = {{"prefill_seconds", timings.prefill_seconds},
                         {"decode_seconds", timings.decode_seconds},
                         {"prefill_tokens_per_second", timings.prefill_tokens_per_second()},
                         {"decode_tokens_per_second", timings.decode_tokens_per_second()}};
    json out = {{"ids", result->ids},
                {"finish_reason", inference::finish_reason_name(result->finish)},
                {"usage", usage},
                {"timings", timing}};
    if (options.sampling.top_logprobs > 0) {
        json logprobs = json::array();
        for (const inference::SampledToken& token : result->tokens) {
            json top = json::array();
            for (const auto& alt : token.top) {
                top.push_back({{"id", alt.id}, {"logprob", alt.logprob}});
            }
            logprobs.push_back({{"id", token.id}, {"logprob", token.logprob}, {"top", top}});
        }
        out["logprobs"] = logprobs;
    }
    if (options.json) {
        std::cout << out.dump() << "\n";
        return 0;
    }
    std::cout << "ids      " << json(result->ids).dump() << "\n"
              << "finish   " << inference::finish_reason_name(result->finish) << "\n"
              << "usage    " << usage.dump() << "\n"
              << "prefill  " << format_fixed(timings.prefill_tokens_per_second(), 1)
              << " tokens/s\n"
              << "decode   " << format_fixed(timings.decode_tokens_per_second(), 1)
              << " tokens/s\n";
    return 0;
}

void add_generate_command(Cli& cli) {
    auto* command = cli.root().add_subcommand(
        "generate", "Generate tokens from a prompt of token ids with a DBRX checkpoint");
    auto options = std::make_shared<GenerateOptions>();
    auto& o = *options;
    command->add_option("--model", o.model, "Model folder (config.json + safetensors)")
        ->required();
    command->add_option("--prompt-ids", o.prompt_ids, "Prompt token ids, e.g. 1,2,3")->required();
    command->add_option("--max-tokens", o.max_tokens, "Most tokens to generate")
        ->check(CLI::Range(1, 1 << 20));
    command->add_option("--temperature", o.sampling.temperature, "0 is greedy");
    command->add_option("--top-k", o.sampling.top_k, "Keep the k most likely tokens (0: off)");
    command->add_option("--top-p", o.sampling.top_p, "Nucleus mass to keep (1: off)");
    command->add_option("--min-p", o.sampling.min_p, "Drop tokens below min_p x the top one");
    command->add_option("--presence-penalty", o.sampling.presence_penalty);
    command->add_option("--frequency-penalty", o.sampling.frequency_penalty);
    command->add_option("--repetition-penalty", o.sampling.repetition_penalty);
    command->add_option("--seed", o.sampling.seed, "Seed of the sampler");
    command->add_option("--logprobs", o.sampling.top_logprobs, "Top log-probabilities per token");
    command->add_option("--stop-id", o.stop_ids, "A token id that ends generation (repeatable)");
    add_weights_option(command, &o.weights);
    command->add_flag("--json", o.json, "Print one JSON object: ids, usage, timings");
    cli.on_run(command, [options] { return run_generate(*options); });
}

}  // namespace

Result<std::vector<int32_t>> parse_id_list(const std::string& text) {
    std::vector<int32_t> ids;
    size_t start = 0;
    while (start <= text.size()) {
        size_t end = text.find(',', start);
        if (end == std::string::npos) {
            end = text.size();
        }
        std::string item = text.substr(start, end - start);
        item.erase(0, item.find_first_not_of(" \t"));
        item.erase(item.find_last_not_of(" \t") + 1);
        int32_t id = 0;
        auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), id);
        if (item.empty() || ec != std::errc() || ptr != item.data() + item.size() || id < 0) {
            return invalid_argument("token ids: '" + item + "' is not a non-negative integer");
        }
        ids.push_back(id);
        start = end + 1;
    }
    return ids;
}

void add_model_commands(Cli& cli) {
    auto* model = cli.root().add_subcommand("model", "Inspect, run and create DBRX checkpoints");
    model->require_subcommand(1);

    auto* inspect = model->add_subcommand("inspect", "Config, parameters, tensors and sizes");
    auto inspect_dir = std::make_shared<std::string>();
    auto inspect_json = std::make_shared<bool>(false);
    inspect->add_option("dir", *inspect_dir, "Model folder")->required();
    inspect->add_flag("--json", *inspect_json, "Print one JSON object");
    cli.on_run(inspect, [inspect_dir, inspect_json] {
        return run_inspect(*inspect_dir, *inspect_json);
    });

    auto* forward = model->add_subcommand("forward", "Logits of every input position as JSON");
    auto forward_dir = std::make_shared<std::string>();
    auto forward_ids = std::make_shared<std::string>();
    auto forward_weights = std::make_shared<std::string>("stored");
    forward->add_option("--model", *forward_dir, "Model folder")->required();
    forward->add_option("--ids", *forward_ids, "Token ids, e.g. 1,2,3")->required();
    add_weights_option(forward, forward_weights.get());
    cli.on_run(forward, [forward_dir, forward_ids, forward_weights] {
        return run_forward(*forward_dir, *forward_ids, *forward_weights);
    });

    auto* init = model->add_subcommand("init-tiny", "Write a random DBRX checkpoint");
    auto init_out = std::make_shared<std::string>();
    auto init_preset = std::make_shared<std::string>("tiny");
    auto init_seed = std::make_shared<uint64_t>(0);
    auto init_dtype = std::make_shared<std::string>("bf16");
    init->add_option("--out", *init_out, "Folder to write")->required();
    init->add_option("--preset", *init_preset, "tiny (tests) or small (~1B, benchmarks)")
        ->check(CLI::IsMember({"tiny", "small"}));
    init->add_option("--seed", *init_seed, "Seed of the weights");
    init->add_option("--dtype", *init_dtype, "f32 or bf16")->check(CLI::IsMember({"f32", "bf16"}));
    cli.on_run(init, [init_out, init_preset, init_seed, init_dtype] {
        return run_init_tiny(*init_out, *init_preset, *init_seed, *init_dtype);
    });

    add_generate_command(cli);
}

}  // namespace sluice::app
