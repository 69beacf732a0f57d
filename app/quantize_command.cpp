#include "app/quantize_command.h"

#include <chrono>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "app/model_commands.h"
#include "inference/quantized_checkpoint.h"

namespace sluice::app {

namespace {

struct QuantizeArgs {
    std::string model;
    std::string out;
    std::string weights = "fp8";
    double shard_gb = 5.0;
    bool json = false;
};

int run_quantize(const QuantizeArgs& args) {
    if (!(args.shard_gb > 0)) {
        return report_failure("model quantize", invalid_argument("--shard-gb must be positive"));
    }
    inference::QuantizeCheckpointOptions options;
    options.max_shard_bytes = static_cast<int64_t>(args.shard_gb * (1 << 30));
    const auto start = std::chrono::steady_clock::now();
    auto summary = inference::write_fp8_checkpoint(args.model, args.out, options);
    if (!summary.ok()) {
        return report_failure("model quantize", summary.status());
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << "quantised " << args.model << " -> " << args.out << " (" << args.weights
              << ", per-channel scales)\n"
              << "tensors     " << summary->tensors_quantized << " quantised, "
              << summary->tensors_copied << " copied\n"
              << "bytes       " << summary->bytes_in << " read, " << summary->bytes_out
              << " written in " << summary->shards << " shard(s)\n"
              << "seconds     " << seconds << "\n";
    if (args.json) {
        std::cout << nlohmann::json{{"out", args.out},
                                    {"weights", args.weights},
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
        "Write a checkpoint's weights as fp8 with per-channel scales, to load "
        "without quantising again");
    auto args = std::make_shared<QuantizeArgs>();
    quantize->add_option("--model", args->model, "Model folder to read")->required();
    quantize->add_option("--out", args->out, "New folder to write (must not exist)")->required();
    quantize->add_option("--weights", args->weights, "Format to write: fp8 (E4M3)")
        ->check(CLI::IsMember({"fp8"}));
    quantize->add_option("--shard-gb", args->shard_gb, "Largest shard in GiB (default 5)");
    quantize->add_flag("--json", args->json, "Print one JSON object last");
    cli.on_run(quantize, [args] { return run_quantize(*args); });
}

}  // namespace sluice::app
