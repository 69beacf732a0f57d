#include "app/config_commands.h"

#include <iostream>

namespace sluice::app {

void add_config_options(CLI::App& command, ConfigOptions& options) {
    command.add_option("--config,-c", options.config_path, "Configuration file (JSON)")
        ->check(CLI::ExistingFile);
    command.add_option("--host", options.host, "Listen address (overrides /server/host)");
    command.add_option("--port,-p", options.port, "Listen port (overrides /server/port)")
        ->check(CLI::Range(0, 65535));
    command.add_option("--data-dir", options.data_dir,
                       "Data directory (overrides /storage/data_dir)");
    command.add_option("--model", options.model_path,
                       "Model checkpoint folder (overrides /model/path)");
    command.add_option("--backend", options.backend,
                       "Compute backend: auto, cpu or cuda (overrides /model/backend)")
        ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
}

Result<Config> effective_config(const ConfigOptions& options) {
    Config config;
    if (!options.config_path.empty()) {
        SLUICE_ASSIGN_OR_RETURN(config, load_config_file(options.config_path));
    }
    SLUICE_RETURN_IF_ERROR(apply_environment(config, sluice_environment()));
    if (options.host) {
        config.server.host = *options.host;
    }
    if (options.port) {
        config.server.port = *options.port;
    }
    if (options.data_dir) {
        config.storage.data_dir = *options.data_dir;
    }
    if (options.model_path) {
        config.model.path = *options.model_path;
    }
    if (options.backend) {
        config.model.backend = *options.backend;
    }
    SLUICE_RETURN_IF_ERROR(validate_config(config).with_context("command-line flags"));
    return config;
}

void add_config_commands(Cli& cli) {
    auto* group = cli.root().add_subcommand("config", "Check, print and describe configuration");
    group->require_subcommand(1);

    auto* check = group->add_subcommand("check", "Validate a configuration file");
    auto check_path = std::make_shared<std::string>();
    check->add_option("file", *check_path, "Configuration file (JSON)")->required();
    cli.on_run(check, [check_path] {
        auto config = load_config_file(*check_path);
        if (!config.ok()) {
            std::cerr << "sluice config check: " << config.status().message() << "\n";
            return 1;
        }
        std::cout << *check_path << ": ok\n";
        return 0;
    });

    auto* print = group->add_subcommand(
        "print", "Print the effective configuration after file, environment and flags");
    auto print_options = std::make_shared<ConfigOptions>();
    add_config_options(*print, *print_options);
    cli.on_run(print, [print_options] {
        auto config = effective_config(*print_options);
        if (!config.ok()) {
            std::cerr << "sluice config print: " << config.status().message() << "\n";
            return 1;
        }
        std::cout << config_to_json(*config).dump(2) << "\n";
        return 0;
    });

    auto* schema = group->add_subcommand(
        "schema", "Print the JSON Schema of the configuration file (configs/config.schema.json)");
    cli.on_run(schema, [] {
        std::cout << config_schema().dump(2) << "\n";
        return 0;
    });
}

}  // namespace sluice::app
