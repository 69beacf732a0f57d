#include "app/quantize_command.h"

#include <chrono>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "app/model_commands.h"
#include "inference/quantized_checkpoint.h"

namespace sluice::app {

namespace {

struct QuantizeArgs {
    std::string model;
    std::string out;
    std::string weights = "fp8";
    int64_t group_size = 128;
    double shard_gb = 5.0;
    bool json = false;
};

int run_quantize(const QuantizeArgs& args) {
    // 1 MiB to 1 PiB. Past it the byte count leaves 64 bits (its conversion was undefined and
    // came out negative), and a shard below it is a slip of the unit.
    constexpr double kMinShardGb = 1.0 / 1024;
    constexpr double kMaxShardGb = 1 << 20;
    if (!(args.shard_gb >= kMinShardGb && args.shard_gb <= kMaxShardGb)) {
        std::ostringstream found;
        found << args.shard_gb;
        return report_failure("model quantize",
                              invalid_argument("--shard-gb: expected 0.0009765625 (1 MiB) to "
                                               "1048576 (1 PiB), found " +
                                               found.str()));
    }
    inference::QuantizeCheckpointOptions options;
    options.max_shard_bytes = static_cast<int64_t>(args.shard_gb * (1 << 30));
    const bool int4 = args.weights == "int4";
    options.format = int4 ? inference::CheckpointQuantization::kInt4Grouped
                          : inference::CheckpointQuantization::kFp8PerChannel;
    options.int4_group_size = args.group_size;
    const auto start = std::chrono::steady_clock::now();
    auto summary = inference::write_quantized_checkpoint(args.model, args.out, options);
    if (!summary.ok()) {
        return report_failure("model quantize", summary.status());
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const std::string scales = int4 ? "experts only, fp16 scales per " +
                                          std::to_string(args.group_size) + " values"
                                    : std::string("per-channel scales");
    std::cout << "quantised " << args.model << " -> " << args.out << " (" << args.weights << ", "
              << scales << ")\n"
              << "tensors     " << summary->tensors_quantized << " quantised, "
              << summary->tensors_copied << " copied\n"
              << "bytes       " << summary->bytes_in << " read, " << summary->bytes_out
              << " written in " << summary->shards << " shard(s)\n"
              << "seconds     " << seconds << "\n";
    if (args.json) {
        std::cout << nlohmann::json{{"out", args.out},
                                    {"weights", args.weights},
                                    {"group_size", int4 ? nlohmann::json(args.group_size)
                                                        : nlohmann::json(nullptr)},
                                    {"tensors_quantized", summary->tensors_quantized},
                                    {"tensors_copied", summary->tensors_copied},
                                    {"bytes_in", summary->bytes_in},
                                    {"bytes_out", summary->bytes_out},
                                    {"shards", summary->shards},
                                    {"seconds", seconds}}
                         .dump()
                  << "\n";
    }
    return 0;
}

}  // namespace

void add_model_quantize_command(CLI::App* model, Cli& cli) {
    auto* quantize = model->add_subcommand(
        "quantize",
        "Write a checkpoint's weights as fp8 with per-channel scales, or its experts as int4 "
        "with group scales, to load without quantising again");
    auto args = std::make_shared<QuantizeArgs>();
    quantize->add_option("--model", args->model, "Model folder to read")->required();
    quantize->add_option("--out", args->out, "New folder to write (must not exist)")->required();
    quantize->add_option("--weights", args->weights,
                         "Format to write: fp8 (E4M3, per-channel scales) or int4 (experts, "
                         "symmetric, fp16 scale per group)")
        ->check(CLI::IsMember({"fp8", "int4"}));
    quantize->add_option("--group-size", args->group_size,
                         "int4: values per scale along the reduction dimension (default 128; a "
                         "multiple of 32 dividing d_model and ffn_hidden_size)");
    quantize->add_option("--shard-gb", args->shard_gb, "Largest shard in GiB (default 5)");
    quantize->add_flag("--json", args->json, "Print one JSON object last");
    cli.on_run(quantize, [args] { return run_quantize(*args); });
}

}  // namespace sluice::app
