#pragma once
// `sluice config check FILE`, `sluice config print`, `sluice config schema`, and the options that
// every command reading a configuration shares (--config, --host, --port, --data-dir, --model).

#include <memory>
#include <optional>
#include <string>

#include "app/cli.h"
#include "app/config.h"

namespace sluice::app {

// Options that override the configuration, bound to a command's flags.
struct ConfigOptions {
    std::string config_path;
    std::optional<std::string> host;
    std::optional<int> port;
    std::optional<std::string> data_dir;
    std::optional<std::string> model_path;
    std::optional<std::string> backend;
};

// Adds --config, --host, --port, --data-dir, --model and --backend to `command`.
void add_config_options(CLI::App& command, ConfigOptions& options);

// The effective configuration: defaults, then the file (when given), then SLUICE_* environment
// variables, then flags.
Result<Config> effective_config(const ConfigOptions& options);

void add_config_commands(Cli& cli);

}  // namespace sluice::app
