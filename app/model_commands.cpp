#include "app/model_commands.h"

#include <algorithm>
#include <charconv>
#include <iostream>
#include <map>
#include <memory>

#include <nlohmann/json.hpp>

#include "app/bench_report.h"
#include "app/quantize_command.h"
#include "app/tokenize_command.h"
#include "inference/backend_factory.h"
#include "inference/cpu_backend.h"
#include "inference/dbrx_layout.h"
#include "inference/hf_tokenizer.h"
#include "inference/model_config.h"
#include "inference/safetensors.h"
#include "inference/tiny_model.h"

namespace sluice::app {

namespace {

using nlohmann::json;

int run_inspect(const std::string& dir, bool as_json) {
    auto config = inference::load_model_config(dir);
    if (!config.ok()) {
        return report_failure("model inspect", config.status());
    }
    auto checkpoint = inference::Checkpoint::open(dir);
    if (!checkpoint.ok()) {
        return report_failure("model inspect", checkpoint.status());
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
        return report_failure("model forward", ids.status());
    }
    auto backend = open_model(dir, weights, static_cast<int64_t>(ids->size()), 16);
    if (!backend.ok()) {
        return report_failure("model forward", backend.status());
    }
    std::vector<int32_t> blocks(static_cast<size_t>((*backend)->kv_cache_spec().n_blocks));
    for (size_t i = 0; i < blocks.size(); ++i) {
        blocks[i] = static_cast<int32_t>(i);
    }
    inference::ForwardBatch batch;
    batch.sequences.push_back({*ids, 0, blocks, inference::LogitsRows::kAll});
    auto out = (*backend)->forward(batch);
    if (!out.ok()) {
        return report_failure("model forward", out.status());
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
                  const std::string& dtype, const std::string& tokenizer_path) {
    inference::TinyModelOptions options;
    options.preset = *inference::parse_tiny_preset(preset);
    options.seed = seed;
    options.dtype = dtype == "f32" ? inference::DType::kF32 : inference::DType::kBF16;
    // The checkpoint brings its own tokenizer, as a real one does: DBRX's cl100k_base with its
    // special tokens, written as Hugging Face tokenizer files.
    auto tokenizer = open_cli_tokenizer(tokenizer_path);
    if (!tokenizer.ok()) {
        return report_failure("model init-tiny", tokenizer.status());
    }
    options.write_tokenizer = [&tokenizer](const std::string& dir) {
        return inference::write_hf_tokenizer_files(**tokenizer, dir);
    };
    auto summary = inference::write_tiny_model(out_dir, options);
    if (!summary.ok()) {
        return report_failure("model init-tiny", summary.status());
    }
    std::cout << "wrote " << out_dir << ": " << preset << " preset, "
              << summary->config.n_params_total() << " parameters ("
              << summary->config.n_params_active() << " active), " << summary->bytes_written
              << " bytes of " << dtype << " weights"
              << (summary->tokenizer_written ? ", tokenizer files" : ", no tokenizer files") << "\n";
    return 0;
}

}  // namespace

int report_failure(const std::string& command, const Status& status) {
    std::cerr << "sluice " << command << ": " << status.to_string() << "\n";
    return 1;
}

const std::map<std::string, inference::WeightFormat>& weight_formats() {
    static const std::map<std::string, inference::WeightFormat> formats = {
        {"stored", inference::WeightFormat::kAsStored},
        {"f32", inference::WeightFormat::kF32},
        {"bf16", inference::WeightFormat::kBF16},
        {"int8", inference::WeightFormat::kInt8},
        {"fp8", inference::WeightFormat::kF8E4M3},
        {"int4", inference::WeightFormat::kInt4}};
    return formats;
}

void add_weights_option(CLI::App* command, std::string* weights) {
    command->add_option("--weights", *weights,
                        "Weight format: stored, f32, bf16, int8 (cpu), fp8 or int4 (cuda; int4 "
                        "quantises the experts)")
        ->check(CLI::IsMember({"stored", "f32", "bf16", "int8", "fp8", "int4"}));
}

// Opens the model with a KV cache big enough for `n_positions` positions per sequence.
void add_backend_option(CLI::App* command, std::string* backend) {
    command
        ->add_option("--backend", *backend,
                     "Compute backend: auto (cuda when a GPU is visible), cpu or cuda (falls "
                     "back to cpu without a GPU)")
        ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
}

Result<std::unique_ptr<inference::Backend>> open_model(const std::string& dir,
                                                       const std::string& weights,
                                                       int64_t n_positions, int32_t block_size,
                                                       const std::string& backend_name) {
    inference::BackendOptions options;
    options.kind =
        inference::parse_backend_kind(backend_name).value_or(inference::BackendKind::kCpu);
    options.weights = weight_formats().at(weights);
    // One step holds at most the whole prompt (the generator prefills it at once).
    options.max_batch_tokens = std::clamp<int64_t>(n_positions, 1, 65535);
    SLUICE_ASSIGN_OR_RETURN(auto backend, inference::open_backend(dir, options));
    n_positions = std::min(n_positions, backend->config().max_seq_len);
    const auto n_blocks = static_cast<int32_t>((n_positions + block_size - 1) / block_size);
    SLUICE_RETURN_IF_ERROR(backend->configure_kv_cache({block_size, std::max(n_blocks, 1)}));
    return backend;
}

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
    auto init_tokenizer = std::make_shared<std::string>();
    init->add_option("--out", *init_out, "Folder to write")->required();
    init->add_option("--preset", *init_preset, "tiny (tests) or small (~1B, benchmarks)")
        ->check(CLI::IsMember({"tiny", "small"}));
    init->add_option("--seed", *init_seed, "Seed of the weights");
    init->add_option("--dtype", *init_dtype, "f32 or bf16")->check(CLI::IsMember({"f32", "bf16"}));
    init->add_option("--tokenizer", *init_tokenizer,
                     "cl100k_base .tiktoken file or tokenizer folder to write into the checkpoint "
                     "(default: the shipped ranks)");
    cli.on_run(init, [init_out, init_preset, init_seed, init_dtype, init_tokenizer] {
        return run_init_tiny(*init_out, *init_preset, *init_seed, *init_dtype, *init_tokenizer);
    });

    add_model_quantize_command(model, cli);

}

}  // namespace sluice::app
