#pragma once
// The `sluice` command tree (CLI11). Command groups live in their own files and add themselves
// to the tree through an add_*_commands(Cli&) function called from Cli's constructor; each
// registers an action whose return value becomes the process exit code.
//
// Thread safety: owned by the main thread.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace sluice::app {

class Cli {
public:
    Cli();

    // Parses argv and runs the chosen command. Returns the process exit code: 0 on success,
    // 2 on a usage error (after printing CLI11's message), otherwise what the command returned.
    int run(int argc, const char* const* argv);

    CLI::App& root() { return *root_; }
    // The `bench` group that benchmarks add their subcommands to.
    CLI::App& bench() { return *bench_; }

    // Runs `action` when `command` is the one chosen on the command line.
    void on_run(CLI::App* command, std::function<int()> action);

private:
    std::unique_ptr<CLI::App> root_;
    CLI::App* bench_ = nullptr;
    std::vector<std::pair<CLI::App*, std::function<int()>>> actions_;
};

}  // namespace sluice::app
