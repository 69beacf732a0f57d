#include "app/version_command.h"

#include <iostream>

#include <nlohmann/json.hpp>

#include "app/build_info.h"
#include "inference/devices.h"

namespace sluice::app {

namespace {

int run_version(bool as_json) {
    BuildInfo info = build_info();
    auto gpus = inference::visible_gpus();
    nlohmann::json gpu_list = nlohmann::json::array();
    std::string gpu_note;
    if (gpus.ok()) {
        for (const auto& gpu : *gpus) {
            gpu_list.push_back({{"index", gpu.index},
                                {"name", gpu.name},
                                {"memory_bytes", gpu.total_memory_bytes},
                                {"compute_capability",
                                 std::to_string(gpu.compute_capability_major) + "." +
                                     std::to_string(gpu.compute_capability_minor)}});
        }
        gpu_note = gpus->empty() ? "none visible" : std::to_string(gpus->size());
    } else {
        gpu_note = gpus.status().message();
    }
    if (as_json) {
        nlohmann::json out = {{"version", info.version},
                              {"git_revision", info.git_revision},
                              {"build_type", info.build_type},
                              {"cuda", info.cuda},
                              {"nccl", info.nccl},
                              {"gpus", gpu_list}};
        if (!gpus.ok()) {
            out["gpus_note"] = gpu_note;
        }
        std::cout << out.dump() << "\n";
        return 0;
    }
    std::cout << "sluice " << info.version << "\n"
              << "revision    " << info.git_revision << "\n"
              << "build type  " << info.build_type << "\n"
              << "cuda        " << (info.cuda ? "compiled in" : "not compiled in") << "\n"
              << "nccl        " << (info.nccl ? "compiled in" : "not compiled in") << "\n"
              << "gpus        " << gpu_note << "\n";
    for (const auto& gpu : gpu_list) {
        std::cout << "  [" << gpu["index"].get<int>() << "] " << gpu["name"].get<std::string>()
                  << ", " << gpu["memory_bytes"].get<std::uint64_t>() / (1024 * 1024) << " MiB, sm "
                  << gpu["compute_capability"].get<std::string>() << "\n";
    }
    return 0;
}

}  // namespace

void add_version_command(Cli& cli) {
    auto* command = cli.root().add_subcommand(
        "version", "Print the version, git revision, build type, CUDA/NCCL support and GPUs");
    auto as_json = std::make_shared<bool>(false);
    command->add_flag("--json", *as_json, "Print one JSON object");
    cli.on_run(command, [as_json] { return run_version(*as_json); });
}

}  // namespace sluice::app
