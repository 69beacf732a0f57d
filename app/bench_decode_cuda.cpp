#include "app/bench_decode_cuda.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <numeric>
#include <random>
#include <sstream>

#include "app/bench_report.h"
#include "app/model_commands.h"
#include "inference/cuda_backend.h"
#include "inference/devices.h"
#include "inference/model_config.h"

namespace sluice::app {

namespace {

constexpr int32_t kBlockSize = 16;
constexpr int64_t kMaxBatchTokens = 1024;  // prefill is cut into steps of at most this many

// DBRX's config.json (databricks/dbrx-base) with `layers` blocks.
Result<inference::ModelConfig> dbrx_config(int layers) {
    const nlohmann::json json = {
        {"model_type", "dbrx"},
        {"d_model", 6144},
        {"n_heads", 48},
        {"n_layers", layers},
        {"max_seq_len", 32768},
        {"vocab_size", 100352},
        {"tie_word_embeddings", false},
        {"attn_config", {{"kv_n_heads", 8}, {"rope_theta", 500000.0}, {"clip_qkv", 8.0}}},
        {"ffn_config",
         {{"ffn_hidden_size", 10752},
          {"moe_num_experts", 16},
          {"moe_top_k", 4},
          {"ffn_act_fn", {{"name", "silu"}}}}}};
    return inference::parse_model_config(json);
}

Result<std::vector<int>> parse_int_list(const std::string& text, const char* what) {
    std::vector<int> values;
    std::stringstream in(text);
    std::string item;
    while (std::getline(in, item, ',')) {
        try {
            size_t used = 0;
            const int value = std::stoi(item, &used);
            if (used != item.size() || value <= 0) {
                throw std::invalid_argument(item);
            }
            values.push_back(value);
        } catch (const std::exception&) {
            return invalid_argument(std::string(what) + ": '" + item +
                                    "' is not a positive integer");
        }
    }
    if (values.empty()) {
        return invalid_argument(std::string(what) + ": empty list");
    }
    return values;
}

// The names `--weights` takes on the other commands (model_commands.h), less those the CUDA
// backend refuses (int8) or that mean nothing for generated weights (stored).
Result<inference::WeightFormat> parse_format(const std::string& name) {
    const auto& formats = weight_formats();
    const auto found = formats.find(name);
    if (found == formats.end() || name == "int8" || name == "stored") {
        return invalid_argument("--weights: '" + name + "' is not one of bf16, fp8, int4, f32");
    }
    return found->second;
}

// Datasheet HBM bandwidth by product name, GB/s; 0 when unknown.
double datasheet_peak_gb_s(const std::string& gpu) {
    if (gpu.find("H200") != std::string::npos) {
        return 4800;
    }
    if (gpu.find("H100") != std::string::npos) {
        if (gpu.find("PCIe") != std::string::npos) {
            return 2000;
        }
        return gpu.find("NVL") != std::string::npos ? 3900 : 3350;
    }
    if (gpu.find("A100") != std::string::npos) {
        return gpu.find("80GB") != std::string::npos ? 2039 : 1555;
    }
    return 0;
}

// Bytes of one expert's three matrices in `format` (fp8 and int4 with their scales; int4 at
// the backend's default group size).
double expert_bytes(const inference::ModelConfig& c, inference::WeightFormat format) {
    const double values = 3.0 * static_cast<double>(c.n_ff) * static_cast<double>(c.d_model);
    switch (format) {
        case inference::WeightFormat::kF8E4M3:
            return values + 4.0 * (2.0 * static_cast<double>(c.n_ff) + static_cast<double>(c.d_model));
        case inference::WeightFormat::kInt4: {
            const auto group =
                static_cast<double>(inference::CudaBackendOptions{}.int4_group_size);
            return values / 2 + values / group * 2;
        }
        case inference::WeightFormat::kF32: return values * 4;
        default: return values * 2;
    }
}

struct BatchResult {
    double step_s = 0;
    double tok_s = 0;
    int64_t graph_steps = 0;  // steps of the run (prefill, warm-up, timed) that replayed a graph
};

// Prefill `batch` random prompts, then time greedy decode steps with on-device choices.
Result<BatchResult> time_batch(inference::Backend& backend, int batch,
                               const CudaDecodeBenchOptions& options, uint64_t seed) {
    const auto& c = backend.config();
    const int32_t positions = options.prompt_tokens + options.warmup_tokens + options.decode_tokens;
    const int32_t blocks_per_seq = (positions + kBlockSize - 1) / kBlockSize;
    SLUICE_RETURN_IF_ERROR(backend.configure_kv_cache({kBlockSize, batch * blocks_per_seq}));
    std::mt19937_64 rng(seed);
    std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(batch));
    std::vector<std::vector<int32_t>> tables(static_cast<size_t>(batch));
    for (int b = 0; b < batch; ++b) {
        for (int32_t i = 0; i < options.prompt_tokens; ++i) {
            prompts[static_cast<size_t>(b)].push_back(static_cast<int32_t>(rng() % static_cast<uint64_t>(c.n_vocab)));
        }
        auto& table = tables[static_cast<size_t>(b)];
        table.resize(static_cast<size_t>(blocks_per_seq));
        std::iota(table.begin(), table.end(), b * blocks_per_seq);
    }
    std::vector<int32_t> next(static_cast<size_t>(batch));
    // Prefill, as many whole prompts per step as fit.
    const int per_step = std::clamp<int>(static_cast<int>(kMaxBatchTokens / options.prompt_tokens),
                                         1, batch);
    for (int first = 0; first < batch; first += per_step) {
        inference::ForwardBatch step;
        const int last = std::min(batch, first + per_step);
        for (int b = first; b < last; ++b) {
            step.sequences.push_back({prompts[static_cast<size_t>(b)], 0,
                                      tables[static_cast<size_t>(b)], inference::LogitsRows::kLast});
            step.device_sample.push_back(inference::DeviceSampling{0.0f, 0, 1.0f, 0.0f, 0.0});
        }
        SLUICE_ASSIGN_OR_RETURN(auto out, backend.forward(step));
        for (int b = first; b < last; ++b) {
            next[static_cast<size_t>(b)] = out.sampled[static_cast<size_t>(b - first)].id;
        }
    }
    int32_t n_past = options.prompt_tokens;
    auto decode_step = [&]() -> Status {
        inference::ForwardBatch step;
        for (int b = 0; b < batch; ++b) {
            step.sequences.push_back({std::span<const int32_t>(&next[static_cast<size_t>(b)], 1),
                                      n_past, tables[static_cast<size_t>(b)],
                                      inference::LogitsRows::kLast});
            step.device_sample.push_back(inference::DeviceSampling{0.0f, 0, 1.0f, 0.0f, 0.0});
        }
        SLUICE_ASSIGN_OR_RETURN(auto out, backend.forward(step));
        for (int b = 0; b < batch; ++b) {
            next[static_cast<size_t>(b)] = out.sampled[static_cast<size_t>(b)].id;
        }
        ++n_past;
        return Status::ok_status();
    };
    for (int32_t i = 0; i < options.warmup_tokens; ++i) {
        SLUICE_RETURN_IF_ERROR(decode_step());
    }
    // forward() returns after the device finished the step (its ids are copied back), so the
    // host clock around the steps times the device work and the host's share of each step.
    const auto start = std::chrono::steady_clock::now();
    for (int32_t i = 0; i < options.decode_tokens; ++i) {
        SLUICE_RETURN_IF_ERROR(decode_step());
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    BatchResult r;
    r.step_s = seconds / options.decode_tokens;
    r.tok_s = batch / r.step_s;
    return r;
}

// The backend's choices one row is measured with.
struct RowModes {
    bool graphs = true;
    bool split_k = true;
    bool int4_mma = false;
};

// time_batch with decode graphs, split-K attention and int4 experts on the tensor cores turned on
// or off, counting the steps that ran through a graph.
Result<BatchResult> time_batch_as(inference::Backend& backend, int batch,
                                  const CudaDecodeBenchOptions& options, const RowModes& modes) {
    // int4 first: it drops the decode graphs, which set_cuda_decode_graphs then turns on or off.
    SLUICE_RETURN_IF_ERROR(inference::set_cuda_int4_mma_experts(backend, modes.int4_mma));
    SLUICE_RETURN_IF_ERROR(inference::set_cuda_decode_graphs(backend, modes.graphs));
    SLUICE_RETURN_IF_ERROR(inference::set_cuda_split_k_attention(backend, modes.split_k));
    SLUICE_ASSIGN_OR_RETURN(const inference::CudaGraphCounts before,
                            inference::cuda_decode_graph_counts(backend));
    SLUICE_ASSIGN_OR_RETURN(BatchResult r,
                            time_batch(backend, batch, options, static_cast<uint64_t>(batch)));
    SLUICE_ASSIGN_OR_RETURN(const inference::CudaGraphCounts after,
                            inference::cuda_decode_graph_counts(backend));
    r.graph_steps = after.steps - before.steps;
    return r;
}

// What every row of one run shares: the model, the options, the anchor and the GPU's peak.
struct RowContext {
    const inference::ModelConfig& config;
    const CudaDecodeBenchOptions& options;
    const nlohmann::json& anchor;
    double peak_gb_s = 0;
};

// One weight format's bytes: the dense weights and lm_head, and one expert's matrices.
struct FormatShape {
    const RowContext& context;
    std::string name;
    double dense_bytes = 0;
    double expert_bytes = 0;
};

struct RowLabels {
    std::string key;  // prefix of the row's figures
    std::string graphs;
    std::string split_k;
};

void add_batch_row(BenchReport& report, const FormatShape& shape, int batch,
                   const RowLabels& labels, const BatchResult& r) {
    const inference::ModelConfig& config = shape.context.config;
    const CudaDecodeBenchOptions& options = shape.context.options;
    const double peak = shape.context.peak_gb_s;
    const double unused = std::pow(
        static_cast<double>(config.n_expert - config.n_expert_used) / config.n_expert, batch);
    const double experts = config.n_expert * (1.0 - unused);
    const double bytes = shape.dense_bytes + config.n_layer * experts * shape.expert_bytes;
    const double gb_s = bytes / r.step_s / 1e9;
    const std::string& key = labels.key;
    std::string ratio = "-";
    const std::string anchor_key = "batch" + std::to_string(batch) + ".tok_s";
    const nlohmann::json& anchor = shape.context.anchor;
    if (anchor.contains(anchor_key) && anchor.value("layers", 0) == options.layers) {
        const double x = r.tok_s / anchor[anchor_key].get<double>();
        ratio = format_fixed(x, 1);
        report.set_figure(key + ".x_hf_eager", x);
    }
    report.add_row({shape.name, std::to_string(batch), labels.graphs, labels.split_k,
                    format_fixed(r.tok_s, 1), format_fixed(r.step_s * 1e3, 3),
                    format_fixed(r.step_s * 1e3 / options.layers, 3), format_fixed(bytes / 1e9, 2),
                    format_fixed(gb_s, 0), peak > 0 ? format_fixed(100.0 * gb_s / peak, 1) : "-",
                    ratio});
    report.set_figure(key + ".tok_s", r.tok_s);
    report.set_figure(key + ".step_ms", r.step_s * 1e3);
    report.set_figure(key + ".layer_ms", r.step_s * 1e3 / options.layers);
    report.set_figure(key + ".gb_read_per_step", bytes / 1e9);
    report.set_figure(key + ".gb_s", gb_s);
    report.set_figure(key + ".graph_steps", r.graph_steps);
    if (peak > 0) {
        report.set_figure(key + ".fraction_of_peak", gb_s / peak);
    }
}

// --int4-kernel as the values of CudaBackendOptions::int4_mma_experts to measure.
std::vector<bool> int4_kernel_modes(const std::string& kernel) {
    if (kernel == "both") {
        return {false, true};
    }
    return {kernel == "mma"};
}

Result<nlohmann::json> read_anchor(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        return invalid_argument("--anchor: cannot read " + path);
    }
    std::string line;
    std::string last;
    while (std::getline(in, line)) {
        if (!line.empty() && line.front() == '{') {
            last = line;
        }
    }
    auto json = nlohmann::json::parse(last, nullptr, false);
    if (json.is_discarded() || !json.is_object()) {
        return invalid_argument("--anchor: " + path + " has no JSON object line");
    }
    return json;
}

}  // namespace

int run_cuda_decode_bench(const CudaDecodeBenchOptions& options) {
    auto fail = [](const Status& status) {
        std::cerr << "sluice bench decode: " << status.to_string() << "\n";
        return 1;
    };
    auto config = dbrx_config(options.layers);
    if (!config.ok()) {
        return fail(config.status());
    }
    auto batches = parse_int_list(options.batches, "--batches");
    if (!batches.ok()) {
        return fail(batches.status());
    }
    std::vector<std::pair<std::string, inference::WeightFormat>> formats;
    {
        std::stringstream in(options.weights);
        std::string name;
        while (std::getline(in, name, ',')) {
            auto format = parse_format(name);
            if (!format.ok()) {
                return fail(format.status());
            }
            formats.emplace_back(name, *format);
        }
    }
    nlohmann::json anchor;
    if (!options.anchor.empty()) {
        auto read = read_anchor(options.anchor);
        if (!read.ok()) {
            return fail(read.status());
        }
        anchor = std::move(*read);
    }
    auto gpus = inference::visible_gpus();
    if (!gpus.ok() || gpus->empty()) {
        return fail(unavailable("no GPU is visible; `sluice bench decode` without --backend "
                                "cuda measures the CPU"));
    }
    const std::string gpu = gpus->front().name;
    const double peak = options.peak_gb_s > 0 ? options.peak_gb_s : datasheet_peak_gb_s(gpu);
    const int max_batch = *std::max_element(batches->begin(), batches->end());

    BenchReport report("decode");
    report.set_columns({"weights", "batch", "graphs", "split-K", "tok/s", "ms/step", "ms/layer",
                        "GB read/step", "GB/s", "% of peak", "x HF eager"});
    // Graphs on first: its row says whether any step replayed one, which decides whether the
    // row without them would measure anything different.
    std::vector<bool> graph_modes;
    if (options.graphs != "off") {
        graph_modes.push_back(true);
    }
    if (options.graphs != "on") {
        graph_modes.push_back(false);
    }
    std::vector<bool> split_modes;
    if (options.split_k != "off") {
        split_modes.push_back(true);
    }
    if (options.split_k != "auto") {
        split_modes.push_back(false);
    }
    const RowContext context{*config, options, anchor, peak};
    int status = 0;
    for (const auto& [name, format] : formats) {
        inference::CudaBackendOptions backend_options;
        backend_options.weights = format;
        // A prompt longer than kMaxBatchTokens is prefilled in one step of its own.
        backend_options.max_batch_tokens =
            std::max<int64_t>({kMaxBatchTokens, max_batch, options.prompt_tokens});
        backend_options.max_sampled_rows = max_batch;
        const auto open_start = std::chrono::steady_clock::now();
        auto backend = inference::open_cuda_backend_random(*config, backend_options, 1);
        if (!backend.ok()) {
            // A format that does not fit (40 layers of bf16 on one GPU) is reported, and the
            // others still run.
            std::cerr << "sluice bench decode: " << name << ": " << backend.status().to_string()
                      << "\n";
            report.add_note(name + ": not run: " + backend.status().to_string());
            status = 1;
            continue;
        }
        const double open_s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - open_start).count();
        const double active = static_cast<double>((*backend)->active_weight_bytes());
        const double per_expert = expert_bytes(*config, format);
        const double dense =
            active - static_cast<double>(config->n_layer * config->n_expert_used) * per_expert;
        report.set_figure(name + ".weight_bytes", (*backend)->memory().weight_bytes);
        report.set_figure(name + ".load_s", open_s);
        const std::vector<bool> mma_modes = format == inference::WeightFormat::kInt4
                                                ? int4_kernel_modes(options.int4_kernel)
                                                : std::vector<bool>{false};
        for (const int batch : *batches) {
            for (const bool int4_mma : mma_modes) {
                const FormatShape row_shape{context, int4_mma ? name + " mma" : name, dense,
                                            per_expert};
                for (const bool split_k : split_modes) {
                    bool replayed = false;
                    for (const bool graphs : graph_modes) {
                        if (!graphs && options.graphs == "both" && !replayed) {
                            continue;  // no step replayed a graph: the row above is the one
                        }
                        auto r = time_batch_as(**backend, batch, options,
                                               RowModes{graphs, split_k, int4_mma});
                        if (!r.ok()) {
                            std::cerr << "sluice bench decode: " << row_shape.name << " batch "
                                      << batch << ": " << r.status().to_string() << "\n";
                            status = 1;
                            continue;
                        }
                        replayed = r->graph_steps > 0;
                        // Rows without graphs or split-K, when there are also rows with, and
                        // rows on the tensor cores keep their figures apart.
                        const RowLabels labels{
                            name + (int4_mma ? ".mma" : "") + ".batch" + std::to_string(batch) +
                                (!graphs && options.graphs == "both" ? ".no_graphs" : "") +
                                (!split_k && options.split_k == "both" ? ".one_pass" : ""),
                            !graphs    ? "off"
                            : replayed ? "on"
                                       : "n/a",
                            split_k ? "auto" : "off"};
                        add_batch_row(report, row_shape, batch, labels, *r);
                    }
                }
            }
        }
    }
    report.set_figure("backend", "cuda");
    report.set_figure("gpu", gpu);
    report.set_figure("peak_gb_s", peak);
    report.set_figure("layers", options.layers);
    report.set_figure("prompt_tokens", options.prompt_tokens);
    report.set_figure("decode_tokens", options.decode_tokens);
    report.set_figure("model", "DBRX layer sizes, random weights made on the GPU");
    report.set_figure("graphs", options.graphs);
    report.set_figure("split_k", options.split_k);
    report.set_figure("int4_kernel", options.int4_kernel);
    report.add_note(
        "split-K: auto where attention takes split-K when the step's shape calls for it (at "
        "most 32 tokens, a context over 512 positions, few (token, head) pairs per SM), off "
        "where always the one-pass kernel");
    report.add_note(
        "graphs: on where decode steps ran through CUDA graphs (a shape's first step runs "
        "eagerly and its second captures, both warm-up steps by default), off where launched "
        "kernel by kernel, n/a where graphs were on but no step could use one");
    report.add_note(gpu + "; peak " + format_fixed(peak, 0) +
                    " GB/s (datasheet unless --peak-gb-s); GB read per step counts dense weights, "
                    "lm_head and the experts a batch is expected to touch under uniform routing");
    if (!anchor.is_null()) {
        report.set_figure("anchor", anchor);
        report.add_note("x HF eager: tokens/s over Hugging Face eager DbrxForCausalLM's from " +
                        options.anchor + (anchor.contains("copy_gb_s")
                                              ? "; its device copy measured " +
                                                    format_fixed(anchor["copy_gb_s"].get<double>(), 0) +
                                                    " GB/s"
                                              : std::string()));
    }
    report.print(options.json);
    return status;
}

}  // namespace sluice::app
